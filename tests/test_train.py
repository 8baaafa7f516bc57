"""Training end to end on synthetic data: learning happens, run folder contents, self-describing checkpoints,
``fasterpose eval --checkpoint`` from the checkpoint alone, NaN losses stop the run without corrupting last.pt."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from _engine_utils import load_weights, max_abs_diff, restore_torch_state, tiny_config

from fasterpose.checkpoint import load_checkpoint
from fasterpose.cli import main
from fasterpose.engine import trainer
from fasterpose.engine.trainer import TrainingDivergedError, train
from fasterpose.keypoints import COCO17
from fasterpose.models import model_from_checkpoint

# Learn 4 one-person training images themselves (validated on the same images: val seed = train seed, easy
# generator settings, no augmentation), so a few seconds of CPU training show that the whole loop learns. NCHW (not
# the config's channels_last), so that the validation inside training and `fasterpose eval` on the checkpoint (a
# plain NCHW model) run the same float32 kernels and must agree exactly.
EASY = ("data.synthetic.generator={max_persons: 1, clutter: 0.0, occluder_prob: 0.0, max_distractors: 0, "
        "noise_std: 0.0, blur_prob: 0.0, wild_pose_prob: 0.0, truncation_prob: 0.0, max_roll: 0.0}")
LEARN = (EASY, "data.synthetic.train_images=4", "data.synthetic.val_seed=0", "data.synthetic.val_images=4",
         "train.batch_size=2", "train.epochs=40", "train.val_every=20", "optim.lr=3e-3", "train.plot=true",
         "train.channels_last=false",
         "data.augment={flip: false, half_body_prob: 0.0, scale_factor: 0.0, rotation_factor: 0.0, rotation_prob: 0.0}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, trainer.TrainResult]:
    out = tmp_path_factory.mktemp("trained")
    with restore_torch_state():
        result = train(tiny_config(*LEARN), out=out, device="cpu")
    return out, result


def test_short_training_learns(trained: tuple[Path, trainer.TrainResult]) -> None:
    out, result = trained
    cfg = tiny_config(*LEARN)
    with restore_torch_state():
        untrained = trainer.build_model(cfg)
        codec = trainer.build_codec(cfg)
        from fasterpose.engine.inference import evaluate_dataset

        before = evaluate_dataset(untrained, trainer.build_dataset(cfg, "val", codec), codec, COCO17)["AP"]
    after = result.final_stats["AP"]
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    # measured: untrained 0.0, after 80 iterations 0.43-0.47 (64x64 crops of 128x128 images make OKS strict). The
    # float32 kernels of the CPU (AVX2 vs AVX-512 blockings) steer the trajectory, hence bounds far below that.
    assert after > 0.1 and after > before + 0.08, (before, after)


def test_run_folder(trained: tuple[Path, trainer.TrainResult]) -> None:
    out, result = trained
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "curves.png", "train.log",
                 "val_results.json"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 41))
    assert "AP" in rows[-1] and all(math.isfinite(r["loss"]) for r in rows)
    with open(out / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 40 and float(table[-1]["AP"]) == pytest.approx(rows[-1]["AP"])  # csv writes repr: exact
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_checkpoint_is_self_describing(trained: tuple[Path, trainer.TrainResult]) -> None:
    out, _ = trained
    ckpt = load_checkpoint(out / "last.pt")
    for key in ("spec", "model", "config", "epoch", "step", "best_ap", "optimizer", "scheduler", "scaler", "rng",
                "sampler", "history"):
        assert key in ckpt, key
    assert not any(k.startswith("module.") for k in ckpt["model"])
    spec = ckpt["spec"]
    assert spec["heatmap_activation"] == "sigmoid" and spec["input_size"] == [64, 64]
    assert spec["codec"]["input_size"] == [64, 64] and spec["keypoint_set"] == COCO17.to_dict()
    model, _ = model_from_checkpoint(out / "best.pt")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 17, 16, 16)


def test_eval_from_the_checkpoint_alone(trained: tuple[Path, trainer.TrainResult], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out, result = trained
    monkeypatch.chdir(tmp_path)  # nothing but the checkpoint: no config file, another working directory
    with restore_torch_state():
        torch.set_num_threads(1)  # as train.threads=1 did for the validation inside training
        assert main(["eval", "--checkpoint", str(out / "last.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # The same weights, images, batch (4 of val_batch_size 64), memory format and thread count: the same float32
    # kernels give the same keypoints, so the AP is identical; abs=1e-9 is equality for this ratio of counts. A
    # round-off difference would move the AP by a discrete step (an OKS crossing a threshold), not by 1e-9.
    assert report["stats"]["AP"] == pytest.approx(result.final_stats["AP"], abs=1e-9)
    assert report["flip_test"] is True and report["boxes"] == "gt" and report["metric"] == "AP"
    assert main(["eval", "--checkpoint", str(out / "last.pt"), "--no-flip"]) == 0
    text = capsys.readouterr().out
    assert "| AP " in text and "flip test: off" in text


def test_mse_checkpoints_decode_without_sigmoid(tmp_path: Path) -> None:
    cfg = tiny_config("loss.name=mse", "train.epochs=1", "train.max_iters=1")
    with restore_torch_state():
        train(cfg, out=tmp_path, device="cpu")
    assert load_checkpoint(tmp_path / "last.pt")["spec"]["heatmap_activation"] == "identity"


def test_cpu_bf16_autocast_trains_fp32_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train.cpu_amp=bf16: the forward pass runs in bfloat16, weights, optimizer state and checkpoint stay fp32."""
    dtypes: list[torch.dtype] = []
    build = trainer.build_model

    def build_with_hook(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        model = build(*args, **kwargs)
        model.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
        return model

    monkeypatch.setattr(trainer, "build_model", build_with_hook)
    cfg = tiny_config("train.cpu_amp=bf16", "train.epochs=1", "train.max_iters=2")
    with restore_torch_state():
        result = train(cfg, out=tmp_path, device="cpu")
    assert dtypes == [torch.bfloat16, torch.bfloat16] and result.iterations == 2
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert all(v.dtype in (torch.float32, torch.int64) for v in ckpt["model"].values())
    assert all(math.isfinite(r["loss"]) for r in result.history)
    assert not trainer.cpu_bf16_enabled("off")


def test_channels_last_training_matches_contiguous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train.channels_last=true: model and input in NHWC; same losses as NCHW up to summation order, and the
    checkpoint loads into a plain (NCHW) model."""
    formats: list[bool] = []
    build = trainer.build_model

    def build_with_hook(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        model = build(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda module, inputs: formats.append(inputs[0].is_contiguous(memory_format=torch.channels_last)))
        return model

    monkeypatch.setattr(trainer, "build_model", build_with_hook)
    runs = {}
    for flag in ("false", "true"):
        formats.clear()
        cfg = tiny_config(f"train.channels_last={flag}", "train.epochs=1", "train.max_iters=3", "train.log_every=1")
        with restore_torch_state():
            runs[flag] = train(cfg, out=tmp_path / flag, device="cpu")
        assert formats == [flag == "true"] * 3
    a, b = runs["false"].history[-1]["loss"], runs["true"].history[-1]["loss"]
    # Mean loss of the 3 iterations: NHWC and NCHW convs sum in other orders (~1e-6 relative on the first forward);
    # the weights then differ only where a gradient is round-off sized (see below), which changes the loss to
    # second order: measured 2e-6 relative with AVX2 and AVX-512 kernels.
    assert a == pytest.approx(b, rel=1e-4)
    model, _ = model_from_checkpoint(tmp_path / "true" / "last.pt")
    ref = load_weights(tmp_path / "false" / "last.pt")
    # Adam's first steps are ~lr-sized whatever the gradient (|m/sqrt(v)| <= 1.01 for 3 steps), so a weight whose
    # gradient is round-off sized can step either way: <= 2 * 1.01 * (2e-6 + 8.5e-4 + 1e-3) = 3.8e-3 over the
    # steps' lr (measured 2.5e-3). BN running stats (EMA weight 0.27 over 3 steps) follow the activations those
    # weights change: means within the same 1e-2 (measured 5.9e-3), variances relative to their size: measured
    # 4.5e-3 on a running_var of 3 (0.15%) with OpenCV 4.14's crops, 1.8e-2 on 2.9 (0.6%) with OpenCV 5.1's (its
    # warpAffine rounds a few pixels differently, so the batches differ).
    state = model.state_dict()
    var = {k for k in ref if k.endswith("running_var")}
    assert max_abs_diff({k: v for k, v in state.items() if k not in var},
                        {k: v for k, v in ref.items() if k not in var}) < 1e-2
    for k in var:
        assert float((state[k] - ref[k]).abs().max()) <= 0.01 * float(ref[k].abs().max()), k
    assert all(p.is_contiguous() for p in model.parameters())


class _NaNAfter(torch.nn.Module):
    """RCE loss that returns NaN from the ``n``-th call on (a diverged run)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.calls = n, 0
        from fasterpose.losses import RCELoss

        self.loss = RCELoss()

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = self.loss(*args)
        return loss * float("nan") if self.calls >= self.n else loss


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(trainer, "build_loss", lambda cfg: _NaNAfter(4))
    cfg = tiny_config("train.checkpoint_every_iters=2", "train.epochs=3")
    with restore_torch_state(), pytest.raises(TrainingDivergedError) as err:
        train(cfg, out=tmp_path, device="cpu")
    msg = str(err.value)
    assert "loss is nan at iteration 4" in msg and "optim.lr" in msg and "check the data" in msg
    assert str(tmp_path / "last.pt") in msg
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())
    # through the CLI: one clear line, no traceback, exit status 2
    monkeypatch.setattr(trainer, "build_loss", lambda cfg: _NaNAfter(1))
    with restore_torch_state():
        code = main(["train", "synthetic_fasterpose_r18", "--out", str(tmp_path / "cli"),
                     *[a for o in ("train.epochs=1", *__import__("_engine_utils").TINY) for a in ("--opt", o)]])
    assert code == 2
    err_text = capsys.readouterr().err
    assert "fasterpose train: error: loss is nan at iteration 1" in err_text and "Traceback" not in err_text


def test_resume_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "synthetic_fasterpose_r18", "--resume", "--out", str(tmp_path)]) == 2
    assert "there is no" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err


def test_eval_decode_override_applies_and_encoding_override_is_refused(
        trained: tuple[Path, trainer.TrainResult], capsys: pytest.CaptureFixture[str]) -> None:
    out, result = trained
    ckpt = str(out / "last.pt")
    assert main(["eval", "--checkpoint", ckpt, "--json", "--opt", "data.codec.decode=argmax"]) == 0
    argmax_ap = json.loads(capsys.readouterr().out)["stats"]["AP"]
    # another decoder, other keypoints: the AP (a ratio of counts) moves by a discrete step, not by 1e-12
    assert argmax_ap != pytest.approx(result.final_stats["AP"], abs=1e-12)
    assert main(["eval", "--checkpoint", ckpt, "--opt", "data.codec.sigma=3"]) == 2
    assert "only the decoding settings" in capsys.readouterr().err
