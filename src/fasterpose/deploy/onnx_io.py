"""ONNX files and onnxruntime sessions: the metadata fasterpose writes into an export, reading it back, and running
a session. Shared by :mod:`~fasterpose.deploy.export`, :mod:`~fasterpose.deploy.quantize`,
:mod:`~fasterpose.deploy.predictor` and :mod:`~fasterpose.deploy.bench`, which import it and not each other.
This module imports neither torch nor (at import time) onnx or onnxruntime.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .. import __version__
from ..errors import CheckpointError
from ..spec import PoseSpec

__all__ = ["SPEC_METADATA_KEY", "add_metadata", "read_onnx_spec", "ort_session", "run_session"]

SPEC_METADATA_KEY = "fasterpose_spec"


def read_onnx_spec(metadata: dict[str, str], path: str | os.PathLike) -> PoseSpec:
    """The :class:`PoseSpec` stored in an exported model's metadata (``custom_metadata_map`` / metadata_props)."""
    text = metadata.get(SPEC_METADATA_KEY)
    if text is None:
        raise CheckpointError(f"ONNX model {path} has no {SPEC_METADATA_KEY!r} metadata; it was not written by "
                              "`fasterpose export`. Re-export it with `fasterpose export --checkpoint CKPT --out ...`")
    try:
        return PoseSpec.from_json(text)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"ONNX model {path}: metadata {SPEC_METADATA_KEY!r} is not a valid PoseSpec ({e}); "
                              "re-export it with this fasterpose version") from e


def add_metadata(model_proto: Any, spec: PoseSpec, precision: str = "fp32", extra: dict[str, str] | None = None
                 ) -> None:
    """Write the spec, keypoint names, version and precision into an ``onnx.ModelProto``'s metadata_props."""
    kset = spec.keypoint_set
    entries = {
        SPEC_METADATA_KEY: spec.to_json(),
        "keypoint_set": kset.name,
        "keypoint_names": json.dumps(list(kset.names)),
        "fasterpose_version": __version__,
        "precision": precision,
        **(extra or {}),
    }
    existing = {p.key: p for p in model_proto.metadata_props}
    for key, value in entries.items():
        if key in existing:
            existing[key].value = value
        else:
            prop = model_proto.metadata_props.add()
            prop.key, prop.value = key, value


def ort_session(path: str | os.PathLike, threads: int | None = None, optimize: bool = True,
                providers: list[str] | None = None) -> Any:
    """An onnxruntime session with sequential execution (``threads`` intra-op threads if given; CPU by default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: QDQ graphs log harmless "Removing initializer" warnings
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


def run_session(session: Any, inputs: np.ndarray) -> np.ndarray:
    """Run an exported model on ``(N, 3, H, W)`` inputs, looping when its batch size is fixed."""
    inp = session.get_inputs()[0]
    batch = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    if batch is None:
        return session.run(None, {inp.name: inputs})[0]
    outs = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start:start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), np.float32)])
        outs.append(session.run(None, {inp.name: chunk})[0][:n])
    return np.concatenate(outs)
