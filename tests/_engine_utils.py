"""Shared helpers of the engine tests (train, resume, DDP, demo): a tiny, fast, deterministic config."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from fasterpose.engine.config import Config, load_config

# Synthetic splits are cached by content hash, so one folder can serve every test and every session.
CACHE = Path(tempfile.gettempdir()) / "fasterpose-test-synthetic"

TINY = [
    f"data.synthetic.cache_dir={CACHE}",
    "data.synthetic.train_images=8",
    "data.synthetic.val_images=4",
    "data.synthetic.image_size=[128,128]",
    "data.input_size=[64,64]",
    "data.synthetic.difficulty=default",
    "train.cpu_amp=off",
    "train.batch_size=4",
    "train.epochs=2",
    "train.workers=0",
    "train.threads=1",
    "train.deterministic=true",
    "train.val_every=0",
    "train.progress=never",
    "train.plot=false",
    "train.log_every=0",
    "optim.warmup_iters=2",
]


def tiny_config(*overrides: str) -> Config:
    """``synthetic_fasterpose_r18`` at 64x64 on 8 synthetic images, one thread, deterministic."""
    return load_config("synthetic_fasterpose_r18", [*TINY, *overrides])


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)


class restore_torch_state:  # noqa: N801 - used like a function: ``with restore_torch_state(): ...``
    """Undo the process-wide settings a training run makes (threads, deterministic algorithms, RNG)."""

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        self.deterministic = torch.are_deterministic_algorithms_enabled()
        self.rng = torch.get_rng_state()

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.deterministic)
        torch.set_rng_state(self.rng)
