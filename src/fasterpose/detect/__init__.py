"""Person detectors: image -> ``(M, 5)`` boxes ``(x, y, w, h, score)`` in image pixels.

:class:`OnnxDetector` runs YOLOX, RTMDet and Ultralytics ONNX files; :func:`open_detector` also takes a published
detector's name (:data:`DETECTORS`, downloaded once); :class:`HogDetector` is OpenCV's HOG people detector, the
fallback that needs no file.
"""

from __future__ import annotations

import numpy as np

from .hog import hog_people_boxes
from .onnx_detector import LAYOUTS, OnnxDetector, detect_layout
from .zoo import DETECTORS, open_detector

__all__ = ["DETECTORS", "HogDetector", "LAYOUTS", "OnnxDetector", "detect_layout", "hog_people_boxes",
           "open_detector"]


class HogDetector:
    """OpenCV's HOG people detector with a score threshold (the SVM margin, not a probability)."""

    def __init__(self, score_thr: float = 0.3) -> None:
        self.score_thr = float(score_thr)
        hog_people_boxes(np.zeros((128, 64, 3), np.uint8))  # fails early with a clear error without HOG

    def __call__(self, image: np.ndarray) -> np.ndarray:
        boxes = hog_people_boxes(image)
        boxes = boxes[boxes[:, 4] >= self.score_thr]
        return boxes[np.argsort(-boxes[:, 4], kind="stable")]

    def __repr__(self) -> str:
        return f"HogDetector(score_thr={self.score_thr})"
