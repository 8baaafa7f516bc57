"""Process-group setup for torchrun, and a deterministic, resumable, rank-sharded batch sampler.

Launch with ``torchrun --nproc_per_node N -m fasterpose.cli train CONFIG``: torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``); :func:`setup` then joins the process group
(NCCL on CUDA, Gloo on CPU). Without those variables everything runs in one process and the helpers below are
no-ops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class DistInfo:
    """Where this process runs: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None) -> DistInfo:
    """Pick the device and, under torchrun (``WORLD_SIZE`` > 1), initialise the default process group.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).
    """
    if device not in (None, "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    use_cuda = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch.cuda.is_available() is False; use --device cpu")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        if rank == 0:
            logger.info("process group: %s, %d processes (rank 0 on %s)", backend, world_size, dev)
    elif dist.is_initialized():  # e.g. created by a test harness
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup() -> None:
    """Destroy the process group if this module's :func:`setup` (or anyone) created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]``; ``[obj]`` when not distributed."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def any_true(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank (so that every rank takes the same decision, e.g. to stop)."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class ShardedBatchSampler:
    """Deterministic batches for training and evaluation, sharded over ranks and resumable mid-epoch.

    Each epoch draws one permutation of the dataset from ``np.random.default_rng([seed, epoch])`` (or keeps the
    natural order when ``shuffle=False``). Global batch ``b`` is ``perm[b*G : (b+1)*G]`` with ``G = batch_size *
    world_size``; rank ``r`` takes the ``r``-th slice of ``batch_size`` of it. So the union of the ranks' batches
    is exactly what one process with ``batch_size * world_size`` would see, and ``start_batch`` skips batches
    already consumed before a resume.

    Args:
        length: dataset length.
        batch_size: per-rank batch size.
        rank, world_size: this process's shard.
        seed: permutation seed.
        shuffle: permute each epoch (training) or keep the natural order (evaluation).
        drop_last: drop the last incomplete global batch (training). Without it (evaluation) the remaining
            indices are split contiguously over ranks, so every index is seen exactly once overall.
        with_epoch: yield ``(epoch, index)`` keys instead of indices (training): the epoch then travels with each
            key to DataLoader workers that persist across epochs (``TopDownDataset.__getitem__`` takes such keys).
    """

    def __init__(self, length: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = True, with_epoch: bool = False) -> None:
        self.length = length
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.with_epoch = with_epoch
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def _order(self) -> np.ndarray:
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(self.length)
        return np.arange(self.length)

    def batches(self) -> list[list[int]]:
        """All of this rank's batches of the current epoch (before skipping ``start_batch``)."""
        order = self._order()
        g = self.batch_size * self.world_size
        full = self.length // g
        out = [order[b * g + self.rank * self.batch_size: b * g + (self.rank + 1) * self.batch_size].tolist()
               for b in range(full)]
        if not self.drop_last and full * g < self.length:
            rest = np.array_split(order[full * g:], self.world_size)[self.rank]
            if len(rest):
                out.append(rest.tolist())
        return out

    def __iter__(self) -> Iterator[list[int]] | Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        for batch in self.batches()[self.start_batch:]:
            yield [(epoch, i) for i in batch] if self.with_epoch else batch

    def __len__(self) -> int:
        return max(len(self.batches()) - self.start_batch, 0)

    @property
    def batches_per_epoch(self) -> int:
        g = self.batch_size * self.world_size
        return self.length // g if self.drop_last else -(-self.length // g)
