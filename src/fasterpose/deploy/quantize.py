"""Static int8 quantisation of exported models with onnxruntime, calibrated on real person crops.

``quantize_onnx`` runs ``onnxruntime.quantization.quantize_static`` with:

* **QDQ format**, per-channel symmetric **int8 weights** (``QInt8``), per-tensor **uint8 activations**
  (``QUInt8``, asymmetric) -- "U8S8". On x86-64 with AVX512-VNNI (this project's reference CPU, AMD EPYC) this is the
  combination onnxruntime's MLAS kernels run fastest (``vpdpbusd`` multiplies u8 x s8 natively; S8S8 activations are
  converted/handled through slower paths on x86), and asymmetric uint8 fits post-ReLU activations better. The
  ``activation_type="qint8"`` option is kept for ARM, where S8S8 is the fast path.
* **MinMax calibration** over a few hundred real crops (percentile/entropy calibration was not better for these
  heatmap networks in our runs and needs far more memory).
* The fp32 model is first run through ``quant_pre_process`` (symbolic shape inference + graph optimisation, e.g.
  BN folding). Without it the int8 model is *not* faster than fp32 (measured on fasterpose_r50 256x192, 1 thread,
  interleaved: fp32 396 ms, U8S8 without pre-processing 438 ms, S8S8 with 260 ms, U8S8 with 118 ms; the machine was
  loaded, the ratios are what matters).
* The last convolution (heatmap logits) stays fp32 (``keep_last_conv_fp32``): 8-bit logits lose the small
  differences between neighbouring heatmap pixels that decide the peak; it is < 0.5% of the MACs.

Calibration crops come from :func:`fasterpose.deploy.crops.collect_crops` (real person crops).

This module imports no torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..io_utils import atomic_path, temp_folder
from .onnx_io import SPEC_METADATA_KEY, add_metadata, read_onnx_spec

logger = logging.getLogger(__name__)

__all__ = ["SCHEMES", "DEFAULT_SCHEME", "quantize_onnx", "peak_agreement", "compare_heatmaps"]

@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs one INFO line per copied bias on the root logger; hide them unless debugging."""
    root = logging.getLogger()
    level = root.level
    if root.getEffectiveLevel() > logging.DEBUG:
        root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


class _CropReader:
    """``CalibrationDataReader`` over normalised crops, in batches matching the model's batch dimension."""

    def __init__(self, input_name: str, inputs: np.ndarray, batch: int) -> None:
        self.input_name = input_name
        self.inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        self.batch = batch
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.inputs) - self.batch + 1, self.batch):
            yield {self.input_name: self.inputs[start:start + self.batch]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


# name -> (activation type, weight type, reduce_range). See the module docstring for what each one costs where.
SCHEMES: dict[str, tuple[str, str, bool]] = {
    "u8s8_7bit": ("QUInt8", "QInt8", True),
    "u8s8": ("QUInt8", "QInt8", False),
    "u8u8": ("QUInt8", "QUInt8", False),
    "s8s8": ("QInt8", "QInt8", False),
}
DEFAULT_SCHEME = "u8s8_7bit"


def quantize_onnx(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calib_inputs: np.ndarray,
    scheme: str = DEFAULT_SCHEME,
    per_channel: bool = True,
    preprocess: bool = True,
    calib_description: str = "",
    keep_last_conv_fp32: bool = True,
) -> dict[str, Any]:
    """Statically quantise an exported fp32 model to int8 (QDQ), calibrated on ``calib_inputs``.

    Args:
        fp32_path: model written by :func:`fasterpose.deploy.export.export_onnx`.
        out_path: destination of the int8 model (written atomically; metadata copied, ``precision=int8``).
        calib_inputs: ``(N, 3, H, W)`` float32 normalised crops (a few hundred real ones).
        scheme: one of :data:`SCHEMES`: ``"u8s8_7bit"`` (default: uint8 activations, int8 weights limited to 7 bits,
            accurate on every x86 CPU), ``"u8s8"`` (full 8-bit weights: accurate only on CPUs with VNNI),
            ``"u8u8"`` or ``"s8s8"``.
        per_channel: per-output-channel weight scales.
        preprocess: run ``quant_pre_process`` on the fp32 model first.
        calib_description: where the crops came from (stored in the metadata).
        keep_last_conv_fp32: leave the final convolution (the heatmap logits) in fp32: its output quantised to 8 bits
            would round away the small logit differences between neighbouring heatmap pixels that decide the peak,
            and it costs < 0.5% of the MACs.

    Returns:
        Report dict: ``path``, ``scheme``, ``calibration_crops``, ``activation_type``, ``weight_type``,
        ``reduce_range``, ``per_channel``, ``calibration_source``, ``fp32_nodes``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if scheme not in SCHEMES:
        raise ValueError(f"int8 scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    act_name, weight_name, reduce_range = SCHEMES[scheme]
    act, weight = getattr(QuantType, act_name), getattr(QuantType, weight_name)
    fp32_path = Path(fp32_path)
    src = onnx.load(str(fp32_path), load_external_data=False)
    meta = {p.key: p.value for p in src.metadata_props}
    spec = read_onnx_spec(meta, fp32_path)
    input_name = src.graph.input[0].name
    dim0 = src.graph.input[0].type.tensor_type.shape.dim[0]
    batch = dim0.dim_value if dim0.HasField("dim_value") and dim0.dim_value > 0 else 8
    if len(calib_inputs) < batch:
        raise ValueError(f"need at least {batch} calibration crops, got {len(calib_inputs)}")
    with temp_folder("fasterpose_quant_") as tmpdir:
        model_in = fp32_path
        with atomic_path(out_path, suffix=".onnx") as tmp, _quiet_root_logger():
            if preprocess:
                from onnxruntime.quantization.shape_inference import quant_pre_process

                model_in = Path(tmpdir) / "preprocessed.onnx"
                try:
                    quant_pre_process(str(fp32_path), str(model_in), skip_symbolic_shape=False)
                except Exception as e:  # noqa: BLE001 - symbolic shape inference chokes on some graphs
                    # (ShuffleNet's channel shuffle: Reshape to a computed shape); ONNX shape inference suffices.
                    logger.debug("symbolic shape inference failed (%s); using ONNX shape inference", e)
                    quant_pre_process(str(fp32_path), str(model_in), skip_symbolic_shape=True)
            convs = [n.name for n in onnx.load(str(model_in)).graph.node if n.op_type == "Conv"]
            exclude = convs[-1:] if keep_last_conv_fp32 else []  # nodes are stored in topological order
            quantize_static(
                str(model_in), str(tmp), _CropReader(input_name, calib_inputs, batch),
                quant_format=QuantFormat.QDQ, per_channel=per_channel, weight_type=weight, activation_type=act,
                reduce_range=reduce_range, calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude,
            )
            proto = onnx.load(str(tmp))
            add_metadata(proto, spec, precision="int8", extra={
                "quantization": json.dumps({"format": "QDQ", "scheme": scheme,
                                            "weight_type": weight_name + (" per-channel" if per_channel else ""),
                                            "weight_bits": 7 if reduce_range else 8,
                                            "activation_type": act_name, "calibration": "MinMax",
                                            "calibration_crops": int(len(calib_inputs)),
                                            "fp32_nodes": exclude,
                                            "calibration_source": calib_description}),
            })
            assert any(p.key == SPEC_METADATA_KEY for p in proto.metadata_props)
            onnx.save(proto, str(tmp))
    return {"path": str(out_path), "scheme": scheme, "calibration_crops": int(len(calib_inputs)),
            "activation_type": act_name, "weight_type": weight_name, "reduce_range": reduce_range,
            "per_channel": per_channel, "calibration_source": calib_description, "fp32_nodes": exclude}


def peak_agreement(reference: np.ndarray, other: np.ndarray, tolerance: int = 0) -> float:
    """Fraction of ``(n, k)`` heatmaps whose argmax lies within ``tolerance`` heatmap pixels (Chebyshev) of the
    reference's.

    Args:
        reference: ``(N, K, h, w)`` heatmaps (logits or probabilities).
        other: same shape.
        tolerance: allowed peak distance in heatmap pixels (0 = identical peak).
    """
    if reference.shape != other.shape:
        raise ValueError(f"heatmap shapes differ: {reference.shape} vs {other.shape}")
    n, k, _, w = reference.shape
    a = reference.reshape(n, k, -1).argmax(-1)
    b = other.reshape(n, k, -1).argmax(-1)
    dist = np.maximum(np.abs(a % w - b % w), np.abs(a // w - b // w))
    return float(np.mean(dist <= tolerance))


def compare_heatmaps(reference: np.ndarray, other: np.ndarray, activation: str = "sigmoid",
                     confident: float = 0.5) -> dict[str, float]:
    """Agreement statistics between fp32 and int8 heatmap logits ``(N, K, h, w)``.

    Args:
        reference: the fp32 logits.
        other: the int8 logits.
        activation: the model's heatmap activation (``"sigmoid"`` or ``"identity"``), to find confident keypoints.
        confident: a keypoint is confident when its fp32 peak (after the activation) is at least this.

    Returns:
        ``peak_agreement`` (identical argmax), ``peak_agreement_1px`` (within one heatmap pixel),
        ``peak_agreement_confident`` (identical argmax among the confident keypoints; ``None`` if there are none),
        ``confident_keypoints``, ``correlation`` (Pearson over all logits) and ``max_abs_diff``.
    """
    a = reference.astype(np.float64).ravel()
    b = other.astype(np.float64).ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    n, k = reference.shape[:2]
    ref, got = reference.reshape(n, k, -1), other.reshape(n, k, -1)
    peak = ref.max(-1).astype(np.float64)
    if activation == "sigmoid":
        peak = 1.0 / (1.0 + np.exp(-peak))
    mask = peak >= confident
    same = ref.argmax(-1) == got.argmax(-1)
    return {"peak_agreement": peak_agreement(reference, other),
            "peak_agreement_1px": peak_agreement(reference, other, tolerance=1),
            "peak_agreement_confident": float(same[mask].mean()) if mask.any() else None,
            "confident_keypoints": int(mask.sum()), "correlation": corr, "max_abs_diff": float(np.max(np.abs(a - b)))}
