"""``fasterpose train CONFIG [--opt key=value ...] [--resume [CKPT]] [--out DIR] [--device cpu|cuda]``.

One process on CPU or one GPU, or many GPUs/nodes under torchrun::

    torchrun --nproc_per_node 8 -m fasterpose.cli train coco_fasterpose_r50_256x192
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

_RESUME_LAST = "last"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="YAML config file or shipped config name (e.g. synthetic_fasterpose_r18); optional with "
                             "--resume CKPT (the checkpoint's config is used)")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, dotted key and YAML value, e.g. --opt train.epochs=10 "
                             "--opt optim.milestones=[5,8] (repeatable)")
    parser.add_argument("--resume", nargs="?", const=_RESUME_LAST, default=None, metavar="CKPT",
                        help="continue a run exactly where it stopped: from CKPT, or from <out>/last.pt")
    parser.add_argument("--out", default=None, metavar="DIR", help="run folder (default: train.output_dir)")
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda if available")
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_checkpoint
    from ..engine import distributed as D
    from ..engine.config import find_config, load_config
    from ..engine.trainer import resolve_output_dir, train
    from ..errors import ConfigError
    from ..io_utils import check_not_an_input, check_writable_folder

    resume: str | bool | None = None
    out = args.out
    base = None
    if args.resume == _RESUME_LAST:
        resume = True
    elif args.resume:
        resume = args.resume
        if out is None:  # continue in the checkpoint's run folder
            out = str(Path(args.resume).parent)
        if args.config is None:
            base = load_checkpoint(args.resume).get("config")
            if not base:
                raise ConfigError(f"{args.resume} stores no training config; pass the CONFIG as well")
    if args.config is None and base is None:
        raise ConfigError("a CONFIG is needed (a YAML file or a shipped config name such as synthetic_fasterpose_r18)"
                          ", or --resume CKPT")
    cfg = load_config(args.config, args.opt, base=base)
    run_dir = resolve_output_dir(cfg, out)
    check_writable_folder(run_dir, f"--out {run_dir} (the run folder)")  # before any work, not after it
    if args.config:  # the run writes its resolved config.yaml: never over the user's own config file
        check_not_an_input(run_dir / "config.yaml", [find_config(args.config)], f"--out {run_dir}: the run's")
    if resume is True and not (run_dir / "last.pt").is_file():
        raise ConfigError(f"--resume: there is no {run_dir / 'last.pt'} to resume from; "
                          "give the checkpoint path (--resume CKPT) or the run folder (--out DIR)")
    if not resume:
        # A finished or interrupted run is never replaced by a new one started in its folder.
        existing = [n for n in ("last.pt", "best.pt") if (run_dir / n).exists()]
        if existing:
            config = args.config or ""
            raise ConfigError(f"run folder {run_dir} already holds a run ({', '.join(existing)}); a new run would "
                              f"replace it. Continue it: fasterpose train {config} --resume {run_dir / 'last.pt'}"
                              f" -- or start a new one elsewhere: fasterpose train {config} --out NEW_FOLDER")
    check_run_folder(run_dir, resume)
    try:
        result = train(cfg, out=out, resume=resume, device=args.device)
    finally:
        D.cleanup()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    summary = {"output_dir": str(result.out_dir), "checkpoint": str(result.out_dir / "last.pt"),
               "epochs": result.epochs, "iterations": result.iterations,
               "train_seconds": round(result.train_seconds, 2), "best": result.best_ap, "final": result.final_stats}
    if args.json:
        print(json.dumps(summary))
    else:
        final = result.final_stats
        metric = f", {final['metric']} {final[final['metric']]:.4f} (best {result.best_ap:.4f})" if final else ""
        print(f"trained {result.iterations} iterations in {result.train_seconds:.0f} s{metric}; run folder "
              f"{result.out_dir} (last.pt, best.pt, metrics.csv, curves.png)")
    return 0


def check_run_folder(run_dir: Path, resume: str | bool | None) -> None:
    """A run writes only into its own folder: resuming ``A/last.pt`` into ``--out B`` is refused when B holds another
    run, and a run never replaces files it did not write (a user's ``config.yaml``, ``metrics.csv``...). The names it
    will write are recorded first (:func:`~fasterpose.io_utils.claim_outputs`), so its own leftovers never block it.

    Raises:
        ConfigError: B holds another run's checkpoints.
        DataError: files of the same names as the run's, not written by fasterpose, are in the way.
    """
    from ..engine.trainer import _RUN_FILES
    from ..errors import ConfigError
    from ..io_utils import claim_outputs, exclusive_folder

    if resume is True:
        return  # the run's own folder
    if resume:
        source = Path(resume).resolve()
        if source.parent == run_dir.resolve():
            return
        others = [n for n in ("last.pt", "best.pt") if (run_dir / n).exists() and (run_dir / n).resolve() != source]
        if others:
            raise ConfigError(f"--out {run_dir} holds another run ({', '.join(others)}); resuming {resume} there "
                              f"would replace it. Resume in the checkpoint's own folder (omit --out) or give an empty "
                              "or new --out folder; nothing was written")
    if not run_dir.is_dir():
        return  # nothing can be in the way; the run creates the folder (and removes it if it fails before a checkpoint)
    with exclusive_folder(run_dir, "train"):  # a run writing there now: say that, not that its files are in the way
        claim_outputs(run_dir, [*_RUN_FILES, "last.pt", "best.pt"], f"--out {run_dir} (the run folder)")
