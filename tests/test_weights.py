"""Published weights in: ImageNet backbones and SimpleBaseline COCO checkpoints (MMPose 0.x/1.x, official) by name or
file, downloaded from a local HTTP server, converted from checked-in key fixtures (tests/fixtures/README.md)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _http_server import closed_port_url, serve

import fasterpose
from fasterpose.cli import main
from fasterpose.errors import CheckpointError, ConfigError
from fasterpose.geometry import normalize_crop
from fasterpose.models import backbones, model_from_checkpoint, published
from fasterpose.models.loading import load_pose_checkpoint as load_checkpoint
from fasterpose.spec import PoseSpec

FIXTURES = Path(__file__).parent / "fixtures"
PEOPLE = Path(__file__).parent / "data" / "people"
LAYOUT_FIXTURES = {  # layout -> (fixture, file name as released, wrapper key)
    "mmpose-0.x": ("mmpose0x_res50_coco_256x192.json", "res50_coco_256x192-0123abcd_20200709.pth", "state_dict"),
    "mmpose-1.x": ("mmpose1x_res50_coco_256x192.json", "td-hm_res50_coco-256x192-0123abcd.pth", "state_dict"),
    "simplebaseline-official": ("simplebaseline_official_pose_resnet_50.json", "pose_resnet_50_256x192.pth.tar",
                                None),
}


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def random_state(fixture: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values with a fixture's names and shapes; He-scaled convolutions and BatchNorm statistics near
    (0, 1), so that a 50-layer network's outputs stay finite."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in json.loads((FIXTURES / fixture).read_text()).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * math.sqrt(1.0 / fan_in)
        elif key.endswith("running_var"):
            state[key] = 1.0 + 0.1 * torch.rand(shape, generator=gen)
        elif key.endswith(".weight") and "bn" in key or (key.endswith(".weight") and len(shape) == 1):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=gen)
    return state


def _ours(key: str, layout: str) -> str:
    """The documented renaming, written out independently of the converter."""
    if layout == "simplebaseline-official":
        return ("head." if key.startswith(("deconv_layers.", "final_layer.")) else "backbone.") + key
    return key.replace("keypoint_head.", "head.", 1) if key.startswith("keypoint_head.") else key


def _save(state: dict[str, torch.Tensor], path: Path, wrapper: str | None) -> Path:
    torch.save({wrapper: state, "meta": {"epoch": 210}} if wrapper else state, path)
    return path


# --- ImageNet backbones by name -------------------------------------------------------------------------------------

def test_imagenet_by_name_downloads_checks_caches_and_loads(cache, monkeypatch, tmp_path):
    state = random_state("torchvision_resnet18.json")
    blob = tmp_path / "blob.pth"
    torch.save(state, blob)
    data = blob.read_bytes()
    name = f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    with serve() as server:
        server.files[f"/models/{name}"] = data
        monkeypatch.setitem(backbones.TORCHVISION_URLS, "resnet18", server.url(f"/models/{name}"))
        model = fasterpose.create_model("fasterpose_r18", pretrained="imagenet")
        for key, value in model.backbone.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert sorted(p.name for p in cache.iterdir()) == [name]
        # the config setting takes the same path, from the cache this time (one request in all)
        from fasterpose.engine.config import load_config
        from fasterpose.engine.trainer import build_model

        cfg = load_config("synthetic_fasterpose_r18", ["model.pretrained=imagenet", "data.input_size=[64,64]"])
        trained = build_model(cfg)
        assert torch.equal(trained.backbone.conv1.weight, state["conv1.weight"]) and len(server.requests) == 1


def test_imagenet_offline_names_url_and_cache_folder(cache, monkeypatch):
    url = closed_port_url("/models/resnet50-0676ba61.pth")
    monkeypatch.setitem(backbones.TORCHVISION_URLS, "resnet50", url)
    with pytest.raises(CheckpointError) as info:
        fasterpose.create_model("fasterpose_r50", pretrained="imagenet")
    assert url in str(info.value) and str(cache) in str(info.value) and "resnet50-0676ba61.pth" in str(info.value)
    assert not cache.exists() or not any(cache.iterdir())


def test_shipped_coco_configs_use_imagenet() -> None:
    from fasterpose.engine.config import list_configs, load_config

    names = [n for n in list_configs() if n.startswith(("coco_", "mpii_"))]
    assert names and all(load_config(n).model.pretrained == "imagenet" for n in names)
    for name, url in backbones.TORCHVISION_URLS.items():  # torchvision's file names carry the hash we check
        assert fasterpose.hub.hash_prefix_from_name(url.rsplit("/", 1)[1]), name


# --- SimpleBaseline COCO checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", list(LAYOUT_FIXTURES))
def test_layouts_convert_to_simplebaseline_r50(layout, tmp_path):
    fixture, file_name, wrapper = LAYOUT_FIXTURES[layout]
    state = random_state(fixture)
    path = _save(state, tmp_path / file_name, wrapper)
    ckpt = load_checkpoint(path)
    spec = ckpt["spec"]
    assert spec["model_name"] == "simplebaseline_r50" and spec["input_size"] == [256, 192]
    assert spec["heatmap_activation"] == "identity" and spec["flip_test"] is True
    assert spec["codec"]["unbiased"] is False and spec["codec"]["decode"] == "quarter" and spec["codec"]["sigma"] == 2
    assert spec["channel_order"] == ("bgr" if layout == "simplebaseline-official" else "rgb")
    assert layout in spec["source"]
    model, _ = model_from_checkpoint(ckpt)
    ours = model.state_dict()
    assert set(ours) == {_ours(k, layout) for k in state}  # every key of the release has its place, none is left
    for key, value in state.items():
        assert torch.equal(ours[_ours(key, layout)], value), key
    same = fasterpose.create_model("simplebaseline_r50", weights=path)
    assert torch.equal(same.head.final_layer.bias, state[[k for k in state if k.endswith("final_layer.bias")][0]])


def test_old_official_file_without_bn_counters_and_with_module_prefix(tmp_path):
    state = {f"module.{k}": v for k, v in random_state(LAYOUT_FIXTURES["simplebaseline-official"][0]).items()
             if not k.endswith("num_batches_tracked")}  # PyTorch 0.4.0 files, saved from DataParallel
    path = _save(state, tmp_path / "pose_resnet_50_384x288.pth.tar", "state_dict")
    model, spec = model_from_checkpoint(load_checkpoint(path))
    assert spec.input_size == (384, 288) and spec.channel_order == "bgr"
    assert torch.equal(model.backbone.layer4[2].bn3.running_var, state["module.layer4.2.bn3.running_var"])


def test_unknown_or_wrong_files_are_named_errors(tmp_path):
    state = random_state(LAYOUT_FIXTURES["mmpose-0.x"][0])
    state["keypoint_head.final_layer.weight"] = state["keypoint_head.final_layer.weight"][:16]
    state["keypoint_head.final_layer.bias"] = state["keypoint_head.final_layer.bias"][:16]
    with pytest.raises(CheckpointError, match="16 keypoints"):
        load_checkpoint(_save(state, tmp_path / "res50_mpii_256x256.pth", "state_dict"))
    tv = _save(random_state("torchvision_resnet50.json"), tmp_path / "resnet50.pth", None)
    with pytest.raises(CheckpointError, match="not a fasterpose checkpoint"):
        load_checkpoint(tv)  # an ImageNet classifier is not a pose checkpoint
    with pytest.raises(CheckpointError, match="weights list"):
        load_checkpoint("simplebaseline_r51_coco_256x192")
    path = _save(random_state(LAYOUT_FIXTURES["mmpose-1.x"][0]), tmp_path / "r50.pth", "state_dict")
    with pytest.raises(CheckpointError, match="for simplebaseline_r50, not simplebaseline_r101"):
        fasterpose.create_model("simplebaseline_r101", weights=path)
    with pytest.raises(ConfigError, match="drop head_channels"):
        fasterpose.create_model("simplebaseline_r50", weights=path, head_channels=128)


def test_published_name_downloads_from_its_url(cache, monkeypatch, tmp_path):
    blob = _save(random_state(LAYOUT_FIXTURES["mmpose-0.x"][0]), tmp_path / "blob.pth", "state_dict")
    data = blob.read_bytes()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    entry = published.PUBLISHED["simplebaseline_r50_coco_384x288"]
    file_name = entry.url.rsplit("/", 1)[1]
    with serve() as server:
        server.files[f"/mmpose/{file_name}"] = data
        monkeypatch.setitem(published.PUBLISHED, entry.name, published.PublishedWeights(
            entry.name, entry.model, entry.input_size, server.url(f"/mmpose/{file_name}"), prefix, entry.coco_ap,
            entry.source))
        model = fasterpose.create_model("simplebaseline_r50", weights=entry.name)
        spec = load_checkpoint(entry.name)["spec"]
    assert spec["input_size"] == [384, 288] and entry.name in spec["source"]
    assert (cache / file_name).read_bytes() == data and model.head.final_layer.weight.shape == (17, 256, 1, 1)


def test_weights_list(capsys):
    assert main(["weights", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(published.PUBLISHED)
    r50 = next(r for r in rows if r["name"] == "simplebaseline_r50_coco_256x192")
    assert r50["coco_ap"] == 0.718 and r50["input_size"] == [256, 192] and r50["url"].endswith(
        "res50_coco_256x192-ec54d7f3_20200709.pth")
    for w in published.PUBLISHED.values():  # MMPose's file-name hash convention; sizes as in the names
        assert len(w.sha256_prefix) == 8 and f"-{w.sha256_prefix}_" in w.url and 0.7 < w.coco_ap < 0.76
        assert f"{w.input_size[0]}x{w.input_size[1]}" in w.url and w.model.split("_r")[1] in w.url


def test_bgr_channel_order_by_hand():
    crop = np.zeros((1, 2, 3), np.uint8)
    crop[..., 0], crop[..., 1], crop[..., 2] = 10, 20, 30  # B, G, R
    rgb, bgr = normalize_crop(crop), normalize_crop(crop, "bgr")
    assert rgb[0, 0, 0] == pytest.approx((30 - 123.675) / 58.395)  # R normalised with R's statistics
    assert bgr[0, 0, 0] == pytest.approx((10 - 123.675) / 58.395)  # B, with R's statistics (official release)
    assert bgr[2, 0, 0] == pytest.approx((30 - 103.53) / 57.375)


def test_predict_with_mmpose_release_file_draws_17_keypoints(tmp_path):
    """Done means: a file laid out as MMPose's SimpleBaseline-R50 COCO release runs through predict."""
    path = _save(random_state(LAYOUT_FIXTURES["mmpose-0.x"][0]), tmp_path / "res50_coco_256x192-ec54d7f3.pth",
                 "state_dict")
    out = tmp_path / "out"
    assert main(["predict", str(PEOPLE / "messi5.jpg"), "--weights", str(path), "--full-image", "--out",
                 str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 1 and len(results[0]["keypoints"]) == 17 * 3
    assert all(math.isfinite(v) for v in results[0]["keypoints"])
    drawn = (out / "messi5.jpg")
    assert drawn.is_file() and drawn.stat().st_size > 0


def test_eval_takes_an_imported_file(tmp_path, capsys):
    """The README's reproduction command, on the COCO val2017 samples: an official-layout file (BGR input) is
    evaluated with the SimpleBaseline config."""
    samples = Path(__file__).parent / "data" / "coco_val2017_samples"
    path = _save(random_state(LAYOUT_FIXTURES["simplebaseline-official"][0]), tmp_path / "pose_resnet_50_256x192.pth",
                 None)
    assert main(["eval", "coco_simplebaseline_r50_256x192", "--weights", str(path), "--boxes", "gt", "--json",
                 "--opt", f"data.val_ann={samples / 'person_keypoints.json'}", "--opt", f"data.val_images={samples}",
                 "--opt", "train.workers=0", "--batch-size", "8", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "simplebaseline_r50" and report["flip_test"] and 0.0 <= report["value"] <= 1.0
    with pytest.raises(CheckpointError, match="not a fasterpose checkpoint"):  # a spec that travels into ONNX
        load_checkpoint(_save({"x": torch.zeros(1)}, tmp_path / "other.pth", None))
    assert PoseSpec.from_json(PoseSpec("m", (8, 8), channel_order="bgr").to_json()
                                         ).channel_order == "bgr"
