"""Deployment: ONNX export (``export.py``), int8 quantisation (``quantize.py``), the :class:`Predictor`
(``predictor.py``) and the latency benchmark (``bench.py``).

This package ``__init__`` imports nothing heavy: the onnxruntime path of :class:`fasterpose.deploy.predictor.Predictor`
must work without PyTorch, so torch is imported lazily only by the modules (and code paths) that need it.
"""

from __future__ import annotations

__all__ = ["export", "quantize", "predictor", "bench"]
