"""The training state (engine/state.py), the precision decision (engine/precision.py) and the persistent training
DataLoader: a saved state loads with ``torch.load(weights_only=True)`` and no allowlist and resumes exactly; each
device gets the documented precision; workers kept across epochs still augment each epoch differently, and a resume
reproduces the epoch."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from _engine_utils import tiny_config

from fasterpose.engine import distributed as D
from fasterpose.engine.precision import Precision, choose_precision
from fasterpose.engine.state import (
    TrainingDivergedError,
    TrainState,
    load_train_state,
    plain,
    save_train_state,
    set_rng_state,
    train_step,
)
from fasterpose.engine.trainer import build_dataset, build_train_loader
from fasterpose.spec import PoseSpec


def _state(seed: int) -> TrainState:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                torch.nn.Conv2d(4, 2, 1))
    return TrainState(model, torch.optim.Adam(model.parameters(), lr=1e-2), Precision("cpu").grad_scaler())


def _step(state: TrainState, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    x, target = torch.randn(2, 3, 8, 8, generator=g), torch.rand(2, 2, 8, 8, generator=g)
    return train_step(state, state.model, x, torch.nn.functional.mse_loss, (target,), lr=1e-2, grad_clip=1.0)


def _spec() -> PoseSpec:
    return PoseSpec(model_name="fasterpose_r18", input_size=(64, 64), keypoint_set="coco17")


def test_saved_state_loads_without_unpickling_objects_and_resumes_exactly(tmp_path: Path) -> None:
    a = _state(0)
    for i in range(3):
        _step(a, i)
    a.epoch, a.best, a.loss_sum, a.loss_count = 1, 0.25, 1.5, 3
    a.history.append({"epoch": 1, "loss": np.float64(0.5), "AP": np.float32(0.25)})  # numpy numbers, as stats hold
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    assert save_train_state(tmp_path / "last.pt", a, spec=_spec(), config={"x": np.int64(4)}, sampler={"seed": 0})
    draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))

    raw = torch.load(tmp_path / "last.pt", weights_only=True)  # no allowlist: tensors and plain values only
    assert raw["history"][0] == {"epoch": 1, "loss": 0.5, "AP": 0.25} and type(raw["history"][0]["loss"]) is float
    assert raw["config"] == {"x": 4} and raw["sampler"] == {"seed": 0} and raw["step"] == 3
    assert raw["rng"]["numpy"]["key"].dtype == torch.int64 and raw["rng"]["numpy"]["key"].shape == (624,)

    b = _state(99)  # other initial weights: everything must come from the file
    random.seed(7)
    np.random.seed(7)
    load_train_state(tmp_path / "last.pt", b)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == draws
    assert (b.epoch, b.step, b.best, b.loss_sum, b.loss_count) == (1, 3, 0.25, 1.5, 3)
    assert b.history == raw["history"]
    for i in (3, 4):  # the continued run equals the uninterrupted one, to the bit
        assert _step(a, i) == _step(b, i)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key


def test_state_refuses_what_cannot_be_loaded_safely(tmp_path: Path) -> None:
    state = _state(0)
    with pytest.raises(TypeError, match=r"state\['history'\]\[0\]\['when'\] is a object"):
        plain({"history": [{"when": object()}]})
    state.model[0].weight.data[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="not finite"):  # never a checkpoint of NaN weights
        save_train_state(tmp_path / "last.pt", state, spec=_spec())
    assert not (tmp_path / "last.pt").exists()


def test_rng_state_of_earlier_versions_still_restores() -> None:
    """Files written before this change hold numpy's state as its own tuple (with an ndarray)."""
    np.random.seed(5)
    old = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    expected = np.random.rand()
    np.random.seed(6)
    set_rng_state(old)
    assert np.random.rand() == expected


def test_precision_by_device_and_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    bf16 = choose_precision("cuda", amp=True, cuda_bf16=True)  # Ampere, Hopper: bf16, no loss scaling
    assert (bf16.dtype, bf16.scaler, bf16.name) == (torch.bfloat16, False, "bf16")
    fp16 = choose_precision("cuda", amp=True, cuda_bf16=False)  # older GPUs: fp16 with a GradScaler
    assert (fp16.dtype, fp16.scaler, fp16.name) == (torch.float16, True, "fp16") and "GradScaler" in fp16.reason
    off = choose_precision("cuda", amp=False, cuda_bf16=True)
    assert (off.dtype, off.scaler, off.name) == (None, False, "fp32")
    import fasterpose.cpu

    monkeypatch.setattr(fasterpose.cpu, "native_bf16", lambda: False)
    assert choose_precision("cpu", cpu_amp="auto").name == "fp32"  # emulated bf16 is slower: not used
    assert choose_precision("cpu", cpu_amp="off").name == "fp32"
    cpu = choose_precision("cpu", cpu_amp="bf16")  # asked for: on (with a warning), never a scaler on CPU
    assert (cpu.dtype, cpu.scaler) == (torch.bfloat16, False)
    # what the choice does: the forward runs in its dtype, and only fp16 scales the loss
    conv = torch.nn.Conv2d(3, 2, 1)
    with cpu.autocast():
        assert conv(torch.randn(1, 3, 4, 4)).dtype == torch.bfloat16
    with Precision("cpu").autocast():
        assert conv(torch.randn(1, 3, 4, 4)).dtype == torch.float32
    assert not cpu.grad_scaler().is_enabled() and not bf16.grad_scaler().is_enabled()


def test_validation_autocasts_in_the_training_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation during training autocasts in the training's dtype (bf16 on GPUs that compute it), not in CUDA's
    default fp16; on the CPU it never autocasts. Recorded at torch.autocast, since no GPU is here."""
    import fasterpose.engine.inference as inference

    calls = []
    real = torch.autocast

    def recording(device_type: str, dtype: torch.dtype | None = None, enabled: bool = True):
        calls.append((device_type, dtype, enabled))
        return real(device_type, dtype=dtype, enabled=enabled)

    monkeypatch.setattr(inference.torch, "autocast", recording)
    model = torch.nn.Conv2d(3, 2, 1).eval()
    heat = inference.predict_heatmaps(model, torch.randn(1, 3, 8, 8), amp=torch.bfloat16)
    assert heat.dtype == np.float32 and calls == [("cpu", torch.bfloat16, False)]
    calls.clear()
    inference.predict_heatmaps(model, torch.randn(1, 3, 8, 8), amp=True)  # True: CUDA's default dtype
    assert calls == [("cpu", None, False)]


def test_persistent_workers_augment_each_epoch_and_resume_reproduces_it() -> None:
    dataset = build_dataset(tiny_config(), "train")
    sampler = D.ShardedBatchSampler(len(dataset), 4, seed=0, shuffle=True, drop_last=True, with_epoch=True)
    loader = build_train_loader(dataset, sampler, workers=2, device=torch.device("cpu"))

    def epoch(e: int, start: int = 0) -> tuple[list[list[int]], list[torch.Tensor], object]:
        sampler.set_epoch(e, start)
        it = iter(loader)
        batches = list(it)
        return [[int(m["index"]) for m in b["meta"]] for b in batches], [b["image"] for b in batches], it

    index0, images0, it0 = epoch(0)
    index1, images1, it1 = epoch(1)
    assert it0 is it1 and loader.persistent_workers  # the same workers served both epochs
    assert index0 != index1  # another order
    first = {i: img for idx, imgs in zip(index0, images0) for i, img in zip(idx, imgs)}
    second = {i: img for idx, imgs in zip(index1, images1) for i, img in zip(idx, imgs)}
    assert all(not torch.equal(first[i], second[i]) for i in first.keys() & second.keys())  # another augmentation
    for i, img in second.items():  # what a fresh process computes for (epoch 1, i): a resumed run's sample
        assert torch.equal(img, torch.as_tensor(dataset[(1, i)]["image"]))
    index1_resumed, images1_resumed, _ = epoch(1, start=1)  # resumed after the first batch of epoch 1
    assert index1_resumed == index1[1:]
    assert all(torch.equal(a, b) for a, b in zip(images1_resumed, images1[1:]))


def test_bench_train_reports_model_only_and_end_to_end(tmp_path: Path) -> None:
    """``benchmarks/bench_train.py`` at a tiny size: both columns, the precision training would use, JSON written."""
    import json
    import os
    import subprocess
    import sys

    from _engine_utils import CACHE

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"
    out = tmp_path / "train.json"
    proc = subprocess.run([sys.executable, str(script), "--iters", "2", "--warmup", "1", "--batch", "4", "--size",
                           "64x64", "--images", "24", "--models", "fasterpose_r18", "--workers", "1", "--threads", "1",
                           "--cache", str(CACHE), "--out", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| model-only images/s | end-to-end images/s |" in proc.stdout
    report = json.loads(out.read_text())
    (row,) = report["results"]
    assert report["device"] == "cpu" and row["precision"] == "fp32" and row["persons"] >= 24
    assert row["model_only_images_per_s"] > 0 and row["end_to_end_images_per_s"] > 0
    assert row["iterations_per_epoch"] == row["persons"] // 4
