"""Your keypoints, your dataset, end to end through the command line and the engine:

(a) the real MPII samples written as a COCO-format file with MPII's own 16 names: train, evaluate (PCK), export,
    predict, with the names carried into the ONNX metadata and the prediction outputs;
(b) the synthetic figures relabelled into a layout no named set has (15 keypoints: head, neck, pelvis, limbs in
    camelCase, no face points): a short training learns it (PCK far above the untrained model);
(c) a set whose names have no left/right: no flip augmentation and no flip test, in the run and in the model;
(d) COCO-17 through ``auto`` trains to exactly the same weights and AP as ``coco17``;
and checkpoints / ONNX files written before the set was stored (spec ``keypoint_set: "coco17"``) still load.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _engine_utils import TINY, load_weights, max_abs_diff, restore_torch_state, tiny_config

from fasterpose.checkpoint import load_checkpoint, save_checkpoint
from fasterpose.cli import main
from fasterpose.engine import trainer
from fasterpose.engine.inference import evaluate_dataset
from fasterpose.keypoints import COCO17, MPII16
from fasterpose.keypoints.category import keypoint_set_from_file
from fasterpose.keypoints.config import resolve_keypoint_set
from fasterpose.models import model_from_checkpoint

DATA = Path(__file__).parent / "data"
MPII = DATA / "mpii_samples"
COCO = DATA / "coco_val2017_samples"
# MPII's own joint names, in its annotation order (MPII Human Pose, joint ids 0..15).
MPII_NAMES = ["r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
              "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"]
MPII_SKELETON = [[1, 2], [2, 3], [3, 7], [7, 4], [4, 5], [5, 6], [7, 8], [8, 9], [9, 10], [8, 13], [13, 12],
                 [12, 11], [8, 14], [14, 15], [15, 16]]  # 1-based, as COCO files write it

# Small, fast, deterministic runs on one thread (the shared TINY settings without the synthetic-only ones), with the
# smallest ResNet model (ResNet-18 through layer3).
SMALL = ["model.name=fasterpose_r18_l3", "model.kwargs={}"]
FAST = [o for o in TINY if not o.startswith("data.synthetic.")] + SMALL
NO_AUG = "data.augment={flip: false, half_body_prob: 0.0, scale_factor: 0.0, rotation_factor: 0.0, rotation_prob: 0.0}"


def mpii_as_coco(out: Path) -> Path:
    """The MPII samples as a COCO keypoint file: 0-based pixels, boxes = joints' extent + 10% (clipped).

    Written the way a user's converter might: without ``area`` and ``num_keypoints``, which only COCOeval reads.
    """
    entries = json.loads((MPII / "annotations.json").read_text())
    files = sorted({e["image"] for e in entries})
    images = []
    for i, name in enumerate(files):
        h, w = cv2.imread(str(MPII / name)).shape[:2]
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
    ids = {im["file_name"]: im for im in images}
    anns = []
    for j, e in enumerate(entries):
        xy = np.asarray(e["joints"], dtype=np.float64) - 1.0  # MATLAB 1-based -> COCO 0-based
        vis = np.asarray(e["joints_vis"]) > 0
        lo, hi = xy[vis].min(0), xy[vis].max(0)
        pad = 0.1 * (hi - lo)
        im = ids[e["image"]]
        x0, y0 = np.maximum(lo - pad, 0)
        x1, y1 = np.minimum(hi + pad, [im["width"] - 1, im["height"] - 1])
        kps = np.concatenate([xy, np.where(vis, 2, 0)[:, None]], axis=1)
        kps[~vis, :2] = 0
        anns.append({"id": j + 1, "image_id": im["id"], "category_id": 1, "iscrowd": 0,
                     "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                     "keypoints": [float(v) for v in kps.reshape(-1)]})
    cat = {"id": 1, "name": "person", "supercategory": "person", "keypoints": MPII_NAMES, "skeleton": MPII_SKELETON}
    path = out / "mpii_coco.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [cat]}))
    return path


def test_mpii_as_coco_train_eval_export_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ann = mpii_as_coco(tmp_path)
    assert main(["check-data", str(ann), "--images", str(MPII)]) == 0  # warnings only
    text = capsys.readouterr().out
    assert "WARNING [eval-fields]" in text and "r_ankle<->l_ankle" in text and "5 persons" in text
    run = tmp_path / "run"
    data = [f"data.train_ann={ann}", f"data.val_ann={ann}", f"data.train_images={MPII}", f"data.val_images={MPII}"]
    with restore_torch_state():
        assert main(["train", "synthetic_fasterpose_r18", "--out", str(run), "--opt", "data.keypoint_set=auto",
                     *[x for o in [*data, *FAST, "train.batch_size=2", "train.epochs=1"] for x in ("--opt", o)]]) == 0
    spec = load_checkpoint(run / "last.pt")["spec"]
    assert spec["keypoint_set"]["names"] == MPII_NAMES and spec["keypoint_set"]["sigmas"] is None
    # What the names say agrees with MPII-16's hand-written metadata (the set came from the file, not from a name).
    assert [tuple(p) for p in spec["keypoint_set"]["flip_pairs"]] == list(MPII16.flip_pairs)
    assert [tuple(p) for p in spec["keypoint_set"]["skeleton"]] == list(MPII16.skeleton)
    capsys.readouterr()

    with restore_torch_state():
        assert main(["eval", "--checkpoint", str(run / "last.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metric"] == "PCK" and report["keypoint_names"] == MPII_NAMES
    assert report["sigmas_source"] == "default" and report["sigmas"] == [0.05] * 16
    assert 0.0 <= report["value"] <= 1.0 and report["stats"]["EPE"] > 0 and report["num_persons"] == 5
    assert report["pck"] == report["value"] and report["ap"] == report["stats"]["AP"] and report["pckh"] is None
    assert set(report["stats"]["pck_per_keypoint"]) == set(MPII_NAMES)

    onnx_path = tmp_path / "mpii.onnx"
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--out", str(onnx_path)]) == 0
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["keypoint_names"]) == MPII_NAMES
    assert json.loads(meta["fasterpose_spec"])["keypoint_set"]["names"] == MPII_NAMES

    pred = tmp_path / "pred"
    assert main(["predict", str(MPII / "052475643.jpg"), "--onnx", str(onnx_path), "--full-image",
                 "--out", str(pred)]) == 0
    assert json.loads((pred / "keypoint_set.json").read_text())["names"] == MPII_NAMES
    results = json.loads((pred / "results.json").read_text())
    assert len(results) == 1 and len(results[0]["keypoints"]) == 3 * 16
    assert (pred / "052475643.jpg").is_file()


# Relabel COCO-17 into a layout of 15 keypoints: head (the nose), neck (mean of the shoulders), pelvis (mean of the
# hips), camelCase limbs; no eyes or ears. Odd K, three unpaired centre points.
NEW_NAMES = ["head", "neck", "LeftShoulder", "RightShoulder", "LeftElbow", "RightElbow", "LeftWrist", "RightWrist",
             "pelvis", "LeftHip", "RightHip", "LeftKnee", "RightKnee", "LeftAnkle", "RightAnkle"]
_FROM_COCO = {"head": [0], "neck": [5, 6], "pelvis": [11, 12]}


def relabel(src: Path, dst: Path) -> Path:
    """Rewrite a COCO-17 annotation file (as `fasterpose synth` writes it) into the :data:`NEW_NAMES` layout."""
    data = json.loads(src.read_text())
    coco = {n: i for i, n in enumerate(COCO17.names)}
    for a in data["annotations"]:
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
        out = []
        for name in NEW_NAMES:
            idx = _FROM_COCO.get(name) or [coco[("left_" if name.startswith("Left") else "right_")
                                                 + name.split("Left")[-1].split("Right")[-1].lower()]]
            part = kp[idx]
            v = part[:, 2].min()
            out.append([*part[:, :2].mean(0), v] if v > 0 else [0.0, 0.0, 0.0])
        a["keypoints"] = [float(v) for v in np.asarray(out).reshape(-1)]
        a["num_keypoints"] = int((np.asarray(out)[:, 2] > 0).sum())
    links = [("head", "neck"), ("neck", "LeftShoulder"), ("neck", "RightShoulder"), ("LeftShoulder", "LeftElbow"),
             ("LeftElbow", "LeftWrist"), ("RightShoulder", "RightElbow"), ("RightElbow", "RightWrist"),
             ("neck", "pelvis"), ("pelvis", "LeftHip"), ("pelvis", "RightHip"), ("LeftHip", "LeftKnee"),
             ("LeftKnee", "LeftAnkle"), ("RightHip", "RightKnee"), ("RightKnee", "RightAnkle")]
    data["categories"] = [{"id": 1, "name": "figure", "keypoints": NEW_NAMES,
                           "skeleton": [[NEW_NAMES.index(a) + 1, NEW_NAMES.index(b) + 1] for a, b in links]}]
    dst.write_text(json.dumps(data))
    return dst


EASY = ("data.synthetic.generator={max_persons: 1, clutter: 0.0, occluder_prob: 0.0, max_distractors: 0, "
        "noise_std: 0.0, blur_prob: 0.0, wild_pose_prob: 0.0, truncation_prob: 0.0, max_roll: 0.0}")


def test_a_new_layout_is_learned(tmp_path: Path) -> None:
    split = trainer.synthetic_split(tiny_config(EASY, "data.synthetic.train_images=4"), "train")
    ann = relabel(Path(split["annotations"]), tmp_path / "figures15.json")
    images = str(split["images"])
    cfg = tiny_config("data.keypoint_set=auto", f"data.train_ann={ann}", f"data.val_ann={ann}",
                      f"data.train_images={images}", f"data.val_images={images}", "train.batch_size=2",
                      "train.epochs=30", "train.val_every=30", "optim.lr=3e-3", "train.channels_last=false", NO_AUG,
                      *SMALL)
    assert cfg.data.dataset == "coco"  # a synthetic config given an annotation file reads that file
    kset = resolve_keypoint_set(cfg)
    assert kset.names == tuple(NEW_NAMES) and kset.num_keypoints == 15 and kset.name == "figure"
    assert [(NEW_NAMES[a], NEW_NAMES[b]) for a, b in kset.flip_pairs] == [
        ("LeftShoulder", "RightShoulder"), ("LeftElbow", "RightElbow"), ("LeftWrist", "RightWrist"),
        ("LeftHip", "RightHip"), ("LeftKnee", "RightKnee"), ("LeftAnkle", "RightAnkle")]
    assert [NEW_NAMES[i] for i in kset.upper_body] == NEW_NAMES[:8]  # pelvis, hips, knees, ankles are lower body
    with restore_torch_state():
        untrained = trainer.build_model(cfg, keypoint_set=kset)
        codec = trainer.build_codec(cfg)
        before = evaluate_dataset(untrained, trainer.build_dataset(cfg, "val", codec, keypoint_set=kset), codec, kset)
        result = trainer.train(cfg, out=tmp_path / "run", device="cpu")
    after = result.final_stats
    assert before["metric"] == after["metric"] == "PCK"
    assert before["PCK"] < 0.4 and after["PCK"] > 0.8, (before["PCK"], after["PCK"])  # measured 0.19 -> 0.98
    assert after["EPE"] < before["EPE"] / 4
    model, spec = model_from_checkpoint(tmp_path / "run" / "last.pt")
    assert spec.keypoint_set == kset and model(torch.zeros(1, 3, 64, 64)).shape == (1, 15, 16, 16)
    assert spec.flip_test  # every left/right keypoint has its partner


def test_a_set_without_sides_trains_without_flips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split = trainer.synthetic_split(tiny_config(), "train")
    data = json.loads(Path(split["annotations"]).read_text())
    names = ["tip", "eye_a", "eye_b", "ear_a", "ear_b"]  # the face points, named without sides
    for a in data["annotations"]:
        a["keypoints"] = a["keypoints"][:15]
        a["num_keypoints"] = sum(1 for v in a["keypoints"][2::3] if v > 0)
    for a in data["annotations"]:
        a["category_id"] = 5
    data["categories"] = [{"id": 5, "name": "face5", "keypoints": names, "skeleton": [[1, 2], [1, 3]]}]
    ann = tmp_path / "face5.json"
    ann.write_text(json.dumps(data))
    cfg = tiny_config("data.keypoint_set=auto", f"data.train_ann={ann}", f"data.train_images={split['images']}",
                      "train.max_iters=1")
    with restore_torch_state():
        trainer.train(cfg, out=tmp_path / "run", device="cpu")
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["spec"]["keypoint_set"]["flip_pairs"] == [] and ckpt["spec"]["flip_test"] is False
    assert ckpt["spec"]["category_id"] == 5  # predict writes it in its results
    # Detections of another category (a person detector's 1) leave nothing to evaluate: a clear error, no traceback.
    with restore_torch_state():
        assert main(["eval", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--boxes", str(split["detections"]),
                     "--opt", f"data.val_ann={ann}", "--opt", f"data.val_images={split['images']}"]) == 2
    assert "has no persons to evaluate: no box in" in capsys.readouterr().err
    assert ckpt["config"]["data"]["augment"]["flip"] is False and ckpt["config"]["train"]["flip_test"] is False
    from fasterpose import Predictor

    predictor = Predictor(tmp_path / "run" / "last.pt")
    assert predictor.flip_test is False and predictor.keypoint_set.names == tuple(names)
    # data.flip: true turns them back on when the user knows better.
    on = tiny_config("data.keypoint_set=auto", f"data.train_ann={ann}", "data.flip=true")
    from fasterpose.keypoints.config import apply_flip_choice

    assert apply_flip_choice(on, resolve_keypoint_set(on)).data.augment.flip


def test_coco17_through_auto_trains_identically(tmp_path: Path) -> None:
    ann = COCO / "person_keypoints.json"
    common = [f"data.train_ann={ann}", f"data.val_ann={ann}", f"data.train_images={COCO}", f"data.val_images={COCO}",
              "train.max_iters=2", "train.val_every=1", "train.epochs=1", *SMALL]
    runs = {}
    with restore_torch_state():
        for name in ("coco17", "auto"):
            runs[name] = trainer.train(tiny_config(f"data.keypoint_set={name}", *common), out=tmp_path / name,
                                       device="cpu")
    assert max_abs_diff(load_weights(tmp_path / "coco17" / "last.pt"), load_weights(tmp_path / "auto" / "last.pt")) == 0
    a, b = runs["coco17"].final_stats, runs["auto"].final_stats
    assert a["metric"] == b["metric"] == "AP" and a["AP"] == b["AP"] and a["sigmas_source"] == "keypoint set"
    assert load_checkpoint(tmp_path / "auto" / "last.pt")["spec"]["keypoint_set"] == COCO17.to_dict()


def test_files_written_before_sets_were_stored_still_load(tmp_path: Path) -> None:
    """A checkpoint and an ONNX file whose spec names the set (``"coco17"``) instead of holding it."""
    from fasterpose import Predictor
    from fasterpose.models import create_model
    from fasterpose.spec import PoseSpec

    spec = PoseSpec(model_name="fasterpose_r18", input_size=(64, 64), model_kwargs={"output_stride": 16},
                    codec={"input_size": [64, 64]})
    torch.manual_seed(0)
    net = create_model("fasterpose_r18", num_keypoints=17, output_stride=16).eval()
    old = tmp_path / "old.pt"
    save_checkpoint(old, {"spec": {**spec.to_dict(), "keypoint_set": "coco17"}, "model": net.state_dict()})
    assert torch.load(old, weights_only=False)["spec"]["keypoint_set"] == "coco17"
    _, loaded = model_from_checkpoint(old)
    assert loaded.keypoint_set == COCO17

    onnx_path = tmp_path / "old.onnx"
    assert main(["export", "--checkpoint", str(old), "--out", str(onnx_path)]) == 0
    import onnx

    proto = onnx.load(str(onnx_path))
    for p in proto.metadata_props:
        if p.key == "fasterpose_spec":
            d = json.loads(p.value)
            assert d["keypoint_set"] == COCO17.to_dict()  # new files hold the whole set
            p.value = json.dumps({**d, "keypoint_set": "coco17"})
    onnx.save(proto, str(onnx_path))
    image = cv2.imread(str(COCO / "000000000785.jpg"))
    box = np.array([[280.0, 40.0, 220.0, 380.0]])
    with restore_torch_state():
        torch.set_num_threads(1)
        by_onnx = Predictor(onnx_path)(image, box)[0]["keypoints"]
        by_torch = Predictor(old)(image, box)[0]["keypoints"]
    assert Predictor(onnx_path).keypoint_set == COCO17
    np.testing.assert_allclose(by_onnx[:, :2], by_torch[:, :2], atol=0.05)


def test_export_eval_scores_a_custom_category(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``fasterpose export --eval`` on a file whose keypoint category is neither COCO-17 nor id 1."""
    import onnx  # noqa: F401 - the deploy extra

    from fasterpose.models import create_model
    from fasterpose.spec import PoseSpec

    names = ["head", "neck", "tail"]
    data = json.loads((COCO / "person_keypoints.json").read_text())
    data["categories"] = [{"id": 4, "name": "critter", "keypoints": names, "skeleton": [[1, 2], [2, 3]]}]
    for a in data["annotations"]:
        a["category_id"] = 4
        a["keypoints"] = a["keypoints"][:9]
        a["num_keypoints"] = sum(1 for v in a["keypoints"][2::3] if v > 0)
    ann = tmp_path / "critters.json"
    ann.write_text(json.dumps(data))
    kset = keypoint_set_from_file(ann)
    spec = PoseSpec(model_name="fasterpose_r18_l3", input_size=(64, 64), keypoint_set=kset,
                    codec={"input_size": [64, 64]})
    torch.manual_seed(0)
    ckpt = tmp_path / "critter.pt"
    save_checkpoint(ckpt, {"spec": spec, "model": create_model("fasterpose_r18_l3", num_keypoints=3).state_dict()})
    with restore_torch_state():
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "c.onnx"), "--eval", str(ann),
                     "--calib-image-root", str(COCO), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["eval"]["fp32"]["AP"] <= 1.0  # scored with the default sigma (the category has none)


def test_predict_writes_the_models_category_and_eval_results_scores_it(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A model trained on a file whose keypoint category is id 7, beside a category without keypoints, and whose
    annotations lack area / num_keypoints: predict's results carry id 7 and ``eval-results`` scores them on that file.
    """
    from fasterpose.models import create_model
    from fasterpose.spec import PoseSpec

    data = json.loads((COCO / "person_keypoints.json").read_text())
    data["categories"] = [{"id": 2, "name": "ball"}, {**data["categories"][0], "id": 7, "name": "figure"}]
    for a in data["annotations"]:
        a.update(category_id=7)
        a.pop("area"), a.pop("num_keypoints")
    data["annotations"].append({"id": 99, "image_id": data["images"][0]["id"], "category_id": 2, "bbox": [1, 1, 9, 9]})
    ann = tmp_path / "figures.json"
    ann.write_text(json.dumps(data))
    spec = PoseSpec(model_name="fasterpose_r18_l3", input_size=(64, 64), keypoint_set=keypoint_set_from_file(ann),
                    codec={"input_size": [64, 64]}, category_id=7)
    torch.manual_seed(0)
    ckpt = tmp_path / "figure.pt"
    save_checkpoint(ckpt, {"spec": spec, "model": create_model("fasterpose_r18_l3", num_keypoints=17).state_dict()})
    # The user's detector found figures (7) and balls (2): predict and eval read the boxes of the model's category.
    dets = json.loads((COCO / "person_detections.json").read_text())
    for i, d in enumerate(dets):
        d["category_id"] = 7 if i % 2 else 2
    boxes = tmp_path / "dets.json"
    boxes.write_text(json.dumps(dets))
    figures = [d for d in dets if d["category_id"] == 7 and d["score"] >= 0.3]
    from fasterpose.data import CocoKeypoints

    assert len(CocoKeypoints(ann, COCO, input_size=(64, 64), boxes=boxes, keypoint_set=spec.keypoint_set)) == len(
        [d for d in dets if d["category_id"] == 7])
    pred = tmp_path / "pred"
    with restore_torch_state():
        assert main(["predict", str(COCO), "--checkpoint", str(ckpt), "--boxes", str(boxes),
                     "--no-draw", "--no-flip", "--threads", "1", "--out", str(pred)]) == 0
    results = json.loads((pred / "results.json").read_text())
    assert len(results) == len(figures) > 0 and {r["category_id"] for r in results} == {7}
    assert sorted(r["score"] for r in results) == pytest.approx(sorted(d["score"] for d in figures), abs=1e-6)
    # A person detector's file (category 1) for this model: refused with the way out, which then reads it.
    persons = [d for d in dets if d["score"] >= 0.3]
    with restore_torch_state():
        assert main(["predict", str(COCO), "--checkpoint", str(ckpt), "--boxes", str(COCO / "person_detections.json"),
                     "--no-draw", "--out", str(tmp_path / "p1")]) == 2
        assert "none of its 118 boxes is of category 7" in capsys.readouterr().err
        assert main(["predict", str(COCO), "--checkpoint", str(ckpt), "--boxes", str(COCO / "person_detections.json"),
                     "--box-category", "1", "--no-draw", "--no-flip", "--threads", "1", "--out", str(tmp_path / "p2")
                     ]) == 0
    results = json.loads((tmp_path / "p2" / "results.json").read_text())
    assert len(results) == len(persons) and {r["category_id"] for r in results} == {7}
    capsys.readouterr()
    assert main(["eval-results", str(ann), str(pred / "results.json"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert 0.0 <= stats["AP"] < 0.5  # an untrained model, scored without a traceback

    old = PoseSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "category_id"})
    assert old.category_id is None  # files written before the category was stored: predict writes COCO's 1
    with pytest.raises(ValueError, match="category_id must be an integer"):
        PoseSpec(model_name="fasterpose_r18_l3", input_size=(64, 64), category_id="7")
