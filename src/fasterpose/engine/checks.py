"""Checks a training run makes on its inputs before it starts and on its result before it marks it good (issue 19):
the training files pass the same checks as ``fasterpose check-data`` (a checkpoint never holding non-finite weights is
:func:`fasterpose.engine.state.check_finite_weights`, where checkpoints are saved). Kept apart from the training loop,
which only calls it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError

if TYPE_CHECKING:
    from .config import Config

# Images decoded per file at the start of training (all are checked for existence): enough to catch a folder of
# wrong files, cheap next to the training itself.
DECODE_AT_START = 16


def check_training_data(cfg: Config) -> None:
    """Run ``check-data``'s checks on the COCO-format files the config trains and validates on, and refuse the run if
    any error is found, before anything is written (instead of failing at the first validation, hours later).

    Raises:
        DataError: naming the config key, the file, each error with a few of the ids, and the command for the full
            report.
    """
    if cfg.data.dataset != "coco":
        return  # synthetic data is generated valid; MPII files have their own loader's checks
    from ..data.check import check_dataset

    files = [("data.train_ann", cfg.data.train_ann, cfg.data.train_images)]
    if cfg.train.val_every > 0:
        files.append(("data.val_ann", cfg.data.val_ann, cfg.data.val_images))
    for key, ann, images in files:
        if not ann or not Path(ann).expanduser().exists():
            continue  # the loader says it is missing, with what to do
        report = check_dataset(Path(ann).expanduser(), Path(images).expanduser() if images else None,
                               category=cfg.data.keypoint_category, decode_sample=DECODE_AT_START)
        errors = [p for p in report.problems if p.level == "error"]
        if errors:
            found = "; ".join(f"[{p.code}] {p.message}" + (f" (e.g. {', '.join(map(str, p.ids[:3]))})" if p.ids else "")
                              for p in errors[:3])
            raise DataError(f"{key}={ann}: {len(errors)} error(s) that check-data reports: {found}. Nothing was "
                            f"trained; see `fasterpose check-data {ann}` for the full report")
