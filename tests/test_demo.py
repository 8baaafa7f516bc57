"""``fasterpose demo``: the README's main job, here with a seconds-long budget and a tiny dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _engine_utils import CACHE, restore_torch_state
from _reports import assert_paths_exist

from fasterpose.cli import main
from fasterpose.engine.demo import find_people_dir

TINY_DEMO = [f"data.synthetic.cache_dir={CACHE}", "data.synthetic.train_images=8", "data.synthetic.val_images=4",
             "data.synthetic.image_size=[128,128]", "data.input_size=[64,64]", "train.batch_size=4",
             "train.progress=never"]


@pytest.mark.slow
def test_demo_json_report_and_reusable_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--minutes", "0.05", "--out", str(out), "--json", "--threads", "1"]
    for o in TINY_DEMO:
        args += ["--opt", o]
    with restore_torch_state():
        assert main(args) == 0
    captured = capsys.readouterr().out
    report = json.loads(captured)  # exactly one JSON object on stdout
    for key in ("ap", "ap50", "train_seconds", "output_dir", "checkpoint", "params_m", "gmacs", "latency_ms_per_crop"):
        assert key in report, key
    assert 0.0 <= report["ap"] <= 1.0 and report["train_seconds"] >= 3.0 and report["iterations"] >= 1
    assert report["feature_stride"] == 16 and report["input_size"] == [64, 64]  # the demo config's stride, TINY's size
    # the recipe follows the CPU, and the report says which CPU class it saw
    assert report["recipe"] in ("bf16", "fp32") and report["cpu_label"] and "class" in report["cpu"]
    assert report["model"] == "fasterpose_r18_l3"
    assert report["bf16_autocast"] == (report["recipe"] == "bf16")
    # the report names the device it trained on and the precision it trained in, as training chose it
    assert report["device"] == "cpu" and report["device_label"] == "1 CPU thread(s)"
    assert report["precision"] == report["recipe"] and report["precision_reason"].startswith("train.cpu_amp=")
    # what the model learned: val predictions beside the ground truth
    picture = Path(report["val_picture"])
    assert picture == out / "val_predictions.jpg" and picture.stat().st_size > 1000
    assert Path(report["output_dir"]) == out
    assert json.loads((out / "report.json").read_text())["ap"] == report["ap"]
    for name in ("last.pt", "config.yaml", "metrics.jsonl", "curves.png", "val_results.json"):
        assert (out / name).is_file(), name
    people = find_people_dir()
    assert people is not None  # a clone has tests/data/people
    drawn = sorted(Path(p).name for p in report["drawn_images"])
    assert drawn == ["astronaut.jpg", "basketball1.jpg", "basketball2.jpg", "messi5.jpg"]
    assert all((out / "people" / n).stat().st_size > 1000 for n in drawn)
    assert "outside the training domain" in report["people_note"]
    assert len(assert_paths_exist(report)) >= 8  # every file the report names is there
    # the demo's checkpoint works with eval --checkpoint and nothing else
    assert main(["eval", "--checkpoint", report["checkpoint"], "--json", "--no-flip"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["metric"] == "AP" and evaluated["ap"] == evaluated["stats"]["AP"]


def test_demo_human_report(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --json the report is a readable summary; a missing tests/data/people is a note, not a failure."""
    from fasterpose.engine import demo

    monkeypatch.setattr(demo, "find_people_dir", lambda: None)
    args = ["demo", "--minutes", "0.02", "--out", str(tmp_path), "--threads", "1"]
    for o in TINY_DEMO:
        args += ["--opt", o]
    with restore_torch_state():
        assert main(args) == 0
    text = capsys.readouterr().out
    assert "COCO keypoint AP (held-out synthetic val, GT boxes)" in text
    assert "tests/data/people not found" in text and str(tmp_path / "last.pt") in text
    assert "CPU" in text and "recipe" in text and "val_predictions.jpg" in text


def test_demo_recipe_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 recipe only where the CPU has native bfloat16; the lighter fp32 recipe elsewhere; --recipe overrides."""
    import fasterpose.cpu
    from fasterpose.engine.demo import RECIPES, choose_recipe
    from fasterpose.errors import ConfigError

    monkeypatch.setattr(fasterpose.cpu, "native_bf16", lambda: True)
    assert choose_recipe()[0] == "bf16"
    monkeypatch.setattr(fasterpose.cpu, "native_bf16", lambda: False)
    name, reason = choose_recipe()
    assert name == "fp32" and "no native bfloat16" in reason
    assert "model.name=fasterpose_r18_l3" in RECIPES["fp32"] and "train.cpu_amp=off" in RECIPES["fp32"]
    assert "train.cpu_amp=bf16" in RECIPES["bf16"]
    assert choose_recipe("bf16") == ("bf16", "chosen with --recipe")
    with pytest.raises(ConfigError, match="--recipe"):
        choose_recipe("fp16")


def test_demo_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--minutes", "0"]) == 2
    assert "--minutes: must be a finite number > 0" in capsys.readouterr().err


def test_demo_device_and_its_recipe(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """--device: CUDA where torch sees a GPU (then the GPU's recipe, not a CPU one); a clear error where it sees
    none; the report says where and in which precision the model trained."""
    import torch

    from fasterpose.engine.demo import choose_device, choose_recipe, format_report
    from fasterpose.errors import ConfigError

    if not torch.cuda.is_available():
        assert choose_device() == "cpu"
        with pytest.raises(ConfigError, match="--device cpu"):
            choose_device("cuda")
        assert main(["demo", "--device", "cuda", "--minutes", "0.01"]) == 2
        assert "sees no CUDA GPU" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H200")
    assert choose_device() == "cuda" and choose_device("cpu") == "cpu"
    assert choose_recipe("auto", "cuda") == ("cuda", "GPU NVIDIA H200")
    with pytest.raises(ConfigError, match="CPU recipe"):
        choose_recipe("bf16", "cuda")
    with pytest.raises(ConfigError, match="--recipe"):
        choose_recipe("cuda", "cpu")
    report = {"input_size": [192, 128], "model": "fasterpose_r18_l3", "feature_stride": 16, "loss": "rce",
              "train_seconds": 90.0, "threads": 16, "device": "cuda:0", "device_label": "NVIDIA H200",
              "precision": "bf16", "precision_reason": "this GPU computes bfloat16: bf16 autocast, no loss scaling",
              "bf16_autocast": False, "cpu_label": "x86-64", "recipe": "cuda", "recipe_reason": "GPU NVIDIA H200",
              "ap": 0.8, "ap50": 0.9, "ap75": 0.8, "ar": 0.85, "ap_detector_boxes": 0.7, "params_m": 3.0,
              "gmacs": 0.5, "latency_ms_per_crop": 5.0, "iterations": 900, "samples_seen": 28800, "final_loss": 0.1,
              "train_images": 400, "val_images": 100, "train_persons": 600, "val_persons": 150,
              "total_seconds": 120.0, "output_dir": "out", "checkpoint": "out/last.pt", "val_picture": None,
              "drawn_images": [], "people_note": "none"}
    text = format_report(report)
    assert "trained 90 s on NVIDIA H200 (bfloat16 autocast)" in text and "native bfloat16" not in text
    assert "precision               : bf16 (this GPU computes bfloat16" in text
