"""``fasterpose check-data ANN.json [--images DIR] [--category NAME] [--json]``: validate a keypoint dataset.

Prints the keypoint set read from the file (names, skeleton, inferred flip pairs), image and person counts, labelled
and visible counts per keypoint, and every problem found with the ids to look at
(:func:`fasterpose.data.check.check_dataset`). Exit status 0 when training would work (warnings allowed), 2 when
there are errors.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from . import _options as opt

if TYPE_CHECKING:
    from ..data.check import DataReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ann_file", metavar="ANN.json", help="COCO-format keypoint annotation file")
    parser.add_argument("--images", default=None, metavar="DIR",
                        help="image folder (default: where training would look: next to the annotation file)")
    parser.add_argument("--category", default=None, metavar="NAME",
                        help="keypoint category to check when the file has several (name or id)")
    parser.add_argument("--decode", type=opt.non_negative_int, default=200, metavar="N",
                        help="decode at most N images, evenly spaced (existence is checked for all; default 200)")
    parser.add_argument("--no-images", action="store_true", help="check the annotations only")
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")


def run(args: argparse.Namespace) -> int:
    from ..data.check import check_dataset
    from ..errors import DataError

    if args.decode < 0:
        raise DataError(f"--decode must be >= 0, got {args.decode}")
    report = check_dataset(args.ann_file, args.images, category=args.category, decode_sample=args.decode,
                           check_images=not args.no_images)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(format_report(report))
    return 0 if report.ok else 2


def format_report(report: DataReport) -> str:
    """The human-readable report."""
    lines = [f"{report.ann_file}"]
    k = report.keypoint_set
    if k is not None:
        lines.append(f"keypoint set {k.name!r}: {k.num_keypoints} keypoints, {len(k.skeleton)} skeleton links, "
                     f"OKS sigmas {'given' if k.sigmas is not None else 'not given (evaluation: PCK + default sigma)'}")
        pairs = ", ".join(f"{k.names[a]}<->{k.names[b]}" for a, b in k.flip_pairs)
        lines.append(f"flip pairs (from the names): {pairs or 'none (no flip augmentation or flip test)'}")
    lines.append(f"{report.num_images} images, {report.num_annotations} annotations, {report.num_persons} persons "
                 "with labelled keypoints")
    if k is not None and report.labelled:
        width = max(len(n) for n in k.names)
        lines.append(f"  {'keypoint'.ljust(width)}  labelled  visible")
        for name, lab, vis in zip(k.names, report.labelled, report.visible):
            lines.append(f"  {name.ljust(width)}  {lab:8d}  {vis:7d}")
    if report.images_checked:
        lines.append(f"images under {report.image_root}: {report.images_checked} checked for existence, "
                     f"{report.images_decoded} decoded")
    errors = [p for p in report.problems if p.level == "error"]
    warnings = [p for p in report.problems if p.level == "warning"]
    for p in errors + warnings:
        more = f" (first {len(p.ids)} of {p.count})" if p.count > len(p.ids) else ""
        ids = f": {', '.join(map(str, p.ids))}{more}" if p.ids else ""
        lines.append(f"{p.level.upper()} [{p.code}] {p.message}{ids}")
    lines.append(f"{len(errors)} errors, {len(warnings)} warnings: "
                 + ("training would work" if report.ok else "fix the errors before training"))
    return "\n".join(lines)
