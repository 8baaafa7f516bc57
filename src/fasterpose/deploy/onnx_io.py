"""ONNX files and onnxruntime sessions: the metadata fasterpose writes into an export, reading it back, and running
a session. Shared by :mod:`~fasterpose.deploy.export`, :mod:`~fasterpose.deploy.quantize`,
:mod:`~fasterpose.deploy.predictor` and :mod:`~fasterpose.deploy.bench`, which import it and not each other.
This module imports neither torch nor (at import time) onnx or onnxruntime.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from .. import __version__
from ..errors import CheckpointError
from ..spec import MAX_SPEC_JSON_CHARS, SPEC_METADATA_KEY, PoseSpec

__all__ = ["SPEC_METADATA_KEY", "add_metadata", "check_external_data", "read_onnx_spec", "ort_session",
           "run_session"]


def read_onnx_spec(metadata: dict[str, str], path: str | os.PathLike) -> PoseSpec:
    """The :class:`PoseSpec` stored in an exported model's metadata (``custom_metadata_map`` / metadata_props)."""
    text = metadata.get(SPEC_METADATA_KEY)
    if text is None:
        raise CheckpointError(f"ONNX model {path} has no {SPEC_METADATA_KEY!r} metadata; it was not written by "
                              "`fasterpose export`. Re-export it with `fasterpose export --checkpoint CKPT --out ...`")
    if len(text) > MAX_SPEC_JSON_CHARS:  # before parsing: a spec is a few kB
        raise CheckpointError(f"ONNX model {path}: metadata {SPEC_METADATA_KEY!r} is {len(text)} characters long, "
                              f"more than the {MAX_SPEC_JSON_CHARS} a spec can need; it was not written by "
                              "`fasterpose export`")
    try:
        return PoseSpec.from_json(text)
    except (ValueError, TypeError, RecursionError) as e:
        raise CheckpointError(f"ONNX model {path}: metadata {SPEC_METADATA_KEY!r} is not a valid PoseSpec "
                              f"({str(e)[:300]}); re-export it with this fasterpose version") from None


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


def _graph_tensors(graph: Any) -> Any:
    """Every tensor a graph holds: initializers, sparse ones, and those in node attributes and subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield from (attr.sparse_tensor.values, attr.sparse_tensor.indices)
            for sparse in attr.sparse_tensors:
                yield from (sparse.values, sparse.indices)
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def _escapes(location: str, folder: Path) -> str | None:
    """Why an external-data ``location`` leaves ``folder``, or ``None`` when it stays inside."""
    if not location:
        return "no file name"
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute() or PureWindowsPath(
            location).drive or location.startswith(("/", "\\")):
        return "an absolute path"
    if ".." in PurePosixPath(location.replace("\\", "/")).parts:
        return "a '..' part"
    target = (folder / location).resolve()
    if target != folder.resolve() and folder.resolve() not in target.parents:
        return f"a link that leads to {target}"
    return None


def check_external_data(path: str | os.PathLike) -> None:
    """Refuse an ONNX model whose tensors are stored in files outside its own folder, before anything opens them.

    An ONNX file may keep its weights in other files (``external_data`` entries naming a ``location``). A model from
    someone else could name ``/etc/shadow``, ``../../secret`` or a symbolic link that leads out of its folder, and
    have its bytes read as weights (and returned through the outputs). Only plain relative names that stay in the
    model's folder are accepted. Without the ``onnx`` package the graph cannot be read here, and onnxruntime's own
    path checks apply.

    Raises:
        CheckpointError: an entry leaves the folder (the message names the tensor and the location).
    """
    try:
        import onnx
    except ImportError:
        return
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not an ONNX file onnx can parse: onnxruntime says why (and checks paths itself)
        return
    folder = Path(os.path.abspath(path)).parent
    for tensor in _graph_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        why = _escapes(location, folder)
        if why:
            raise CheckpointError(f"ONNX model {path}: tensor {tensor.name!r} keeps its data in {location!r} ({why}), "
                                  f"outside the model's folder {folder}: refused, nothing was read from it. "
                                  "External data files must sit in the model's folder (or below it)")


def ort_session(path: str | os.PathLike, threads: int | None = None, optimize: bool = True,
                providers: list[str] | None = None) -> Any:
    """An onnxruntime session with sequential execution (``threads`` intra-op threads if given; CPU by default).

    The model's external-data entries are checked first (:func:`check_external_data`).
    """
    import onnxruntime as ort

    check_external_data(path)

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
