"""Tests of the synthetic COCO-format dataset generator (fasterpose.data.synthetic) and ``fasterpose synth``."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from fasterpose.data import synthetic as syn
from fasterpose.errors import DataError
from fasterpose.keypoints import COCO17

N = 20
K = COCO17.num_keypoints
L_SHO, R_SHO, L_HIP, R_HIP = 5, 6, 11, 12


def _hashes(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("synth") / "seed0"
    return syn.generate_dataset(root, N, seed=0, progress=False)


@pytest.fixture(scope="module")
def gt(dataset: dict) -> dict:
    return json.loads(Path(dataset["annotations"]).read_text())


def _kpts(ann: dict) -> np.ndarray:
    return np.asarray(ann["keypoints"], dtype=np.float64).reshape(K, 3)


def test_summary_and_layout(dataset: dict, gt: dict) -> None:
    assert dataset["num_images"] == N and not dataset["cached"]
    assert len(list(Path(dataset["images"]).glob("*.jpg"))) == N
    assert dataset["num_persons"] == len(gt["annotations"]) >= N
    info = gt["info"][syn.INFO_KEY]
    assert info["num_images"] == N and info["seed"] == 0 and info["size"] == [256, 256]


def test_determinism(dataset: dict, tmp_path: Path) -> None:
    again = syn.generate_dataset(tmp_path / "again", N, seed=0, progress=False)
    other = syn.generate_dataset(tmp_path / "other", N, seed=1, progress=False)
    h0, h1, h2 = _hashes(Path(dataset["root"])), _hashes(Path(again["root"])), _hashes(Path(other["root"]))
    assert h0 == h1
    assert h0.keys() == h2.keys()
    assert all(h0[k] != h2[k] for k in h0 if k != ".fasterpose-written.json")  # the list of names is the same


def test_prefix_property_and_unique_ids(dataset: dict, gt: dict, tmp_path: Path) -> None:
    small = syn.generate_dataset(tmp_path / "small", 5, seed=0, progress=False)
    h_small, h_full = _hashes(Path(small["images"])), _hashes(Path(dataset["images"]))
    assert all(h_full[k] == v for k, v in h_small.items())
    other = json.loads(Path(syn.generate_dataset(tmp_path / "s7", 3, seed=7, progress=False)["annotations"])
                       .read_text())
    ids0 = {im["id"] for im in gt["images"]}
    ids7 = {im["id"] for im in other["images"]}
    assert len(ids0) == N and not ids0 & ids7
    assert min(ids7) == 7 * syn.IMAGE_ID_STRIDE + 1
    ann_ids = [a["id"] for a in gt["annotations"]] + [a["id"] for a in other["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids)


def test_cached_and_guarded(dataset: dict, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    again = syn.generate_dataset(dataset["root"], N, seed=0, progress=False)
    assert again["cached"] and time.perf_counter() - t0 < 2.0
    with pytest.raises(DataError, match="other parameters"):
        syn.generate_dataset(dataset["root"], N, seed=3, progress=False)
    # An incomplete folder (no keypoints json) is regenerated.
    root = tmp_path / "partial"
    syn.generate_dataset(root, 3, seed=0, progress=False)
    (root / syn.KEYPOINTS_FILE).unlink()
    assert not syn.generate_dataset(root, 3, seed=0, progress=False)["cached"]
    # overwrite=True replaces a different dataset and leaves no stale images behind.
    res = syn.generate_dataset(root, 2, seed=4, progress=False, overwrite=True)
    assert sorted(p.name for p in Path(res["images"]).glob("*.jpg")) == ["000000.jpg", "000001.jpg"]
    assert syn.generate_dataset(root, 2, seed=4, progress=False)["cached"]


def test_ensure_synthetic_dataset(tmp_path: Path) -> None:
    a = syn.ensure_synthetic_dataset(tmp_path, "val", num_images=3, size=(128, 96), progress=False)
    b = syn.ensure_synthetic_dataset(tmp_path, "val", num_images=3, size=(128, 96), progress=False)
    assert not a["cached"] and b["cached"] and a["root"] == b["root"]
    assert a["seed"] == syn.SPLIT_SEEDS["val"] == 1
    assert Path(a["root"]).parent == tmp_path and Path(a["root"]).name.startswith("val-")
    gt = json.loads(Path(a["annotations"]).read_text())
    assert all(im["height"] == 128 and im["width"] == 96 for im in gt["images"])
    with pytest.raises(DataError):
        syn.ensure_synthetic_dataset(tmp_path, "bogus", num_images=3)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' mask decoding under numpy 2
def test_pycocotools_loads_and_gt_scores_ap_1(dataset: dict, gt: dict) -> None:
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(dataset["annotations"]))
        cat = coco.loadCats(1)[0]
        assert cat["keypoints"] == list(COCO17.names)
        assert cat["skeleton"] == [[a + 1, b + 1] for a, b in COCO17.skeleton]
        results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
                   for a in gt["annotations"]]
        dt = coco.loadRes(results)
        ev = COCOeval(coco, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)  # identical keypoints: OKS 1 at every threshold, AP exactly 1
        # Segmentation polygons match the silhouette area.
        # Polygon outline vs pixel silhouette differ by about the boundary pixels (geometry, not round-off).
        for a in gt["annotations"][:10]:
            assert abs(int(coco.annToMask(coco.loadAnns(a["id"])[0]).sum()) - a["area"]) < 0.25 * a["area"]
        # Detections load as bbox results too.
        dets = coco.loadRes(str(dataset["detections"]))
        assert len(dets.getAnnIds()) == dataset["num_detections"]


def test_annotation_fields(gt: dict) -> None:
    images = {im["id"]: im for im in gt["images"]}
    for a in gt["annotations"]:
        assert a["category_id"] == 1 and a["iscrowd"] == 0 and a["image_id"] in images
        k = _kpts(a)
        assert set(np.unique(k[:, 2])) <= {0, 1, 2}
        assert a["num_keypoints"] == int((k[:, 2] > 0).sum()) > 0
        assert np.all(k[k[:, 2] == 0, :2] == 0)
        im = images[a["image_id"]]
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and 0 < a["area"] <= w * h
        assert x >= 0 and y >= 0 and x + w <= im["width"] and y + h <= im["height"]
        lab = k[k[:, 2] > 0]
        assert np.all((lab[:, 0] >= x) & (lab[:, 0] <= x + w) & (lab[:, 1] >= y) & (lab[:, 1] <= y + h))


def _render_many(n: int, seed: int = 5) -> list[dict]:
    out = []
    for i in range(n):
        _, persons = syn.render_sample(seed, i)
        out += persons
    return out


@pytest.fixture(scope="module")
def persons() -> list[dict]:
    return _render_many(60)


def test_visibility_flags(persons: list[dict]) -> None:
    truncated = [p for p in persons if p["truncated"]]
    assert truncated, "expected some figures cut by the image border"
    for p in truncated:
        assert (p["keypoints"][:, 2] == 0).any()
    flags = np.concatenate([p["keypoints"][:, 2] for p in persons])
    assert (flags == 1).any() and (flags == 2).mean() > 0.6
    for p in persons:
        k = p["keypoints"]
        face_inside = not p["truncated"]
        if abs(p["head_yaw"]) > 150:  # the face points away from the camera
            assert (k[:3, 2] == 0).all(), "nose and eyes of a back view must be unlabelled"
            if face_inside:
                assert (k[3:5, 2] > 0).all(), "both ears of a back view are labelled"
        if abs(p["head_yaw"]) < 30 and face_inside:
            assert (k[:5, 2] > 0).all(), "face of a front view must be labelled"
        if 78 < abs(p["head_yaw"]) < 102 and face_inside:  # profile: one eye and one ear
            assert k[0, 2] > 0 and (k[1:3, 2] > 0).sum() == 1 and (k[3:5, 2] > 0).sum() == 1


def _clean_upright(persons: list[dict]) -> list[dict]:
    return [p for p in persons if not p["truncated"] and p["pose"] in ("stand", "walk")
            and (p["keypoints"][:, 2] > 0).sum() >= 13]


def test_anatomical_order(persons: list[dict]) -> None:
    upright = _clean_upright(persons)
    assert len(upright) >= 5
    for p in upright:
        k = p["keypoints"]
        bh = p["bbox"][3]
        if k[0, 2] > 0:
            assert k[0, 1] < min(k[L_HIP, 1], k[R_HIP, 1])  # nose above hips (y grows downwards)
        assert max(k[L_SHO, 1], k[R_SHO, 1]) < min(k[L_HIP, 1], k[R_HIP, 1])  # shoulders above hips
        assert max(k[L_HIP, 1], k[R_HIP, 1]) < min(k[15, 1], k[16, 1])  # hips above ankles
        assert np.hypot(*(k[L_HIP, :2] - k[R_HIP, :2])) < 0.2 * bh  # hip width plausible
        assert np.hypot(*(k[L_SHO, :2] - k[L_HIP, :2])) > 0.15 * bh  # torso not collapsed


def test_left_right_follows_facing(persons: list[dict]) -> None:
    front = [p for p in _clean_upright(persons) if p["facing"] == "front"]
    back = [p for p in _clean_upright(persons) if p["facing"] == "back"]
    assert front and back
    for p in front:  # facing the camera: the person's left is on the image right
        assert p["keypoints"][L_SHO, 0] > p["keypoints"][R_SHO, 0]
        assert p["keypoints"][L_HIP, 0] > p["keypoints"][R_HIP, 0]
    for p in back:
        assert p["keypoints"][L_SHO, 0] < p["keypoints"][R_SHO, 0]
        assert p["keypoints"][L_HIP, 0] < p["keypoints"][R_HIP, 0]


def test_detections(dataset: dict, gt: dict) -> None:
    dets = json.loads(Path(dataset["detections"]).read_text())
    per_image: dict[int, list] = {}
    for d in dets:
        assert d["category_id"] == 1 and 0.0 <= d["score"] <= 1.0 and len(d["bbox"]) == 4
        assert d["bbox"][2] > 0 and d["bbox"][3] > 0
        per_image.setdefault(d["image_id"], []).append(d)
    assert set(per_image) == {im["id"] for im in gt["images"]}
    # Most people are found with a good box and a high score.
    hits = 0
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        best = max(syn._iou(np.array([x, y, x + w, y + h]), np.array([d["bbox"][0], d["bbox"][1],
                                                                       d["bbox"][0] + d["bbox"][2],
                                                                       d["bbox"][1] + d["bbox"][3]]))
                   for d in per_image[a["image_id"]])
        hits += best > 0.7
    assert hits >= 0.8 * len(gt["annotations"])


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fasterpose.cli import main

    assert main(["synth", str(tmp_path / "cli"), "--images", "3", "--seed", "2", "--size", "128x96"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_images"] == 3 and out["size"] == [128, 96] and out["seed"] == 2
    assert main(["synth", str(tmp_path / "bad"), "--images", "3", "--size", "12xfoo"]) == 2


def test_parse_size() -> None:
    assert syn.parse_size("256x192") == (256, 192)
    assert syn.parse_size("128") == (128, 128)
    with pytest.raises(DataError):
        syn.parse_size("axb")


def test_speed_generous(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    syn.generate_dataset(tmp_path / "speed", 20, seed=9, progress=False)
    assert time.perf_counter() - t0 < 20.0  # ~10 ms/image on one free core; very generous for shared CI


def test_occlusion_gives_v1() -> None:
    """Crowding and foreground objects must turn covered keypoints into v=1 (not v=2, not dropped)."""

    def frac_v1(cfg: syn.SynthConfig) -> float:
        flags = np.concatenate([p["keypoints"][:, 2] for i in range(25) for p in syn.render_sample(11, i,
                                                                                                   config=cfg)[1]])
        return float((flags == 1).sum() / (flags > 0).sum())

    alone = frac_v1(syn.SynthConfig(min_persons=1, max_persons=1, occluder_prob=0.0, truncation_prob=0.0))
    crowded = frac_v1(syn.SynthConfig(min_persons=4, max_persons=4, max_overlap=0.6, max_cover=0.9,
                                      occluder_prob=1.0))
    assert crowded > alone + 0.05


def test_presets() -> None:
    easy, hard = syn.SynthConfig.preset("easy"), syn.SynthConfig.preset("hard")
    assert syn.SynthConfig.preset("default") == syn.SynthConfig()
    assert easy.max_persons < syn.SynthConfig().max_persons < hard.max_persons
    assert syn.params_hash(syn.dataset_params(5, 0, (256, 256), easy)) != syn.params_hash(
        syn.dataset_params(5, 0, (256, 256)))
    with pytest.raises(DataError, match="unknown synthetic difficulty"):
        syn.SynthConfig.preset("nightmare")
    with pytest.raises(DataError):
        syn.SynthConfig(min_persons=3, max_persons=2)


def test_no_torch_import() -> None:
    import subprocess
    import sys

    code = "import sys, fasterpose.data.synthetic, fasterpose.commands.synth; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
