"""Content and difficulty knobs of the synthetic generator (:class:`SynthConfig`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...errors import DataError


@dataclass(frozen=True)
class SynthConfig:
    """Content and difficulty knobs. Every field is stored in the json's ``info`` and part of the cache key.

    Attributes:
        min_persons: fewest figures per image.
        max_persons: most figures per image (probability of ``k`` figures decays as ``person_decay ** k``).
        person_decay: see ``max_persons``; 1.0 = uniform.
        height_range: figure box height as a fraction of the image height (before truncation).
        max_overlap: largest IoU allowed between two figures' boxes (occlusion between persons).
        max_cover: largest share of the smaller of two figures' boxes that the other may overlap.
        truncation_prob: probability that a figure is placed partly outside the image.
        occluder_prob: probability of a foreground object drawn over the figures (its keypoints get ``v=1``).
        front_prob: probability of a yaw near 0 (facing the camera).
        back_prob: probability of a yaw near 180 degrees (the rest is uniform, profiles included).
        yaw_spread: standard deviation in degrees of the yaw around front/back.
        max_roll: largest in-plane rotation of a figure, in degrees.
        wild_pose_prob: probability of an unconstrained pose (any angle within the joint limits).
        clutter: scales the number of random background shapes.
        max_distractors: most limb-like distractors (shaded capsules in skin/clothing colours) in the background.
        noise_std: largest standard deviation of the additive pixel noise.
        blur_prob: probability of a slight Gaussian blur of the whole image.
        jpeg_quality: JPEG quality of the written images.
        det_jitter: relative std of the simulated detector's box centre/size noise.
        det_miss_prob: probability that the detector misses a small (``< 0.5 * height``) or heavily hidden person.
        det_false_positives: mean number of low-score false-positive boxes per image.
    """

    min_persons: int = 1
    max_persons: int = 4
    person_decay: float = 0.75
    height_range: tuple[float, float] = (0.4, 0.95)
    max_overlap: float = 0.35
    max_cover: float = 0.55
    truncation_prob: float = 0.15
    occluder_prob: float = 0.15
    front_prob: float = 0.45
    back_prob: float = 0.35
    yaw_spread: float = 25.0
    max_roll: float = 25.0
    wild_pose_prob: float = 0.15
    clutter: float = 1.0
    max_distractors: int = 3
    noise_std: float = 6.0
    blur_prob: float = 0.25
    jpeg_quality: int = 90
    det_jitter: float = 0.04
    det_miss_prob: float = 0.3
    det_false_positives: float = 0.8

    def __post_init__(self) -> None:
        if not 1 <= self.min_persons <= self.max_persons:
            raise DataError(f"SynthConfig: need 1 <= min_persons <= max_persons, got {self.min_persons}, "
                            f"{self.max_persons}")
        lo, hi = self.height_range
        if not 0.05 <= lo <= hi <= 2.0:
            raise DataError(f"SynthConfig: height_range must satisfy 0.05 <= lo <= hi <= 2, got {self.height_range}")
        if not 1 <= self.jpeg_quality <= 100:
            raise DataError(f"SynthConfig: jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    @classmethod
    def preset(cls, name: str) -> SynthConfig:
        """Named difficulty: ``"easy"`` (1-2 large, rarely occluded figures, calm poses, little clutter),
        ``"default"`` or ``"hard"`` (up to 6 figures, more overlap, truncation, clutter and wild poses)."""
        presets: dict[str, dict[str, Any]] = {
            "easy": {"max_persons": 2, "person_decay": 0.5, "height_range": (0.55, 0.95), "max_overlap": 0.2,
                     "max_cover": 0.35, "truncation_prob": 0.05, "occluder_prob": 0.0, "yaw_spread": 20.0,
                     "max_roll": 10.0, "wild_pose_prob": 0.05, "clutter": 0.4, "max_distractors": 1,
                     "noise_std": 3.0, "blur_prob": 0.1},
            "default": {},
            "hard": {"max_persons": 6, "person_decay": 0.85, "height_range": (0.3, 0.95), "max_overlap": 0.5,
                     "max_cover": 0.75, "truncation_prob": 0.25, "occluder_prob": 0.3, "yaw_spread": 40.0,
                     "max_roll": 40.0, "wild_pose_prob": 0.3, "clutter": 1.6, "max_distractors": 5,
                     "noise_std": 10.0, "blur_prob": 0.4},
        }
        if name not in presets:
            raise DataError(f"unknown synthetic difficulty {name!r}; use one of {', '.join(presets)}")
        return cls(**presets[name])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["height_range"] = list(self.height_range)
        return d
