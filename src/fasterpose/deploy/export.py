"""ONNX export with embedded :class:`~fasterpose.spec.PoseSpec` and an automatic PyTorch parity check.

The exported graph has one input ``"images"`` ``(N, 3, H, W)`` float32 (normalised RGB crops, see
:func:`fasterpose.geometry.normalize_crop`) and one output ``"heatmaps"`` ``(N, K, H/4, W/4)`` (logits; the
activation from the spec is applied by the predictor). ``N`` is fixed to 1 unless ``dynamic_batch=True``.

The model's metadata_props hold everything a predictor needs:

- ``fasterpose_spec``: the PoseSpec JSON (model name, input size, keypoint set, codec, activation, flip test);
- ``keypoint_set`` and ``keypoint_names`` (JSON list), ``fasterpose_version``, ``precision`` (``fp32``/``int8``).

The legacy TorchScript exporter (``dynamo=False``) is used: it needs no ``onnxscript`` and handles every registered
model (plain convolutions, BN, ReLU, PixelShuffle/ConvTranspose). The file is written atomically: if the checker or
the parity check (max abs difference of the logits between onnxruntime and PyTorch <= ``atol``, default 1e-4) fails,
no file is left behind.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, FasterPoseError
from ..io_utils import atomic_path
from ..spec import PoseSpec
from .crops import default_parity_crops
from .onnx_io import SPEC_METADATA_KEY, add_metadata, ort_session, run_session

logger = logging.getLogger(__name__)

# add_metadata, ort_session, run_session and SPEC_METADATA_KEY live in .onnx_io; imported here for callers that
# know them from this module.
__all__ = ["ExportError", "export_onnx", "export_safetensors", "add_metadata", "ort_session", "run_session",
           "SPEC_METADATA_KEY", "DEFAULT_OPSET", "INPUT_NAME", "OUTPUT_NAME"]

DEFAULT_OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "heatmaps"
PARITY_ATOL = 1e-4


class ExportError(FasterPoseError):
    """The exported model failed the ONNX checker or does not reproduce the PyTorch outputs."""


def _load(model: Any, spec: PoseSpec | None) -> tuple[Any, PoseSpec]:
    import torch

    if isinstance(model, torch.nn.Module):
        if spec is None:
            raise ValueError("export_onnx(nn.Module) needs spec=PoseSpec(...)")
        return model.eval(), spec
    from ..models import model_from_checkpoint

    try:
        return model_from_checkpoint(model)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {model}: its weights do not fit the model its spec describes "
                              f"({str(e).splitlines()[0]} ...)") from e


def _newest_opset() -> int:
    """The newest opset the TorchScript ONNX exporter of the installed PyTorch writes."""
    try:
        from torch.onnx import _constants
    except ImportError:  # a PyTorch without the module: let the exporter itself decide
        return 10_000
    newest = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(_constants, "ONNX_MAX_OPSET", 10_000))
    return int(newest)


def export_onnx(
    model: Any,
    out: str | os.PathLike,
    spec: PoseSpec | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    parity_inputs: np.ndarray | None = None,
    parity_source: str | None = None,
    atol: float = PARITY_ATOL,
) -> dict[str, Any]:
    """Export a checkpoint (path or dict) or ``nn.Module`` to ONNX, check it and verify parity with PyTorch.

    Args:
        model: checkpoint path / dict, or an ``nn.Module`` (then ``spec`` is required).
        out: destination ``.onnx`` path (written atomically).
        spec: the PoseSpec for an ``nn.Module``.
        opset: ONNX opset (>= 17).
        dynamic_batch: make the batch dimension dynamic (default: fixed batch 1).
        parity_inputs: ``(N, 3, H, W)`` float32 normalised crops for the parity check; default: real crops from
            :func:`fasterpose.deploy.crops.default_parity_crops`.
        parity_source: description of ``parity_inputs`` for the report.
        atol: maximum allowed absolute difference of the logits.

    Returns:
        Report dict: ``path``, ``opset``, ``dynamic_batch``, ``max_abs_diff``, ``parity_crops``, ``parity_source``,
        ``input_size``, ``keypoint_set``.

    Raises:
        ExportError: the ONNX checker failed or the parity check did not hold (no file is written).
    """
    import onnx
    import torch

    if opset < 17:
        raise ExportError(f"opset {opset} is too old; use --opset 17 or newer")
    newest = _newest_opset()
    if opset > newest:
        raise ExportError(f"opset {opset} is newer than this PyTorch's ONNX exporter supports ({newest}); use "
                          f"--opset 17..{newest}")
    net, spec = _load(model, spec)
    net = net.cpu().eval()
    h, w = spec.input_size
    if parity_inputs is None:
        parity_inputs, parity_source = default_parity_crops(spec)
    parity_inputs = np.ascontiguousarray(parity_inputs, dtype=np.float32)
    if parity_inputs.ndim != 4 or parity_inputs.shape[1:] != (3, h, w):
        raise ValueError(f"parity_inputs must be (N, 3, {h}, {w}), got {parity_inputs.shape}")

    dummy = torch.from_numpy(parity_inputs[:1].copy())
    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    out = Path(out)
    with atomic_path(out, suffix=".onnx") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's DeprecationWarning / TracerWarnings
            torch.onnx.export(net, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, dynamic_axes=dynamic_axes, do_constant_folding=True,
                              dynamo=False)
        proto = onnx.load(str(tmp))
        add_metadata(proto, spec, precision="fp32")
        proto.doc_string = f"fasterpose {spec.model_name} {h}x{w} {spec.keypoint_set.name} (heatmap logits)"
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as e:  # noqa: BLE001 - onnx raises ValidationError / InferenceError
            raise ExportError(f"exported model for {spec.model_name} failed the ONNX checker: {e}") from e
        onnx.save(proto, str(tmp))

        with torch.inference_mode():
            expected = net(torch.from_numpy(parity_inputs)).float().numpy()
        got = run_session(ort_session(tmp), parity_inputs)
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime output shape {got.shape} != PyTorch {expected.shape}")
        diff = float(np.max(np.abs(got - expected)))
        logger.info("parity %s vs PyTorch on %d crops (%s): max |logit diff| = %.2e (tolerance %.0e)",
                    out.name, len(parity_inputs), parity_source, diff, atol)
        if not diff <= atol:
            raise ExportError(f"ONNX export of {spec.model_name} does not reproduce PyTorch: max |logit diff| "
                              f"{diff:.3g} > {atol:g} on {len(parity_inputs)} crops ({parity_source}); no file was "
                              f"written to {out}. Try another --opset or report a bug")
    return {"path": str(out), "opset": opset, "dynamic_batch": dynamic_batch, "max_abs_diff": diff,
            "parity_crops": len(parity_inputs), "parity_source": parity_source, "input_size": [h, w],
            "keypoint_set": spec.keypoint_set.name, "model_name": spec.model_name}


def export_safetensors(model: Any, out: str | os.PathLike, spec: PoseSpec | None = None) -> dict[str, Any]:
    """Write a model's weights and its :class:`PoseSpec` as a safetensors file: the way to share a model without
    pickle (nothing in it can run code). Layout: :mod:`fasterpose.checkpoint`.

    The file is read back, the model rebuilt from it alone, and its weights and spec compared with the source's
    before it is put at ``out`` (atomically); a difference raises :class:`ExportError` and writes nothing.

    Args:
        model: checkpoint path / dict / published name, or an ``nn.Module`` (then ``spec`` is required).
        out: destination ``.safetensors`` path.
        spec: the PoseSpec for an ``nn.Module``.

    Returns:
        Report dict: ``path``, ``format``, ``tensors``, ``bytes``, ``model_name``, ``input_size``, ``keypoint_set``.
    """
    import torch

    from ..checkpoint import SAFETENSORS_FORMAT, save_safetensors
    from ..models import model_from_checkpoint

    net, spec = _load(model, spec)
    state = net.state_dict()
    out = Path(out)
    with atomic_path(out, suffix=".safetensors") as tmp:
        save_safetensors(tmp, state, spec)
        back, back_spec = model_from_checkpoint(tmp, where=out)
        ours = back.state_dict()
        if back_spec.to_dict() != spec.to_dict() or ours.keys() != state.keys() or not all(
                torch.equal(ours[k].cpu(), v.cpu()) for k, v in state.items()):
            raise ExportError(f"the safetensors file written for {spec.model_name} does not read back as the same "
                              f"model and spec; no file was written to {out}. Please report a bug")
        size = tmp.stat().st_size
    return {"path": str(out), "format": SAFETENSORS_FORMAT, "tensors": len(state), "bytes": size,
            "model_name": spec.model_name, "input_size": list(spec.input_size),
            "keypoint_set": spec.keypoint_set.name}
