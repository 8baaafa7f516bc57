"""``fasterpose eval-results ANNOTATIONS.json RESULTS.json``: score a COCO keypoint-results json with pycocotools.

By default the published SimpleBaseline/HRNet recipe is applied to the results first: rescoring (each result's
``score`` is the box score, its keypoint third values the keypoint scores) and per-image OKS-NMS (0.9).
``--no-rescore --no-nms`` gives exactly what a plain pycocotools ``COCOeval`` gives on the two files.
"""

from __future__ import annotations

import argparse
import json

from . import _options as opt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("annotations", metavar="ANNOTATIONS.json", help="COCO person keypoint annotation json")
    parser.add_argument("results", metavar="RESULTS.json", help="COCO keypoint results json (a list of results)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the ten stats, nothing else")
    parser.add_argument("--no-rescore", action="store_true",
                        help="keep the results' scores (default: box score x mean keypoint score above --kpt-thr)")
    nms = parser.add_mutually_exclusive_group()
    nms.add_argument("--no-nms", action="store_true", help="no OKS-NMS (default: per-image OKS-NMS)")
    nms.add_argument("--soft-nms", action="store_true", help="soft OKS-NMS (HRNet's, Gaussian) instead of OKS-NMS")
    parser.add_argument("--nms-thr", type=opt.float_range(0.0, 1.0, low_open=True), default=0.9,
                        help="OKS threshold of the NMS, also the soft-NMS parameter as in HRNet (default 0.9)")
    parser.add_argument("--kpt-thr", type=opt.fraction, default=0.2,
                        help="keypoint score threshold of the rescoring (default 0.2)")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..evaluation.coco import category_sigmas, evaluate_keypoints, format_table, load_coco, load_results

    if not 0.0 < args.nms_thr <= 1.0:  # also false for NaN
        raise ConfigError(f"--nms-thr must be in (0, 1], got {args.nms_thr}")
    if not 0.0 <= args.kpt_thr <= 1.0:
        raise ConfigError(f"--kpt-thr must be in [0, 1], got {args.kpt_thr}")
    nms = None if args.no_nms else ("soft" if args.soft_nms else "oks")
    gt = load_coco(args.annotations)
    results = load_results(args.results, gt)
    sigmas, source = category_sigmas(gt, results[0]["category_id"])
    stats = evaluate_keypoints(gt, results, rescore=not args.no_rescore, nms=nms, nms_thr=args.nms_thr,
                               kpt_thr=args.kpt_thr, sigmas=sigmas)
    if args.json:
        print(json.dumps(stats))
    else:
        recipe = ", ".join([
            "rescored" if not args.no_rescore else "scores as given",
            {"oks": f"OKS-NMS {args.nms_thr:g}", "soft": f"soft OKS-NMS {args.nms_thr:g}", None: "no NMS"}[nms],
        ])
        print(f"COCO keypoint evaluation of {args.results} ({recipe}; OKS sigmas {source})\n")
        print(format_table(stats))
    return 0
