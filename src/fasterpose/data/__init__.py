"""Top-down datasets (COCO, MPII), training augmentations and person-detection loading.

``augment`` and ``detections`` are torch free (the onnxruntime ``predict`` path reads detection files); the
datasets need torch and are imported lazily on first access, so ``import fasterpose.data.detections`` does not
pull in PyTorch.
"""

from __future__ import annotations

from typing import Any

from .augment import MPII_AUGMENT, AugmentConfig, color_jitter, half_body_transform, random_flip, random_scale_rotation
from .detections import Detections, load_detections, match_detections, read_detections

__all__ = [
    "AugmentConfig",
    "MPII_AUGMENT",
    "half_body_transform",
    "random_scale_rotation",
    "random_flip",
    "color_jitter",
    "TopDownDataset",
    "CocoKeypoints",
    "MPIIDataset",
    "Detections",
    "read_detections",
    "load_detections",
    "match_detections",
]

_LAZY = {
    "TopDownDataset": ("fasterpose.data.coco", "TopDownDataset"),
    "CocoKeypoints": ("fasterpose.data.coco", "CocoKeypoints"),
    "MPIIDataset": ("fasterpose.data.mpii", "MPIIDataset"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fasterpose.data' has no attribute {name!r}")
