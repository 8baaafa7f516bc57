"""``fasterpose distill``: teacher targets by hand, the student starts from the teacher's backbone, exact resume, and
the student checkpoint works in eval, export and predict."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from _engine_utils import tiny_config

from fasterpose.checkpoint import save_checkpoint
from fasterpose.cli import main
from fasterpose.engine import distill as D
from fasterpose.engine.trainer import build_model, build_spec, synthetic_split
from fasterpose.errors import DataError
from fasterpose.geometry import normalize_crop
from fasterpose.keypoints import COCO17
from fasterpose.models import model_from_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A (random) simplebaseline_r18 teacher at 64x64 with the tiny synthetic config, and a detection file in the
    wrapper layout that names the unlabeled images."""
    folder = tmp_path_factory.mktemp("distill")
    cfg = tiny_config("model.name=simplebaseline_r18", "loss.name=mse", "data.codec.unbiased=false")
    torch.manual_seed(0)
    teacher = build_model(cfg, pretrained=False)
    path = folder / "teacher.pt"
    save_checkpoint(path, {"spec": build_spec(cfg), "model": teacher.state_dict(), "config": asdict(cfg)})
    info = synthetic_split(cfg, "train")
    images = json.loads(Path(info["annotations"]).read_text())["images"]
    dets = json.loads(Path(info["detections"]).read_text())
    boxes = folder / "boxes.json"
    boxes.write_text(json.dumps({"images": images, "detections": dets}))
    return {"teacher": path, "images": str(info["images"]), "boxes": boxes, "folder": folder}


def test_teacher_targets_are_flip_tested_heatmaps_by_hand(setup):
    model, spec = model_from_checkpoint(setup["teacher"])
    crops = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    heat = D.teacher_heatmaps(model, spec, crops, batch=2)
    x = torch.from_numpy(normalize_crop(crops))
    with torch.no_grad():
        plain, mirrored = model(x).numpy(), model(torch.flip(x, dims=[3])).numpy()
    back = mirrored[:, COCO17.flip_index, :, ::-1].copy()
    back[..., 1:] = back[..., :-1].copy()  # the classic transform's one-pixel shift
    np.testing.assert_allclose(heat, 0.5 * (plain + back), atol=1e-5)  # identity activation: MSE teacher


def _settings(**kw) -> D.DistillSettings:
    # the teacher's trunk is the tiny config's stride-16 ResNet-18: the same student trunk takes its weights
    return D.DistillSettings(student="fasterpose_r18", student_kwargs={"output_stride": 16}, epochs=2, batch_size=8,
                             threads=1, **kw)


def test_resume_continues_exactly(setup, tmp_path, monkeypatch):
    common = {"boxes": setup["boxes"], "det_thr": 0.5, "max_crops": 12}
    full = D.distill(setup["teacher"], [setup["images"]], tmp_path / "full", _settings(finetune_epochs=1), **common)
    assert full["backbone_from"] == "teacher" and full["crops"] == 24  # 12 crops and their mirror images
    original = D.save_train_state
    calls = []

    def stop_after_first(path, state, **description):
        original(path, state, **description)
        calls.append(path)
        if len(calls) == 2:  # killed after epoch 2 of phase 1 was written
            raise KeyboardInterrupt

    monkeypatch.setattr(D, "save_train_state", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        D.distill(setup["teacher"], [setup["images"]], tmp_path / "cut", _settings(finetune_epochs=1), **common)
    monkeypatch.setattr(D, "save_train_state", original)
    # the saved training state is tensors and plain values: it loads without unpickling any object
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["distill"]["phase"] == 1
    with pytest.raises(DataError, match="--resume"):
        D.distill(setup["teacher"], [setup["images"]], tmp_path / "cut", _settings(finetune_epochs=1), **common)
    # the same stop as a file of the earlier layout (the epoch inside 'distill'; no scaler, RNG states or counters)
    (tmp_path / "earlier").mkdir()
    now = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    earlier = {k: now[k] for k in ("spec", "model", "config", "optimizer", "history")}
    earlier["distill"] = {**now["distill"], "epoch": now["epoch"]}
    save_checkpoint(tmp_path / "earlier" / "last.pt", earlier)
    a = torch.load(tmp_path / "full" / "student.pt", weights_only=True)
    for run in ("cut", "earlier"):
        again = D.distill(setup["teacher"], [setup["images"]], tmp_path / run, None, resume=True, **common)
        assert again["resumed"]
        b = torch.load(tmp_path / run / "student.pt", weights_only=True)
        assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]], run
        for key, value in a["model"].items():
            assert torch.equal(value, b["model"][key]), (run, key)


def test_cli_student_from_teacher_backbone_works_in_eval_export_predict(setup, tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["distill", setup["images"], "--teacher", str(setup["teacher"]), "--boxes", str(setup["boxes"]),
                 "--det-thr", "0.5", "--max-crops", "16", "--epochs", "2", "--batch-size", "8", "--threads", "1",
                 "--student-opt", "output_stride=16",
                 "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ckpt = out / "student.pt"
    student, spec = model_from_checkpoint(ckpt)
    teacher, _ = model_from_checkpoint(setup["teacher"])
    assert report["backbone_from"] == "teacher" and spec.model_name == "fasterpose_r18"
    assert spec.heatmap_activation == "sigmoid" and spec.input_size == (64, 64) and "distilled from" in spec.source
    for key, value in teacher.backbone.state_dict().items():  # phase 1 only: the teacher's backbone, untouched
        assert torch.equal(student.backbone.state_dict()[key], value), key
    assert report == json.loads((out / "report.json").read_text()) and report["crops"] == 32
    assert [h["epoch"] for h in torch.load(ckpt, weights_only=False)["history"]] == [1, 2]
    assert main(["eval", "--checkpoint", str(ckpt), "--json", "--batch-size", "8"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["value"] <= 1.0
    assert main(["export", "--weights", str(ckpt), "--out", str(tmp_path / "s.onnx")]) == 0  # --weights = --checkpoint
    image = next(Path(setup["images"]).iterdir())
    assert main(["predict", str(image), "--checkpoint", str(ckpt), "--full-image", "--out",
                 str(tmp_path / "pred")]) == 0
    results = json.loads((tmp_path / "pred" / "results.json").read_text())
    assert len(results) == 1 and len(results[0]["keypoints"]) == 51


def test_distill_errors(setup, tmp_path):
    with pytest.raises(Exception, match="FasterPose model"):
        D.DistillSettings(student="simplebaseline_r18")
    with pytest.raises(DataError, match="no person crop"):
        D.distill(setup["teacher"], [setup["images"]], tmp_path / "o", _settings(), boxes=setup["boxes"], det_thr=1.5)
    assert main(["distill", str(tmp_path / "missing"), "--teacher", str(setup["teacher"]), "--full-image", "--out",
                 str(tmp_path / "o2")]) == 2
