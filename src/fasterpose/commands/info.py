"""``fasterpose info NAME``: parameters, GMACs and output shape of a registered model."""

from __future__ import annotations

import argparse
import json
import re

from ..errors import ConfigError
from . import _options as opt

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_input_size(text: str, multiple: int = 32) -> tuple[int, int]:
    """``"256x192"`` -> ``(256, 192)`` (height, width); both must be positive multiples of ``multiple``."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ConfigError(f"--input-size {text!r} is not HEIGHTxWIDTH; use e.g. 256x192 or 384x288")
    h, w = int(m.group(1)), int(m.group(2))
    if h <= 0 or w <= 0 or h % multiple or w % multiple:
        raise ConfigError(f"--input-size {text!r}: height and width must be positive multiples of {multiple} "
                          f"(the backbone stride); e.g. {max(1, round(h / multiple)) * multiple}x"
                          f"{max(1, round(w / multiple)) * multiple}")
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="registered model name, e.g. fasterpose_r50 (see `fasterpose info --list`)",
                        nargs="?")
    parser.add_argument("--list", action="store_true", help="list the registered model names and exit")
    parser.add_argument("--input-size", default="256x192", metavar="HxW", help="input height x width (default 256x192)")
    parser.add_argument("--num-keypoints", type=opt.positive_int, default=17,
                        help="heatmap channels K (default 17, COCO)")
    parser.add_argument("--output-stride", type=int, choices=(32, 16), default=None,
                        help="backbone feature stride (default: the model's, 32)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M ({n:,})"


def run(args: argparse.Namespace) -> int:
    from ..models import create_model, list_models, model_complexity, model_info
    from ..models.complexity import COUNTED_OPS, NOT_COUNTED_OPS

    if args.list or not args.name:
        if not args.name and not args.list:
            raise ConfigError("give a model name, e.g. `fasterpose info fasterpose_r50`; known: "
                              + ", ".join(list_models()))
        names = list_models()
        print(json.dumps(names) if args.json else "\n".join(names))
        return 0

    info = model_info(args.name)  # unknown names fail here with suggestions, before parsing anything else
    overrides = {} if args.output_stride is None else {"output_stride": args.output_stride}
    stride = args.output_stride or 32
    input_size = parse_input_size(args.input_size, multiple=stride)
    model = create_model(args.name, num_keypoints=args.num_keypoints, **overrides)
    c = model_complexity(model, input_size)
    backbone_params = sum(p.numel() for p in model.backbone.parameters())
    result = {
        "name": info.name,
        "params": c["params"],
        "gmacs": round(c["gmacs"], 4),
        "output_shape": c["output_shape"],
        "input_size": list(input_size),
        "output_stride": model.output_stride,
        "feature_stride": model.feature_stride,
        "backbone": info.backbone,
        "head": info.head,
        "backbone_params": backbone_params,
        "head_params": c["params"] - backbone_params,
        "gmacs_counted_ops": COUNTED_OPS,
        "gmacs_not_counted": NOT_COUNTED_OPS,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [
        ("model", f"{info.name}: {info.description}"),
        ("backbone", f"{info.backbone} (stride {model.feature_stride}, {model.backbone.out_channels} channels)"),
        ("head", info.head),
        ("input", f"1x3x{input_size[0]}x{input_size[1]}"),
        ("output", "x".join(map(str, c["output_shape"])) + f" heatmap logits (stride {model.output_stride})"),
        ("params", f"{_fmt_params(c['params'])}: backbone {backbone_params / 1e6:.2f} M, "
                   f"head {(c['params'] - backbone_params) / 1e6:.2f} M"),
        ("GMACs", f"{c['gmacs']:.3f} (batch 1)"),
        ("counted", COUNTED_OPS),
        ("not counted", NOT_COUNTED_OPS),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
