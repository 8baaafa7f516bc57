"""OpenCV's HOG people detector: weak but needs nothing; the fallback when no detector file is given."""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np

from ..errors import DataError

_WINDOW = (64, 128)  # (width, height) of the default people detector's window


def hog_available() -> bool:
    return hasattr(cv2, "HOGDescriptor")


@functools.lru_cache(maxsize=1)
def _hog() -> Any:
    """One descriptor per process (building it and loading the SVM costs more than a small image's detection)."""
    import cv2

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def hog_people_boxes(image: np.ndarray, max_side: int = 640) -> np.ndarray:
    """OpenCV's HOG + linear SVM people detector (Dalal & Triggs), run on the image shrunk to ``max_side``.

    Args:
        image: ``(H, W, 3)`` BGR uint8.
        max_side: longer image side used for detection (speed); boxes are mapped back to the full image.

    Returns:
        ``(M, 5)`` boxes ``(x, y, w, h, score)`` in image pixels; the score is the SVM margin (not a probability).

    Raises:
        DataError: this OpenCV build has no HOG people detector (OpenCV >= 5 removed it).
    """
    import cv2

    if not hasattr(cv2, "HOGDescriptor") or not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
        raise DataError(f"this OpenCV ({cv2.__version__}) has no HOG people detector (removed in OpenCV 5); "
                        "pass person boxes with --boxes DETECTIONS.json, a detector with --detector FILE.onnx or use "
                        "--full-image, or install 'opencv-python-headless<5'")
    hog = _hog()
    factor = min(1.0, max_side / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else image
    if small.shape[0] < _WINDOW[1] or small.shape[1] < _WINDOW[0]:
        # No person fits: the detector's window is 64x128. OpenCV's detectMultiScale also corrupts memory (crashes
        # the process) on some images smaller than its window, e.g. 96x80 or 300x47 (OpenCV 4.x).
        return np.zeros((0, 5))
    rects, weights = hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
    if len(rects) == 0:
        return np.zeros((0, 5))
    boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / factor
    return np.concatenate([boxes, np.asarray(weights, dtype=np.float64).reshape(-1, 1)], axis=1)
