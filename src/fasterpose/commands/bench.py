"""``fasterpose bench``: latency of PyTorch fp32 vs onnxruntime fp32 vs onnxruntime int8, measured interleaved.

See :mod:`fasterpose.deploy.bench` for the method. Prints a markdown table, or with ``--json`` only a JSON array
with one object per row (``model``, ``backend``, ``precision``, ``threads``, ``median_ms``, ``p90_ms``, ``gmacs``,
``params``, ``gflops_per_s``, ``input_size``, ``batch``, ...). ``--out FILE`` also writes that array (atomically).
"""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError
from . import _options as opt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="fasterpose_r50,simplebaseline_r50",
                        help="comma-separated model names (default fasterpose_r50,simplebaseline_r50)")
    parser.add_argument("--checkpoint", metavar="CKPT", help="benchmark this checkpoint's model instead of --models")
    parser.add_argument("--input-size", default="256x192", metavar="HxW", help="input height x width (default 256x192)")
    parser.add_argument("--batch", type=opt.positive_int, default=1, help="batch size (default 1)")
    parser.add_argument("--threads", type=opt.thread_count, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--int8", action="store_true", help="add onnxruntime int8 rows (QDQ static quantisation)")
    parser.add_argument("--calib", metavar="DATA",
                        help="real calibration data for --int8 (default: random inputs; latency is unaffected)")
    parser.add_argument("--int8-scheme", default="u8s8_7bit", choices=("u8s8_7bit", "u8s8", "u8u8", "s8s8"),
                        help="int8 types of the --int8 rows (default u8s8_7bit, as `fasterpose export --int8`)")
    parser.add_argument("--backends", default="torch,onnxruntime", help="comma-separated: torch,onnxruntime")
    parser.add_argument("--repeats", type=opt.positive_int, default=50, help="timed repetitions (default 50)")
    parser.add_argument("--warmup", type=opt.non_negative_int, default=10, help="untimed warm-up rounds (default 10)")
    parser.add_argument("--json", action="store_true", help="print only a JSON array (one object per row)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON array to FILE")


def run(args: argparse.Namespace) -> int:
    from ..deploy.bench import format_table, run_benchmark
    from ..io_utils import atomic_write_json
    from .info import parse_input_size

    if args.out:
        from ..io_utils import check_not_an_input, check_writable

        check_writable(args.out, "--out")  # before the benchmark, not after it
        check_not_an_input(args.out, [args.checkpoint, args.calib], "--out")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models and not args.checkpoint:
        raise ConfigError("--models is empty; give e.g. --models fasterpose_r50,simplebaseline_r50")
    if not args.checkpoint:
        from ..models import model_info

        for m in models:
            model_info(m)  # unknown names fail here, with suggestions, before any work
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    rows = run_benchmark(models, input_size=parse_input_size(args.input_size), batch=args.batch,
                         threads=args.threads, int8=args.int8, backends=backends, repeats=args.repeats,
                         warmup=args.warmup, checkpoint=args.checkpoint, calib=args.calib,
                         int8_scheme=args.int8_scheme)
    if args.out:
        atomic_write_json(args.out, rows, indent=1)
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows))
    return 0
