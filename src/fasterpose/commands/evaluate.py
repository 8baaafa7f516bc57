"""``fasterpose eval [CONFIG] --checkpoint CKPT [--opt k=v] [--boxes gt|DETS.json] [--flip/--no-flip] [--json]``.

Runs the published evaluation of a checkpoint: person boxes (ground truth or a detector's), flip test, decoding,
rescoring, OKS-NMS and pycocotools' COCOeval with the keypoint set's OKS sigmas (a set without sigmas: a default
sigma, said in the report, and PCK@0.2 of the box size as the headline; MPII: PCKh). Without CONFIG the
checkpoint's stored training config says which dataset to use. Works under torchrun too (every rank predicts a
share, rank 0 scores).
"""

from __future__ import annotations

import argparse
import json

from . import _options as opt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="YAML config or shipped config name (default: the config stored in the checkpoint)")
    parser.add_argument("--checkpoint", "--weights", "-c", dest="checkpoint", required=True, metavar="CKPT",
                        help="fasterpose checkpoint (.pt or .safetensors), published weights by name (`fasterpose "
                        "weights list`) or a SimpleBaseline file of MMPose or the official release (then pass CONFIG)")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --opt data.val_ann=PATH (repeatable)")
    parser.add_argument("--boxes", default=None, metavar="gt|DETS.json",
                        help="person boxes: 'gt' or a COCO person detection json (default: eval.boxes)")
    flip = parser.add_mutually_exclusive_group()
    flip.add_argument("--flip", dest="flip", action="store_true", default=None,
                      help="flip test (default: eval.flip_test)")
    flip.add_argument("--no-flip", dest="flip", action="store_false", help="no flip test")
    parser.add_argument("--batch-size", type=opt.positive_int, default=None,
                        help="per-device batch (default: eval.batch_size)")
    parser.add_argument("--results", default=None, metavar="PATH", help="also write the COCO results json here")
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda if available")
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")


def run(args: argparse.Namespace) -> int:
    from ..engine import distributed as D
    from ..engine.evaluate import evaluate_checkpoint
    from ..evaluation import STAT_NAMES, format_pckh_table, format_table
    from ..io_utils import check_writable

    if args.results:
        check_writable(args.results, "--results")  # before the evaluation, not after it
    overrides = list(args.opt)
    if args.boxes is not None:
        overrides.append(f"eval.boxes={args.boxes}")
    if args.flip is not None:
        overrides.append(f"eval.flip_test={str(args.flip).lower()}")
    if args.batch_size is not None:
        overrides.append(f"eval.batch_size={args.batch_size}")
    try:
        report = evaluate_checkpoint(args.checkpoint, args.config, overrides, device=args.device,
                                     results_path=args.results)
    finally:
        D.cleanup()
    if report is None:  # not rank 0
        return 0
    if args.json:
        print(json.dumps(report))
        return 0
    stats = report["stats"]
    print(f"{report['checkpoint']}: {report['model']} {report['input_size'][0]}x{report['input_size'][1]}, "
          f"{report['dataset']} ({report['num_persons']} persons, boxes: {report['boxes']}, "
          f"flip test: {'on' if report['flip_test'] else 'off'}, {report['seconds']:.1f} s)\n")
    if report["metric"] == "Mean":
        print(format_pckh_table(stats))
        return 0
    print(f"keypoint set {report['keypoint_set']} ({len(report['keypoint_names'])} keypoints)")
    if report["metric"] == "PCK":
        print(f"PCK@{stats['pck_threshold']:g} of the box size {stats['PCK']:.4f}, AUC (0-0.5) {stats['AUC']:.4f}, "
              f"mean end-point error {stats['EPE']:.2f} px  <- headline (the set has no OKS sigmas)")
    if report["sigmas_source"] == "default":
        print(f"COCO OKS AP with the DEFAULT OKS sigma {report['sigmas'][0]:g} for every keypoint (the set has none):")
    else:
        print("COCO OKS AP with the keypoint set's OKS sigmas:")
    print(format_table({k: v for k, v in stats.items() if k in STAT_NAMES}))
    return 0
