"""``fasterpose synth``: write a synthetic COCO-format person keypoint dataset."""

from __future__ import annotations

import argparse
import dataclasses
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="destination folder (images/, person_keypoints.json, person_detections.json)")
    parser.add_argument("--images", type=int, default=1000, help="number of images (default: 1000)")
    parser.add_argument("--seed", type=int, default=0,
                        help="split seed; image ids are seed*1e6+index+1 (the demo uses 0 = train, 1 = val)")
    parser.add_argument("--size", default="256x256", help="image size HxW (default: 256x256)")
    parser.add_argument("--difficulty", choices=("easy", "default", "hard"), default="default",
                        help="content preset (fasterpose.data.synthetic.SynthConfig.preset)")
    parser.add_argument("--max-persons", type=int, default=None, help="most figures per image (default: 4)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset with different parameters already in OUT_DIR")
    parser.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic import SynthConfig, generate_dataset, parse_size
    from ..errors import DataError
    from ..io_utils import check_writable_folder

    size = parse_size(args.size)
    check_writable_folder(args.out_dir, f"OUT_DIR {args.out_dir} (the dataset's folder)")
    if args.max_persons is not None and args.max_persons < 1:
        raise DataError(f"--max-persons must be >= 1, got {args.max_persons}")
    config = SynthConfig.preset(args.difficulty)
    if args.max_persons is not None:
        config = dataclasses.replace(config, max_persons=args.max_persons,
                                     min_persons=min(config.min_persons, args.max_persons))
    result = generate_dataset(args.out_dir, args.images, seed=args.seed, size=size, config=config,
                              progress=True if args.progress else None, overwrite=args.overwrite)
    print(json.dumps({k: str(v) if hasattr(v, "__fspath__") else v for k, v in result.items()}, indent=2))
    return 0
