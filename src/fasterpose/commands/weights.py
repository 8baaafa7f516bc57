"""``fasterpose weights list [--json]`` and ``fasterpose weights download NAME``: published weights by name.

Any name listed here works wherever a checkpoint does (``--weights NAME`` for ``predict``, ``eval``, ``export``;
``create_model(model, weights=NAME)``); it is downloaded once into torch hub's cache and hash-checked.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the published weights known by name (model, input size, COCO AP, URL)")
    listing.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    download = sub.add_parser("download", help="download (once) and check one of them (weights or a person "
                              "detector); prints the cached path")
    download.add_argument("name", help="a name from `fasterpose weights list`")


def _print_detectors() -> None:
    from ..detect.zoo import DETECTORS

    width = max(len(n) for n in DETECTORS)
    print(f"\n{'person detector':<{width}}  {'layout':<6}  {'input':>7}  url")
    for name, d in DETECTORS.items():
        print(f"{name:<{width}}  {d.layout:<6}  {d.input_size[0]}x{d.input_size[1]:<3}  {d.url}")
    print("Detectors (rtmlib's YOLOX trained on Human-Art) work as predict --detector NAME; no hash is published for\n"
          "their zips: the first download's SHA-256 is recorded beside it and checked on later uses.")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..hub import cache_dir
    from ..models.published import PUBLISHED

    if args.action == "list":
        rows = [{"name": w.name, "model": w.model, "input_size": list(w.input_size), "coco_ap": w.coco_ap,
                 "url": w.url, "sha256_prefix": w.sha256_prefix, "source": w.source} for w in PUBLISHED.values()]
        if args.json:
            print(json.dumps(rows))
            return 0
        width = max(len(r["name"]) for r in rows)
        print(f"{'name':<{width}}  {'model':<19}  {'input':>7}  {'COCO AP':>7}  url")
        for r in rows:
            size = f"{r['input_size'][0]}x{r['input_size'][1]}"
            print(f"{r['name']:<{width}}  {r['model']:<19}  {size:>7}  {r['coco_ap']:>7.3f}  {r['url']}")
        print("\nCOCO val2017 AP with detector boxes (person AP 56.4) and flip test, as published by MMPose.\n"
              f"Files are downloaded once into {cache_dir()} (TORCH_HOME); official SimpleBaseline\n"
              "files (pose_resnet_*.pth.tar) load from a local path: --weights FILE.")
        _print_detectors()
        return 0
    from ..detect.zoo import DETECTORS, fetch_detector

    if args.name in DETECTORS:
        print(fetch_detector(args.name))
        return 0
    if args.name not in PUBLISHED:
        raise ConfigError(f"unknown published weights {args.name!r}; known: {', '.join(PUBLISHED)}; detectors: "
                          f"{', '.join(DETECTORS)}")
    from ..hub import cached_download

    entry = PUBLISHED[args.name]
    print(cached_download(entry.url, sha256_prefix=entry.sha256_prefix))
    return 0
