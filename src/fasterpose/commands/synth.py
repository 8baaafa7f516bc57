"""``fasterpose synth``: write a synthetic COCO-format person keypoint dataset."""

from __future__ import annotations

import argparse
import dataclasses
import json

from . import _options as opt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="destination folder (images/, person_keypoints.json, person_detections.json)")
    parser.add_argument("--images", type=opt.positive_int, default=1000, help="number of images (default: 1000)")
    parser.add_argument("--seed", type=opt.seed, default=0,
                        help="split seed; image ids are seed*1e6+index+1 (the demo uses 0 = train, 1 = val)")
    parser.add_argument("--size", default=None, help="image size HxW (default: 256x256)")
    parser.add_argument("--difficulty", choices=("easy", "default", "hard"), default="default",
                        help="content preset (fasterpose.data.synthetic.SynthConfig.preset)")
    parser.add_argument("--max-persons", type=opt.positive_int, default=None,
                        help="most figures per image (default: 4)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset with different parameters already in OUT_DIR")
    parser.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")
    parser.add_argument("--video", action="store_true",
                        help="write a clip with known truth (figures walking, turning, crossing, one standing): "
                        "clip.avi, clip_keypoints.json (with track_id), clip_detections.json; --size default 360x480")
    parser.add_argument("--frames", type=opt.positive_int, default=300, help="--video: number of frames (default: 300)")


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic import SynthConfig, generate_dataset, parse_size
    from ..errors import DataError
    from ..io_utils import check_writable_folder

    if args.video:
        return _write_clip(args)
    size = parse_size(args.size or "256x256")
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


def _write_clip(args: argparse.Namespace) -> int:
    from ..data.synthetic import parse_size
    from ..data.synthetic.clip import ClipConfig, write_clip

    config = ClipConfig(num_frames=args.frames, size=parse_size(args.size or "360x480"),
                        walkers=3 if args.max_persons is None else max(0, args.max_persons - 1))
    result = write_clip(args.out_dir, seed=args.seed, config=config, overwrite=args.overwrite)
    print(json.dumps({k: str(v) if hasattr(v, "__fspath__") else v for k, v in result.items()}, indent=2))
    return 0
