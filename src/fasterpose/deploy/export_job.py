"""The export command's work: an ONNX model checked before it is kept.

:func:`export_checked` exports a checkpoint to ONNX with the parity check against PyTorch, optionally quantises it to
int8 (calibrated on real crops) and measures the int8 model's heatmap-peak agreement with fp32, optionally reports
COCO AP on an annotation file's GT boxes, and only then writes ``out`` atomically: a failed or interrupted export
never leaves a file there. ``fasterpose export`` is the command-line wiring around it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, DataError

logger = logging.getLogger(__name__)

__all__ = ["export_checked"]


def _gt_predictions(onnx_path: Path, ann_file: Path, image_root: Path | None) -> tuple[list[dict], np.ndarray]:
    """Predict every GT person box of ``ann_file`` with an exported model; COCO results (raw box/keypoint scores)."""
    from ..evaluation.coco import make_results, oks_sigmas
    from ..io_utils import read_image, read_json
    from .crops import coco_person_boxes
    from .predictor import Predictor

    predictor = Predictor(onnx_path, backend="onnxruntime")
    image_ids, keypoints, areas = [], [], []
    for image_id, path, boxes in coco_person_boxes(ann_file, image_root, "--eval"):
        image = read_image(path)
        if image is None:
            raise DataError(f"cannot read image {path} listed in {ann_file}")
        people = predictor(image, boxes)
        for p in people:
            image_ids.append(image_id)
            keypoints.append(p["keypoints"])
            areas.append(p["box"][2] * p["box"][3])
    kp = np.stack(keypoints)
    gt = read_json(ann_file, "COCO keypoints", "pass a COCO person keypoints json as --eval")
    cat = next((c["id"] for c in gt.get("categories", []) if isinstance(c, dict) and c.get("keypoints")), 1)
    results = make_results(image_ids, kp, np.ones(len(kp)), np.asarray(areas),
                           sigmas=oks_sigmas(predictor.keypoint_set)[0], category_id=cat)
    return results, kp



def export_checked(checkpoint: str, out: Path, *, opset: int = 17, dynamic_batch: bool = False, int8: bool = False,
                   calib_data: str | None = None, calib_size: int = 300, calib_image_root: str | None = None,
                   int8_scheme: str | None = None, parity_data: str | None = None,
                   eval_ann: str | None = None) -> tuple[dict[str, Any], Any]:
    """Export ``checkpoint`` to the ONNX file ``out`` (fp32, or int8 with ``int8``), checked before it is written.

    Args:
        checkpoint: a fasterpose checkpoint, safetensors file, published name or SimpleBaseline file.
        out: the ``.onnx`` file to write (atomically, only when every check passed).
        opset, dynamic_batch: the ONNX graph's opset and whether its batch dimension is dynamic.
        int8, calib_data, calib_size, calib_image_root, int8_scheme: static int8 quantisation calibrated on up to
            ``calib_size`` real crops of ``calib_data`` (a COCO keypoints json or an image folder).
        parity_data: crops for the parity check (default: ``calib_data``, else packaged sample photos).
        eval_ann: a COCO keypoints json: COCO AP on its GT boxes for fp32 (and int8).

    Returns:
        ``(report, spec)``: the report the command prints (``export``, ``int8``, ``int8_vs_fp32``, ``eval``,
        ``precision``; every path in it exists) and the model's :class:`~fasterpose.spec.PoseSpec`.
    """
    from ..evaluation.coco import evaluate_keypoints
    from ..io_utils import atomic_path, temp_folder
    from ..models.loading import load_pose_checkpoint
    from ..spec import PoseSpec
    from .crops import collect_crops, default_parity_crops
    from .export import export_onnx
    from .onnx_io import ort_session, run_session
    from .quantize import DEFAULT_SCHEME, compare_heatmaps, quantize_onnx

    ckpt = load_pose_checkpoint(checkpoint)
    try:
        spec = PoseSpec.from_dict(ckpt["spec"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {checkpoint}: invalid spec ({e})") from e
    image_root = Path(calib_image_root) if calib_image_root else None

    calib = calib_desc = None
    if calib_data:
        calib, calib_desc = collect_crops(calib_data, spec, max_crops=calib_size, image_root=image_root)
        logger.info("calibration: %s", calib_desc)
    parity_src = parity_data or calib_data
    if parity_src:
        if parity_src == calib_data and calib is not None:
            # A fixed, spread-out subset of the calibration crops.
            idx = np.linspace(0, len(calib) - 1, num=min(8, len(calib))).round().astype(int)
            parity, parity_desc = calib[idx], f"{len(idx)} of {calib_desc}"
        else:
            parity, parity_desc = collect_crops(parity_src, spec, max_crops=8, image_root=image_root,
                                                option="--parity-data" if parity_data else "--calib")
    else:
        parity, parity_desc = default_parity_crops(spec)

    report: dict[str, Any] = {"checkpoint": str(checkpoint), "out": str(out)}
    with temp_folder("fasterpose_export_") as tmpdir:
        # Every model is written in the temporary folder first: --out is replaced only when all checks (parity,
        # int8 agreement, --eval) succeeded, so a failed or interrupted export never leaves a file there.
        fp32_path = Path(tmpdir) / "fp32.onnx"
        report["export"] = export_onnx(ckpt, fp32_path, opset=opset, dynamic_batch=dynamic_batch,
                                       parity_inputs=parity, parity_source=parity_desc)
        if int8:
            # The int8 model is written to a temporary file first: it only replaces --out when everything succeeded.
            int8_tmp = Path(tmpdir) / "int8.onnx"
            report["int8"] = quantize_onnx(fp32_path, int8_tmp, calib, scheme=int8_scheme or DEFAULT_SCHEME,
                                           calib_description=calib_desc)
            # Peak agreement on real crops: the --eval annotations' GT persons when given (not used for calibration),
            # else the calibration crops themselves.
            if eval_ann:
                check, check_desc = collect_crops(eval_ann, spec, max_crops=calib_size, augment=False,
                                                  image_root=image_root, option="--eval")
            else:
                check, check_desc = calib, f"the calibration crops ({calib_desc})"
            ref = run_session(ort_session(fp32_path), check)
            got = run_session(ort_session(int8_tmp), check)
            report["int8_vs_fp32"] = compare_heatmaps(ref, got, activation=spec.heatmap_activation)
            report["int8_vs_fp32"].update(crops=len(check), source=check_desc)
            agree = report["int8_vs_fp32"]["peak_agreement"]
            if agree < 0.95:
                logger.warning("int8 heatmap peaks agree with fp32 for only %.1f%% of keypoints (goal >= 95%%); "
                               "check the calibration data or use the fp32 model", 100 * agree)
        if eval_ann:
            ann = Path(eval_ann)
            res32, kp32 = _gt_predictions(fp32_path, ann, image_root)
            report["eval"] = {"annotations": str(ann), "fp32": evaluate_keypoints(ann, res32)}
            if int8:
                res8, kp8 = _gt_predictions(int8_tmp, ann, image_root)
                report["eval"]["int8"] = evaluate_keypoints(ann, res8)
                d = np.linalg.norm(kp32[..., :2] - kp8[..., :2], axis=-1)
                report["eval"]["int8_mean_keypoint_shift_px"] = float(d.mean())
        with atomic_path(out, suffix=".onnx") as tmp:
            shutil.copyfile(int8_tmp if int8 else fp32_path, tmp)
    # Paths name the files that exist now: with --int8 --out holds the int8 model and the fp32 graph is not kept.
    report["export"]["path"] = None if int8 else str(out)
    if int8:
        report["int8"]["path"] = str(out)
    report["precision"] = "int8" if int8 else "fp32"

    return report, spec
