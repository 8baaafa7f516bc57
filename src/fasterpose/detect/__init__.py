"""Person detectors: image -> ``(M, 5)`` boxes ``(x, y, w, h, score)`` in image pixels.

:class:`OnnxDetector` runs YOLOX, RTMDet and Ultralytics ONNX files; :func:`open_detector` also takes a published
detector's name (:data:`DETECTORS`, downloaded once); :class:`HogDetector` is OpenCV's HOG people detector, the
fallback that needs no file, where this OpenCV has it (:func:`hog_available`; OpenCV 5 removed it).
"""

from __future__ import annotations

from .hog import HogDetector, HogUnavailableError, hog_available, hog_people_boxes
from .onnx_detector import LAYOUTS, OnnxDetector, detect_layout
from .zoo import DETECTORS, open_detector

__all__ = ["DETECTORS", "HogDetector", "HogUnavailableError", "LAYOUTS", "OnnxDetector", "detect_layout",
           "hog_available", "hog_people_boxes", "open_detector"]

