"""FasterPose: fast top-down 2D human pose estimation for CPUs.

The package root stays import-light (no torch) so that the onnxruntime inference path
(`fasterpose.Predictor(..., backend="onnxruntime")`) works without PyTorch installed.
Torch-backed names are resolved lazily on first access.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "Predictor", "Pipeline", "OnnxDetector"]

_LAZY = {
    "create_model": ("fasterpose.models", "create_model"),
    "list_models": ("fasterpose.models", "list_models"),
    "Predictor": ("fasterpose.deploy.predictor", "Predictor"),
    "Pipeline": ("fasterpose.video.pipeline", "Pipeline"),
    "OnnxDetector": ("fasterpose.detect", "OnnxDetector"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fasterpose' has no attribute {name!r}")
