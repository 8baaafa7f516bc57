"""The training state and the one step that advances it, shared by :mod:`~fasterpose.engine.trainer` and
:mod:`~fasterpose.engine.distill`.

A :class:`TrainState` holds what a run needs to continue exactly: model, optimizer, loss scaler, position (epoch,
batch within it, optimizer steps), the schedule's last value, best metric, history and the running loss sums.
:func:`save_train_state` writes it (with the caller's description: spec, config, sampler...) as an ordinary
self-describing checkpoint, :func:`~fasterpose.checkpoint.save_checkpoint`; :func:`load_train_state` puts a saved
one back. Everything saved is a tensor or a plain Python value (RNG states included), so the file loads with
``torch.load(weights_only=True)`` and no allowlist: opening a checkpoint never has to run code from it.

:func:`train_step` is one update: learning rate, forward under the precision's autocast, loss in fp32, a NaN/inf
check taken by all ranks together, backward through the (fp16) loss scaler, gradient clipping, optimizer step.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import CheckpointError, FasterPoseError
from . import distributed as D
from .precision import Precision

__all__ = ["TrainState", "TrainingDivergedError", "check_finite_weights", "load_train_state", "rng_state",
           "save_train_state", "set_rng_state", "train_step"]

logger = logging.getLogger(__name__)


class TrainingDivergedError(FasterPoseError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainState:
    """What a training run holds between two steps.

    Attributes:
        model: the model being trained (never a DDP wrapper: its ``state_dict`` is saved).
        optimizer: its optimizer.
        scaler: the loss scaler (enabled only for fp16, see :mod:`~fasterpose.engine.precision`).
        precision: how steps compute (not saved: chosen anew for the device a run resumes on).
        epoch: epochs completed (the epoch in progress, 0-based).
        batch: batches of that epoch done.
        step: optimizer steps so far.
        lr: the learning rate of the last step.
        best: best validation metric so far (-1 before any).
        history: one record per epoch (``metrics.jsonl``).
        train_seconds: training time so far (checkpoint writing and validation excluded).
        loss_sum, loss_count: the running sum of this epoch's losses (its mean goes into the history).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    precision: Precision = field(default_factory=lambda: Precision("cpu"))
    epoch: int = 0
    batch: int = 0
    step: int = 0
    lr: float = 0.0
    best: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    loss_sum: float = 0.0
    loss_count: int = 0


# ------------------------------------------------------------------------------------------------ RNG states


def rng_state() -> dict[str, Any]:
    """Python's, numpy's, torch's (and CUDA's) global RNG states as tensors and plain values (numpy's
    ``get_state()`` holds a uint32 array: saved as an int64 tensor, no numpy object in the file)."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"bit_generator": str(name), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` (also the tuple form earlier versions saved numpy's state in)."""
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    if isinstance(n, dict):
        n = (n["bit_generator"], np.asarray(n["key"].cpu().numpy(), dtype=np.uint32), n["pos"], n["has_gauss"],
             n["cached_gaussian"])
    np.random.set_state(n)
    torch.set_rng_state(state["torch"].cpu())  # a checkpoint loaded onto a GPU holds it there; the generator wants CPU
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants tuples all the way down (a list may come from another serialisation)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def plain(value: Any, where: str = "state") -> Any:
    """``value`` with numpy scalars as Python numbers and numpy arrays as tensors; anything that is neither a tensor
    nor a plain value is refused here, when it is saved, rather than by ``torch.load(weights_only=True)`` later."""
    if value is None or type(value) in (bool, int, float, str) or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, dict):
        return {k: plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{where} is a {type(value).__name__}: a checkpoint holds only tensors and plain Python values")


# ------------------------------------------------------------------------------------------------ save / load


def check_finite_weights(model: torch.nn.Module, path: Path, step: int) -> None:
    """Refuse to save (or to end a run with) non-finite weights: the run is an error, not a result, and the last
    good checkpoint stays what it was.

    Raises:
        TrainingDivergedError: naming the step and the checkpoint kept.
    """
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not bool(t.isfinite().all())]
    if bad:
        kept = (f"the last good checkpoint {path} is kept" if path.is_file() else "no checkpoint had been written")
        raise TrainingDivergedError(f"the weights are not finite after iteration {step} ({len(bad)} tensors, e.g. "
                                    f"{bad[0]}); training stopped and {kept}. Try a lower optim.lr, a warmup "
                                    "(--opt optim.warmup_iters=500) or gradient clipping (--opt optim.grad_clip=1.0)")


def save_train_state(path: str | os.PathLike, state: TrainState, **description: Any) -> bool:
    """Write ``state`` to ``path`` atomically as a fasterpose checkpoint.

    Args:
        path: the file (``last.pt``).
        state: the training state.
        description: what else the checkpoint says: ``spec`` (required for a usable checkpoint), ``config``,
            ``sampler``, ``scheduler`` settings, a ``distill`` entry...

    Returns:
        ``True`` once written.

    Raises:
        TrainingDivergedError: the model holds NaN or inf; nothing is written, so a good checkpoint is never replaced
            by one no run could continue from.
    """
    check_finite_weights(state.model, Path(path), state.step)
    scheduler = {"type": "function", "iteration": state.step, "lr": state.lr, **description.pop("scheduler", {})}
    record = plain({
        "epoch": state.epoch, "step": state.step, "best_ap": state.best, "scheduler": scheduler, "rng": rng_state(),
        "history": state.history, "train_seconds": state.train_seconds, "loss_sum": state.loss_sum,
        "loss_count": state.loss_count, **{k: v for k, v in description.items() if k != "spec"},
    })
    save_checkpoint(path, {"spec": description.get("spec"), "model": state.model.state_dict(),
                           "optimizer": state.optimizer.state_dict(), "scaler": state.scaler.state_dict(), **record})
    return True


def load_train_state(source: str | os.PathLike | dict[str, Any], state: TrainState,
                     map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Put the training state saved in ``source`` (a path, or a checkpoint already read) back into ``state``: weights,
    optimizer, scaler, position, history, RNG states. Returns the checkpoint, for the caller's own entries
    (``sampler``, ``distill``...).

    Raises:
        CheckpointError: an inference-only checkpoint (no optimizer state), or one that cannot be read.
    """
    ckpt = source if isinstance(source, dict) else load_checkpoint(source, map_location=map_location)
    if not ckpt.get("optimizer"):
        where = "the checkpoint" if isinstance(source, dict) else source
        raise CheckpointError(f"{where} is an inference-only checkpoint (no optimizer state); it cannot be resumed")
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    state.epoch, state.step = int(ckpt.get("epoch", 0)), int(ckpt.get("step", 0))
    state.lr = float(ckpt.get("scheduler", {}).get("lr", state.optimizer.param_groups[0]["lr"]))
    state.best = float(ckpt.get("best_ap", -1.0))
    state.history[:] = list(ckpt.get("history", []))
    state.train_seconds = float(ckpt.get("train_seconds", 0.0))
    state.loss_sum, state.loss_count = float(ckpt.get("loss_sum", 0.0)), int(ckpt.get("loss_count", 0))
    if ckpt.get("rng"):
        set_rng_state(ckpt["rng"])
    return ckpt


# ------------------------------------------------------------------------------------------------ one step


def train_step(state: TrainState, net: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
               criterion: Callable[..., torch.Tensor], targets: Sequence[torch.Tensor], lr: float,
               grad_clip: float | None = None, advice: Callable[[], str] = lambda: "") -> float:
    """One optimizer update of ``state``: ``criterion(net(inputs), *targets)`` is minimised; returns the loss.

    Args:
        state: the training state (its ``step`` and ``lr`` advance).
        net: what computes the output (the model, its DDP wrapper, or the part being trained); its forward pass runs
            under the precision's autocast.
        inputs: the batch.
        criterion: the loss, given the output in fp32 and then ``targets``.
        targets: the loss's other arguments (target heatmaps, weights).
        lr: this step's learning rate (from the schedule).
        grad_clip: clip the global gradient norm to this (``None``/0: no clipping).
        advice: what to tell the user when the loss is NaN or inf (after where it happened).

    Raises:
        TrainingDivergedError: the loss is not finite (on any rank); nothing was updated.
    """
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    with state.precision.autocast():
        output = net(inputs)
    loss = criterion(output.float(), *targets)
    value = float(loss.detach())
    if D.any_true(not math.isfinite(value), loss.device):
        raise TrainingDivergedError(f"loss is {value} at iteration {state.step + 1} (epoch {state.epoch + 1}, batch "
                                    f"{state.batch + 1}, lr {lr:.3g}); training stopped. {advice()}".rstrip())
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if grad_clip:
        state.scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.step += 1
    state.lr = lr
    return value
