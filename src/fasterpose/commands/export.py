"""``fasterpose export --checkpoint CKPT --out model.onnx [--int8 --calib DATA] [--dynamic-batch] [--opset 17]``,
or ``--out model.safetensors`` (the weights and the spec, no pickle: what to share for PyTorch).

Exports the checkpoint to ONNX (input ``images`` ``(N, 3, H, W)``, output ``heatmaps`` logits, PoseSpec in the
metadata), runs the ONNX checker and a parity check against PyTorch on real crops (max |logit diff| <= 1e-4), and
with ``--int8`` statically quantises it (QDQ, per-channel int8 weights, uint8 activations) calibrated on a few
hundred real crops from ``--calib`` (a COCO keypoints json: crops from the GT boxes; or an image folder: HOG boxes).
With ``--int8`` the file at ``--out`` is the int8 model. ``--eval ANNOTATIONS.json`` reports COCO AP on the GT
boxes for fp32 (and int8), and the fraction of keypoints whose heatmap peak agrees between fp32 and int8.
Nothing is written when a check fails.

``--json`` prints one object: ``checkpoint``, ``out`` (the file written), ``precision`` (``"fp32"`` or ``"int8"``),
``export`` (opset, dynamic batch, parity ``max_abs_diff`` and ``parity_source``; ``path`` is ``out`` for an fp32
export and ``None`` with ``--int8``, whose fp32 graph is not kept), with ``--int8`` also ``int8`` (``path`` = ``out``,
scheme, calibration) and ``int8_vs_fp32`` (peak agreement), and with ``--eval`` ``eval`` (COCO AP of fp32 and int8).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..deploy.quantize import DEFAULT_SCHEME, SCHEMES
from ..errors import DataError
from . import _options as opt

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", "--weights", dest="checkpoint", required=True, metavar="CKPT",
                        help="fasterpose checkpoint (.pt or .safetensors), published weights by name (`fasterpose "
                        "weights list`) or a SimpleBaseline file of MMPose or the official release")
    parser.add_argument("--out", required=True, metavar="MODEL.onnx",
                        help="output file: .onnx (an ONNX model for onnxruntime) or .safetensors (the weights and "
                        "spec without pickle: the way to share a model for PyTorch)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="dynamic batch dimension (default: fixed batch 1); lets the predictor run all persons "
                             "of an image in one call")
    parser.add_argument("--int8", action="store_true", help="write a statically quantised int8 model (QDQ)")
    parser.add_argument("--calib", metavar="DATA",
                        help="calibration data for --int8: a COCO keypoints json (crops from the GT boxes) or a "
                             "folder of images (HOG person boxes, else the whole image)")
    parser.add_argument("--calib-image-root", metavar="DIR",
                        help="image folder of a --calib json (default: its folder)")
    parser.add_argument("--calib-size", type=opt.int_range(8), default=300,
                        help="number of calibration crops (default 300)")
    parser.add_argument("--int8-scheme", choices=tuple(SCHEMES), default=DEFAULT_SCHEME,
                        help=f"int8 types (default {DEFAULT_SCHEME}: uint8 activations, int8 weights limited to 7 "
                             "bits, accurate on every x86 CPU; u8s8 uses 8-bit weights, which saturate on CPUs "
                             "without VNNI); see docs/choices.md")
    parser.add_argument("--parity-data", metavar="DATA",
                        help="images for the parity check (json or folder like --calib; default: --calib, else the "
                             "packaged sample photos or synthetic images)")
    parser.add_argument("--eval", metavar="ANNOTATIONS.json", dest="eval_ann",
                        help="COCO keypoints json: report AP on its GT boxes for fp32 vs int8 and the heatmap-peak "
                             "agreement (images next to the json or in --calib-image-root)")
    parser.add_argument("--json", action="store_true", help="print the export report as one JSON object")


def _run_safetensors(args: argparse.Namespace, out: Path) -> int:
    """``--out MODEL.safetensors``: the weights and the spec, checked by reading them back."""
    from ..deploy.export import export_safetensors

    onnx_only = [flag for flag, given in (("--int8", args.int8), ("--calib", args.calib), ("--eval", args.eval_ann),
                                          ("--parity-data", args.parity_data), ("--dynamic-batch", args.dynamic_batch))
                 if given]
    if onnx_only:
        raise DataError(f"{', '.join(onnx_only)} apply to an ONNX export; --out {out} writes safetensors (the weights "
                        "as they are). Drop them, or write an .onnx file")
    report = export_safetensors(args.checkpoint, out)
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "out": str(out), "export": report}))
        return 0
    print(f"wrote {out} (safetensors: {report['tensors']} tensors, {report['bytes'] / 1e6:.1f} MB, no pickle; "
          f"{report['model_name']} {report['input_size'][0]}x{report['input_size'][1]} {report['keypoint_set']}, "
          "spec in its metadata). Use it as --checkpoint/--weights, or fasterpose.Predictor(path)")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..deploy.export_job import export_checked
    from ..io_utils import check_not_an_input, check_writable

    if args.int8 and not args.calib:
        raise DataError("--int8 needs --calib DATA (a COCO keypoints json or a folder of images with people): the "
                        "int8 ranges are calibrated on real person crops")
    if args.eval_ann and not Path(args.eval_ann).is_file():
        raise DataError(f"--eval {args.eval_ann} does not exist; pass a COCO person keypoints json")
    out = Path(args.out)
    if out.suffix.lower() not in (".onnx", ".safetensors"):
        raise DataError(f"--out {out} should end in .onnx (an ONNX model for onnxruntime) or .safetensors (the "
                        "weights and spec, without pickle, for PyTorch)")
    check_writable(out, "--out")
    check_not_an_input(out, [args.checkpoint, args.calib, args.parity_data, args.eval_ann], "--out")
    if out.suffix.lower() == ".safetensors":
        return _run_safetensors(args, out)
    report, spec = export_checked(args.checkpoint, out, opset=args.opset, dynamic_batch=args.dynamic_batch,
                                  int8=args.int8, calib_data=args.calib, calib_size=args.calib_size,
                                  calib_image_root=args.calib_image_root, int8_scheme=args.int8_scheme,
                                  parity_data=args.parity_data, eval_ann=args.eval_ann)
    if args.json:
        print(json.dumps(report))
        return 0
    e = report["export"]
    print(f"wrote {out} ({'int8' if args.int8 else 'fp32'}, opset {e['opset']}, "
          f"{'dynamic' if e['dynamic_batch'] else 'fixed'} batch, {spec.model_name} "
          f"{spec.input_size[0]}x{spec.input_size[1]} {spec.keypoint_set.name}, "
          f"{spec.keypoint_set.num_keypoints} keypoints)")
    print(f"parity fp32 ONNX vs PyTorch: max |logit diff| {e['max_abs_diff']:.2e} on {e['parity_source']}")
    if args.int8:
        c = report["int8_vs_fp32"]
        conf = c["peak_agreement_confident"]
        conf_text = f"{100 * conf:.1f}% of {c['confident_keypoints']}" if conf is not None else "none"
        print(f"int8 ({report['int8']['scheme']}) vs fp32 on {c['source']}: heatmap peak agreement "
              f"{100 * c['peak_agreement']:.1f}% (within 1 px {100 * c['peak_agreement_1px']:.1f}%, confident "
              f"keypoints {conf_text}), logit correlation {c['correlation']:.4f}")
    if "eval" in report:
        ap32 = report["eval"]["fp32"]["AP"]
        line = f"COCO AP on GT boxes of {args.eval_ann}: fp32 {ap32:.4f}"
        if "int8" in report["eval"]:
            ap8 = report["eval"]["int8"]["AP"]
            line += f", int8 {ap8:.4f} (change {ap8 - ap32:+.4f})"
        print(line)
    return 0
