"""Video: the detect-track-pose loop (:mod:`.pipeline`), track ids (:mod:`.track`), one-euro smoothing
(:mod:`.smooth`) and threaded frame reading/writing (:mod:`.frames`). No torch."""
