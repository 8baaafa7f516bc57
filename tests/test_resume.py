"""A run killed in the middle of an epoch and resumed ends with exactly the parameters of an uninterrupted run.

Deterministic CPU setting: ``train.deterministic`` (``torch.use_deterministic_algorithms``), one thread, no
DataLoader workers. Data order and augmentation are functions of (seed, epoch, index), the lr a function of the
iteration, and the checkpoint holds optimizer, RNG states and the number of batches consumed in the epoch, so the
comparison is exact (``torch.equal``), not approximate.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _engine_utils import TINY, load_weights, restore_torch_state, tiny_config
from hostile import assert_exit, run_cli

from fasterpose.cli import main
from fasterpose.engine.trainer import train

SETTINGS = ("train.epochs=2", "train.checkpoint_every_iters=2")


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """The uninterrupted run: (last.pt, total iterations, iterations per epoch)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    with restore_torch_state():
        result = train(tiny_config(*SETTINGS), out=out, device="cpu")
    assert result.epochs == 2 and result.iterations % 2 == 0
    per_epoch = result.iterations // 2
    assert per_epoch >= 3, "need a few iterations per epoch to stop in the middle of one"
    return out / "last.pt", result.iterations, per_epoch


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_weights(a), load_weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_resume_after_crash_mid_epoch_is_exact(tmp_path: Path, reference: tuple[Path, int, int]) -> None:
    ref_ckpt, total, per_epoch = reference
    crash_at = per_epoch + 2  # two iterations into the second epoch; last checkpoint at an even iteration
    cfg = tiny_config(*SETTINGS)

    def hook(step: int) -> None:
        if step == crash_at:
            raise Crash(f"simulated crash after iteration {step}")

    with restore_torch_state(), pytest.raises(Crash):
        train(cfg, out=tmp_path, device="cpu", on_iteration=hook)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    saved = crash_at - crash_at % 2
    assert ckpt["step"] == saved and ckpt["epoch"] == 1
    assert ckpt["sampler"]["samples_in_epoch"] == (saved - per_epoch) * 4  # mid-epoch
    with restore_torch_state():
        result = train(cfg, out=tmp_path, resume=True, device="cpu")
    assert result.iterations == total
    _assert_same_weights(tmp_path / "last.pt", ref_ckpt)
    resumed = torch.load(tmp_path / "last.pt", weights_only=True)
    reference_ckpt = torch.load(ref_ckpt, weights_only=True)
    # Epoch losses: float64 sums (loss_sum is checkpointed) of the same float32 losses in the same order: exact.
    assert [r["loss"] for r in resumed["history"]] == [r["loss"] for r in reference_ckpt["history"]]


def test_resume_after_sigkill_from_the_cli(tmp_path: Path, reference: tuple[Path, int, int]) -> None:
    """A real SIGKILL (no cleanup at all) right after an iteration, then ``fasterpose train --resume``."""
    ref_ckpt, total, per_epoch = reference
    kill_at = per_epoch + 1  # odd: the last checkpoint is one iteration older
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from _engine_utils import tiny_config
        from fasterpose.engine.trainer import train

        def hook(step):
            if step == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)

        train(tiny_config(*{SETTINGS!r}), out={str(tmp_path)!r}, device="cpu", on_iteration=hook)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == kill_at - 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary files are left behind"
    with restore_torch_state():
        assert main(["train", "--resume", str(tmp_path / "last.pt"), "--device", "cpu"]) == 0
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == total
    _assert_same_weights(tmp_path / "last.pt", ref_ckpt)


def test_resume_after_sigterm_from_the_cli(tmp_path: Path, reference: tuple[Path, int, int]) -> None:
    """A scheduler's SIGTERM (Slurm, Kubernetes, docker stop) in the middle of an epoch: exit 143 with a message,
    the last checkpoint complete and no temporary file; ``fasterpose train --resume`` then ends with exactly the
    weights of the uninterrupted run."""
    ref_ckpt, total, per_epoch = reference
    stop_at = per_epoch + 1  # odd: the last checkpoint is one iteration older
    prelude = ("import os, signal\nimport fasterpose.engine.trainer as _t\n_train0 = _t.train\n"
               f"_t.train = lambda *a, **k: _train0(*a, **k, on_iteration=lambda it: it == {stop_at} and "
               "os.kill(os.getpid(), signal.SIGTERM))\n")
    args = ["train", "synthetic_fasterpose_r18", "--out", str(tmp_path), "--device", "cpu"]
    for o in (*TINY, *SETTINGS):
        args += ["--opt", o]
    proc = run_cli(args, prelude=prelude)
    assert_exit(proc, 128 + signal.SIGTERM, "stopped by SIGTERM")
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == stop_at - 1
    assert not [p for p in tmp_path.iterdir() if ".tmp." in p.name], "no temporary files are left behind"
    with restore_torch_state():
        assert main(["train", "--resume", str(tmp_path / "last.pt"), "--device", "cpu"]) == 0
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == total
    _assert_same_weights(tmp_path / "last.pt", ref_ckpt)
