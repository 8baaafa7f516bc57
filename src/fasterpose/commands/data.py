"""``fasterpose data coco ROOT [--val-only]``: COCO 2017 keypoints downloaded, checked and unpacked where the shipped
configs read them (``data/coco`` by default); see :mod:`fasterpose.data.coco_fetch`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    coco = sub.add_parser("coco", help="COCO 2017 keypoint annotations and images (val, and train unless "
                          "--val-only) from images.cocodataset.org: resumes, checks size and MD5, unpacks",
                          description="Download COCO 2017 keypoints into ROOT in the layout the shipped COCO configs "
                          "read (ROOT/annotations/person_keypoints_*2017.json, ROOT/val2017, ROOT/train2017). An "
                          "interrupted download resumes; each archive's size and MD5 are checked; files it did not "
                          "write are never replaced. The person detection results have no direct download: it says "
                          "where to get them.")
    coco.add_argument("root", nargs="?", default="data/coco",
                      help="dataset folder (default data/coco, where the configs look from the working directory)")
    coco.add_argument("--val-only", action="store_true",
                      help="only the annotations and val2017 (about 1 GB; train2017 is 19 GB more)")
    coco.add_argument("--keep-archives", action="store_true", help="keep the downloaded zips after unpacking")
    coco.add_argument("--base-url", default=None, metavar="URL",
                      help="a mirror with the same paths (zips/val2017.zip, annotations/...); default "
                      "$FASTERPOSE_COCO_URL, else http://images.cocodataset.org")


def run(args: argparse.Namespace) -> int:
    from ..data.coco_fetch import fetch_coco

    fetch_coco(args.root, val_only=args.val_only, base_url=args.base_url, keep_archives=args.keep_archives)
    return 0
