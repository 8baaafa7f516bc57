"""Learning-rate schedule: one plain function of training progress.

Progress is measured in epochs (a float: ``epoch + iteration / iterations_per_epoch``), or, for time-budgeted
runs (``train.time_budget_s``, used by ``fasterpose demo``), as the elapsed fraction of the budget mapped onto
the same epoch axis (``fraction x epochs``), so that e.g. the step milestones [90, 120] of a 140-epoch schedule
fall at 64% and 86% of the budget and a five-minute run still anneals.
"""

from __future__ import annotations

import math

from .config import OptimConfig


def lr_factor(progress: float, total: float, optim: OptimConfig, iteration: int, warmup_iters: int) -> float:
    """Multiplier of the base learning rate.

    Args:
        progress: training progress in epochs (fractional), in ``[0, total]``.
        total: schedule length in epochs (``train.epochs``).
        optim: schedule settings (``schedule``, ``milestones``, ``gamma``, ``min_lr_factor``, ``warmup_factor``).
        iteration: global iteration (0-based), for the linear warmup.
        warmup_iters: warmup length in iterations (0 disables).

    Returns:
        ``lr / optim.lr`` for this iteration.
    """
    if optim.schedule == "step":
        factor = optim.gamma ** sum(progress >= m for m in optim.milestones)
    else:  # cosine from 1 to min_lr_factor over [0, total]
        t = min(max(progress / max(total, 1e-12), 0.0), 1.0)
        factor = optim.min_lr_factor + (1.0 - optim.min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * t))
    if warmup_iters > 0 and iteration < warmup_iters:
        alpha = iteration / warmup_iters
        factor *= optim.warmup_factor * (1.0 - alpha) + alpha
    return factor


def warmup_length(optim: OptimConfig, iters_per_epoch: int) -> int:
    """Total warmup iterations: ``warmup_iters + warmup_epochs x iters_per_epoch``."""
    return int(optim.warmup_iters + round(optim.warmup_epochs * iters_per_epoch))
