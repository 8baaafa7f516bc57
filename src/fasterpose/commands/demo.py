"""``fasterpose demo [--minutes 5] [--out DIR] [--json] [--threads N] [--device cuda|cpu]``: synthetic data, CPU
(or GPU) training, official COCO evaluation and skeletons on real photos, on a fresh machine with no data and no
weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import _options as opt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=opt.positive_float, default=5.0,
                        help="training time budget in minutes; the lr schedule runs over it (default 5)")
    parser.add_argument("--out", default="outputs/demo", metavar="DIR",
                        help="output folder: checkpoint, metrics, curves, drawn skeletons (default outputs/demo)")
    parser.add_argument("--threads", type=opt.thread_count, default=None,
                        help="torch CPU threads (default: one per core)")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="override the demo config (synthetic_fasterpose_r18), e.g. "
                             "--opt model.name=fasterpose_mbv2 (repeatable)")
    parser.add_argument("--recipe", choices=("auto", "bf16", "fp32"), default="auto",
                        help="training recipe: auto (default) picks bf16 on CPUs with native bfloat16 (AVX512-BF16, "
                             "AMX) and fp32 (a lighter ResNet-18 cut after layer3) elsewhere")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None,
                        help="where to train: cuda (bf16 autocast on GPUs that compute bfloat16, else fp16) or cpu "
                             "(default: cuda where torch sees a GPU, else cpu)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    from ..engine.demo import format_report, run_demo

    _claim_demo_folder(Path(args.out).expanduser())
    report = run_demo(minutes=args.minutes, out_dir=args.out, threads=args.threads, overrides=args.opt,
                      recipe=args.recipe, device=args.device)
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def _claim_demo_folder(out: Path) -> None:
    """The demo replaces the previous demo in ``--out`` but never a user's file of the same name as one it writes
    (a photo named like a drawn one, a ``report.json``); a demo folder of a version without manifest is its own."""
    from ..engine.demo import _check_not_another_run, find_people_dir
    from ..engine.trainer import _RUN_FILES
    from ..io_utils import check_writable_folder, claim_outputs

    check_writable_folder(out, f"--out {out}")
    _check_not_another_run(out)  # a training run of the user's is refused with its own message
    people = find_people_dir()
    drawn = sorted({f"people/{p.stem}.jpg" for p in people.iterdir()
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png")}) if people else []
    names = [*_RUN_FILES, "last.pt", "best.pt", "val_predictions.jpg", "report.json", *drawn]
    earlier_demo = (out / "last.pt").is_file()  # a demo's run: a user's run was refused just above
    claim_outputs(out, names, f"--out {out}", also_ours=set(names) if earlier_demo else None)
