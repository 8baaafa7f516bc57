"""CocoKeypoints and detection loading on the real COCO val2017 / OCHuman samples."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fasterpose import geometry
from fasterpose.codec import HeatmapCodec
from fasterpose.data import AugmentConfig, CocoKeypoints, load_detections, match_detections, read_detections
from fasterpose.errors import DataError
from fasterpose.keypoints import COCO17

DATA = Path(__file__).parent / "data"
COCO_DIR = DATA / "coco_val2017_samples"
COCO_ANN = COCO_DIR / "person_keypoints.json"
COCO_DET = COCO_DIR / "person_detections.json"
OCH_ANN = DATA / "ochuman_samples" / "person_keypoints.json"
OCH_DET = DATA / "ochuman_samples" / "person_detections.json"
L_WRIST, R_WRIST = COCO17.names.index("left_wrist"), COCO17.names.index("right_wrist")

FLIP_ONLY = AugmentConfig(flip=True, flip_prob=1.0, half_body_prob=0.0, scale_factor=0.0, rotation_prob=0.0)


def _expected_gt(ann_file: Path) -> list[int]:
    """Annotation ids HRNet keeps, computed from the raw json without the dataset code."""
    data = json.loads(ann_file.read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    kept = []
    for a in data["annotations"]:
        if a.get("iscrowd", 0) or a["num_keypoints"] == 0:
            continue
        x, y, w, h = a["bbox"]
        width, height = sizes[a["image_id"]]
        x1, y1 = max(0, x), max(0, y)
        x2 = min(width - 1, x1 + max(0, w - 1))
        y2 = min(height - 1, y1 + max(0, h - 1))
        if w > 0 and h > 0 and x2 - x1 > 0 and y2 - y1 > 0:
            kept.append(a["id"])
    return kept


@pytest.fixture(scope="module")
def coco_eval() -> CocoKeypoints:
    return CocoKeypoints(COCO_ANN)


def test_sample_layout(coco_eval: CocoKeypoints) -> None:
    ds = coco_eval
    assert ds.image_root == COCO_DIR and ds.input_size == (256, 192) and ds.keypoint_set is COCO17
    assert ds.codec == HeatmapCodec((256, 192)) and ds.augment is None and ds.num_skipped == 0
    assert list(ds.flip_index) == list(COCO17.flip_index) and ds.flip_pairs == COCO17.flip_pairs
    s = ds[0]
    assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 256, 192)
    assert s["target"].dtype == torch.float32 and s["target"].shape == (17, 64, 48)
    assert s["target_weight"].dtype == torch.float32 and s["target_weight"].shape == (17,)
    m = s["meta"]
    assert isinstance(m["image_id"], int) and isinstance(m["ann_id"], int) and m["index"] == 0
    assert m["center"].dtype == np.float32 and m["center"].shape == (2,) and m["scale"].shape == (2,)
    assert m["keypoints"].shape == (17, 3) and m["keypoints"].dtype == np.float32
    assert m["box_score"] == 1.0 and m["rotation"] == 0.0 and m["flipped"] is False
    assert m["area"] > 0
    # Aspect ratio of the region is the input's (float64 box arithmetic, then float32 storage: ~1e-7 relative).
    assert m["scale"][0] / m["scale"][1] == pytest.approx(192 / 256, rel=1e-5)
    assert ds[-1]["meta"]["index"] == len(ds) - 1
    with pytest.raises(IndexError):
        ds[len(ds)]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 256, 192) and batch["meta"]["keypoints"].shape == (3, 17, 3)
    assert batch["meta"]["image_id"].dtype == torch.int64 and batch["meta"]["flipped"].dtype == torch.bool
    assert ds.coco.getImgIds() == [785, 40083, 196141, 197388]


@pytest.mark.parametrize("ann_file", [COCO_ANN, OCH_ANN])
def test_gt_filtering_matches_raw_json(ann_file: Path) -> None:
    expected = _expected_gt(ann_file)
    for train in (True, False):
        ds = CocoKeypoints(ann_file, train=train)
        assert len(ds) == len(expected)
        assert [ds[i]["meta"]["ann_id"] for i in range(len(ds))] == expected
    if ann_file == COCO_ANN:
        assert len(expected) == 12  # 14 persons, 2 without keypoints (tests/data/README.md)


def test_crop_maps_back(coco_eval: CocoKeypoints) -> None:
    ds = coco_eval
    for i in range(len(ds)):
        s = ds[i]
        m = s["meta"]
        kp = m["keypoints"][:, :2].astype(np.float64)
        matrix = geometry.get_warp_matrix(m["center"], m["scale"], ds.input_size)
        crop_xy = geometry.transform_points(kp, matrix)
        back = geometry.crop_to_image(crop_xy[None], m["center"][None], m["scale"][None], ds.input_size)[0]
        # float64 forward + exact inverse affine of points < 1000 px: a few ulp(1000) = 1e-13. A tolerance that only
        # absorbs round-off also catches a half-pixel (classic vs UDP) mix-up, which a pixel-sized one would not.
        np.testing.assert_allclose(back, kp, atol=1e-9)
        # The target peaks sit on the keypoints: classic encoding rounds to the heatmap grid (<= 0.5 heatmap px
        # per axis), the quarter decoding moves 0.25 px, so the error is < 0.75 heatmap px per axis (measured 0.498:
        # symmetric targets give a zero quarter offset). Float64 mapping round-off is ~1e-13.
        dec, _ = ds.codec.decode(s["target"].numpy()[None])
        dec_img = geometry.crop_to_image(dec, m["center"][None], m["scale"][None], ds.input_size)[0]
        w = s["target_weight"].numpy() > 0
        labelled = m["keypoints"][:, 2] > 0
        inside = np.all((crop_xy >= 0) & (crop_xy < [192, 256]), axis=1)
        assert np.all(labelled[w]) and np.all(w[labelled & inside])
        tol = 0.75 * 4 * m["scale"][0] / 192
        assert np.abs(dec_img[w] - kp[w]).max() <= tol


def test_train_targets_follow_meta() -> None:
    """With every augmentation on, the targets still match the GT transformed by the meta's crop."""
    codec = HeatmapCodec((256, 192), unbiased=True, decode="dark")
    ds = CocoKeypoints(COCO_ANN, train=True, codec=codec, augment=AugmentConfig(color_jitter=True), seed=3)
    width = {785: 640, 40083: 640, 196141: 640, 197388: 640}
    seen_rot = seen_flip = 0
    for i in range(len(ds)):
        s = ds[i]
        m = s["meta"]
        kp, vis = m["keypoints"][:, :2], m["keypoints"][:, 2]
        if m["flipped"]:
            kp, vis = geometry.flip_keypoints(kp, vis, width[m["image_id"]], COCO17.flip_index)
        matrix = geometry.get_warp_matrix(m["center"], m["scale"], ds.input_size, rot=float(m["rotation"]), udp=True)
        crop_xy = geometry.transform_points(kp.astype(np.float64), matrix)
        dec, _ = codec.decode(s["target"].numpy())
        w = s["target_weight"].numpy() > 0
        assert np.all(vis[w] > 0)
        inside = (crop_xy[:, 0] > 16) & (crop_xy[:, 0] < 176) & (crop_xy[:, 1] > 16) & (crop_xy[:, 1] < 240)
        sel = w & inside
        if sel.any():
            # UDP targets are exact and DARK recovers them to ~0.05 input px (measured; test_codec bounds it by 0.05
            # heatmap px = 0.2 input px); float32 meta centre/scale add < 1e-4 px. A swapped keypoint is pixels off.
            assert np.abs(dec[sel] - crop_xy[sel]).max() < 1.0
        seen_rot += m["rotation"] != 0
        seen_flip += bool(m["flipped"])
    assert seen_rot > 0 and seen_flip > 0


@pytest.mark.parametrize("unbiased", [True, False])
def test_flip_swaps_left_right(unbiased: bool) -> None:
    codec = HeatmapCodec((256, 192), unbiased=unbiased)
    plain = CocoKeypoints(COCO_ANN, train=True, codec=codec, augment=AugmentConfig.none())
    flipped = CocoKeypoints(COCO_ANN, train=True, codec=codec, augment=FLIP_ONLY)
    checked = 0
    for i in range(len(plain)):
        a, b = plain[i], flipped[i]
        assert not a["meta"]["flipped"] and b["meta"]["flipped"]
        assert a["meta"]["ann_id"] == b["meta"]["ann_id"]
        np.testing.assert_array_equal(a["meta"]["keypoints"], b["meta"]["keypoints"])  # GT stays unflipped
        np.testing.assert_array_equal(b["target_weight"].numpy()[COCO17.flip_index], a["target_weight"].numpy())
        img_a, img_b = a["image"].numpy(), b["image"].numpy()
        # Normalised units: one uint8 level is 1 / 57.4 = 0.017. Mirrored sub-pixel positions may round to another
        # uint8 value (warpAffine's 1/32 px fixed point or float32 coordinates), rarely and by <= a few levels at
        # edges: measured mean 1.2e-4. A mean of 1e-2 (0.6 levels) is far above that, far below a wrong flip (~1).
        if unbiased:
            # UDP maps the crop grid onto itself: the flipped crop is the mirrored crop.
            assert np.abs(img_a[..., ::-1] - img_b).mean() < 1e-2
        else:
            # The classic crop of the mirrored image is the mirrored crop shifted by one pixel.
            assert np.abs(img_a[..., ::-1][..., :-1] - img_b[..., 1:]).mean() < 1e-2
        if a["target_weight"][R_WRIST] == 0:
            continue
        ta, tb = a["target"].numpy(), b["target"].numpy()
        ya, xa = np.unravel_index(ta[R_WRIST].argmax(), ta[R_WRIST].shape)
        yb, xb = np.unravel_index(tb[L_WRIST].argmax(), tb[L_WRIST].shape)
        assert yb == ya
        if unbiased:
            assert xb == 47 - xa  # exact mirror of the 48-wide heatmap
        else:
            assert abs(xb - (48 - xa)) <= 1  # classic: mirror about w/2, then rounding to the grid
        checked += 1
    assert checked >= 6


def test_detection_boxes_per_image() -> None:
    raw = json.loads(COCO_DET.read_text())
    for thr in (0.0, 0.3, 0.9):
        ds = CocoKeypoints(COCO_ANN, boxes=COCO_DET, det_score_thr=thr)
        expected: dict[int, int] = {}
        for d in raw:
            if d["category_id"] == 1 and d["score"] >= thr:
                expected[d["image_id"]] = expected.get(d["image_id"], 0) + 1
        got: dict[int, int] = {}
        for i in range(len(ds)):
            got[int(ds._image_ids[i])] = got.get(int(ds._image_ids[i]), 0) + 1
        assert got == expected and len(ds) == sum(expected.values())
    s = ds[0]
    assert s["meta"]["ann_id"] == -1 and s["meta"]["box_score"] >= 0.9
    assert np.all(s["meta"]["keypoints"] == 0) and np.all(s["target_weight"].numpy() == 0)
    och = CocoKeypoints(OCH_ANN, boxes=OCH_DET, det_score_thr=0.5)
    assert len(och) == sum(d["score"] >= 0.5 for d in json.loads(OCH_DET.read_text()))


def test_load_detections_formats(tmp_path: Path) -> None:
    dets = load_detections(COCO_DET, score_thr=0.5)
    raw = json.loads(COCO_DET.read_text())
    assert sum(len(v) for v in dets.values()) == sum(d["score"] >= 0.5 for d in raw)
    for boxes in dets.values():
        assert boxes.dtype == np.float32 and boxes.shape[1] == 5 and np.all(np.diff(boxes[:, 4]) <= 0)

    people = read_detections(DATA / "people" / "person_detections.json")
    assert len(people) == 8 and people.file_names[1] == "messi5.jpg"
    assert len(match_detections(people, "some/folder/messi5.jpg")) == len(people.boxes[1])
    assert len(match_detections(people, 2)) == len(people.boxes[2])
    assert len(match_detections(people, "unknown_3.jpg")) == 0  # not guessed from the digits
    assert len(match_detections(dets, "val2017/000000000785.jpg")) == len(dets[785])

    video = read_detections(DATA / "people" / "vtest_detections.json", score_thr=0.5)
    raw_v = json.loads((DATA / "people" / "vtest_detections.json").read_text())
    assert video.meta["frames"] == 795
    assert len(video) == sum(d["score"] >= 0.5 for d in raw_v["detections"])
    assert len(video.for_image("frame_0011.png")) == len(video.boxes.get(11, []))

    # Restricting to known images: every id gets an entry; unknown ids are an error naming the file.
    some = load_detections(COCO_DET, image_ids=[785, 40083, 196141, 197388, 5])
    assert len(some[5]) == 0
    with pytest.raises(DataError, match="person_detections.json.*not in the annotations"):
        load_detections(COCO_DET, image_ids=[785])


def test_detection_validation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = {"image_id": 785, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9}
    cases = {
        "not_json.json": "{not json",
        "dict.json": json.dumps({"annotations": []}),
        "no_score.json": json.dumps([good, {k: v for k, v in good.items() if k != "score"}]),
        "bad_bbox.json": json.dumps([{**good, "bbox": [1, 2, 3]}]),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=name):
            load_detections(tmp_path / name)
    with pytest.raises(DataError, match="detection 1 has no 'score'"):
        load_detections(tmp_path / "no_score.json")
    with pytest.raises(DataError, match="does not exist"):
        load_detections(tmp_path / "missing.json")
    p = tmp_path / "sizes.json"
    p.write_text(json.dumps([good, {**good, "bbox": [1, 1, 0, 5]}, {**good, "bbox": [1, 1, 5, -2]},
                             {**good, "category_id": 2}]))
    with caplog.at_level(logging.WARNING):
        det = read_detections(p)
    assert det.num_skipped == 2 and det.num_other_category == 1 and len(det) == 1
    assert "skipped 2 detection(s)" in caplog.text


def test_determinism_and_epochs() -> None:
    ds = CocoKeypoints(COCO_ANN, train=True, augment=AugmentConfig(color_jitter=True), seed=7)
    first = [ds[i] for i in range(len(ds))]
    again = CocoKeypoints(COCO_ANN, train=True, augment=AugmentConfig(color_jitter=True), seed=7)
    for i in reversed(range(len(ds))):  # order does not matter
        s = again[i]
        assert torch.equal(s["image"], first[i]["image"]) and torch.equal(s["target"], first[i]["target"])
        np.testing.assert_array_equal(s["meta"]["center"], first[i]["meta"]["center"])
    ds.set_epoch(1)
    changed = sum(not torch.equal(ds[i]["image"], first[i]["image"]) for i in range(len(ds)))
    assert changed >= len(ds) - 1
    ds.set_epoch(0)
    assert torch.equal(ds[3]["image"], first[3]["image"])
    other_seed = CocoKeypoints(COCO_ANN, train=True, seed=8)
    assert not all(other_seed[i]["meta"]["scale"][0] == first[i]["meta"]["scale"][0] for i in range(len(ds)))


def test_worker_count_does_not_matter() -> None:
    ds = CocoKeypoints(COCO_ANN, train=True, seed=1)
    ds.set_epoch(2)
    ref = torch.stack([ds[i]["target"] for i in range(len(ds))])
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2)
    got = torch.cat([b["target"] for b in loader])
    assert torch.equal(got, ref)


def _write_ann(tmp_path: Path, mutate=None, name: str = "ann.json") -> Path:
    data = json.loads(COCO_ANN.read_text())
    if mutate is not None:
        mutate(data)
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def test_bad_annotation_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        CocoKeypoints(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match=r"broken\.json: not valid JSON .*line 1, column 2"):
        CocoKeypoints(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DataError, match="list.json: not a COCO annotation file"):
        CocoKeypoints(tmp_path / "list.json")
    with pytest.raises(DataError, match="list.json: not a COCO annotation file"):
        CocoKeypoints(tmp_path / "list.json", boxes=COCO_DET)

    def no_bbox(d):
        del d["annotations"][2]["bbox"]

    with pytest.raises(DataError, match=r"no_bbox.json: annotation id 230195 has no 'bbox'"):
        CocoKeypoints(_write_ann(tmp_path, no_bbox, "no_bbox.json"))

    def short_kps(d):
        d["annotations"][4]["keypoints"] = d["annotations"][4]["keypoints"][:-3]

    with pytest.raises(DataError, match=r"short.json: annotation id \d+: 'keypoints' must be 51 numbers.*got 48"):
        CocoKeypoints(_write_ann(tmp_path, short_kps, "short.json"))

    def no_width(d):
        del d["images"][1]["width"]

    with pytest.raises(DataError, match=r"no_width.json: images\[1\].*'width'"):
        CocoKeypoints(_write_ann(tmp_path, no_width, "no_width.json"))

    def unknown_image(d):
        d["annotations"][0]["image_id"] = 999

    with pytest.raises(DataError, match="unknown_image.json: 1 annotations refer to image ids not in 'images'.*999"):
        CocoKeypoints(_write_ann(tmp_path, unknown_image, "unknown_image.json"))

    def mpii_cat(d):
        d["categories"][0]["keypoints"] = d["categories"][0]["keypoints"][:16]

    with pytest.raises(DataError, match="16 keypoints"):
        CocoKeypoints(_write_ann(tmp_path, mpii_cat, "cat.json"))


def test_bad_boxes_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def bad_boxes(d):
        d["annotations"][0]["bbox"][2] = 0.0  # zero width
        d["annotations"][1]["bbox"][3] = -5.0  # negative height
        d["annotations"][2]["bbox"][0] = 700.0  # starts right of the 640-px image: empty after clipping

    p = _write_ann(tmp_path, bad_boxes)
    with caplog.at_level(logging.WARNING):
        ds = CocoKeypoints(p, image_root=COCO_DIR, train=True)
    assert ds.num_skipped == 3 and len(ds) == 12 - 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "skipped 3 person annotation(s)" in warnings[0].getMessage()


def test_detections_for_unknown_images(tmp_path: Path) -> None:
    dets = json.loads(COCO_DET.read_text()) + [{"image_id": 123456, "category_id": 1, "bbox": [1, 1, 9, 9],
                                                "score": 0.9}]
    p = tmp_path / "my_dets.json"
    p.write_text(json.dumps(dets))
    with pytest.raises(DataError, match=r"my_dets.json: 1 image id\(s\).*not in the annotations \(first: 123456\)"):
        CocoKeypoints(COCO_ANN, boxes=p)


def test_missing_and_unreadable_images(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    shutil.copy(COCO_DIR / "000000000785.jpg", root)
    (root / "000000040083.jpg").write_bytes(b"this is not a jpeg")
    ds = CocoKeypoints(COCO_ANN, image_root=root)
    assert ds[0]["image"].shape == (3, 256, 192)
    with pytest.raises(DataError, match="000000040083.jpg.*could not be decoded"):
        ds[1]
    idx = next(i for i in range(len(ds)) if ds._image_ids[i] == 196141)
    with pytest.raises(DataError, match="000000196141.jpg.*does not exist"):
        ds[idx]
    # Default image root: <json folder>/images when the images are there.
    shutil.copy(COCO_ANN, tmp_path / "person_keypoints.json")
    assert CocoKeypoints(tmp_path / "person_keypoints.json").image_root == root


def test_large_annotation_file_starts_fast(tmp_path: Path) -> None:
    """150k annotations over 50k images: init must stay a few seconds (numpy arrays, no per-sample dicts)."""
    rng = np.random.default_rng(0)
    n_img, n_ann = 50_000, 150_000
    kps = rng.integers(0, 400, size=(n_ann, 17, 3))
    kps[:, :, 2] = rng.integers(0, 3, size=(n_ann, 17))
    boxes = rng.integers(2, 300, size=(n_ann, 4))
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(n_img)]
    kps_l, boxes_l, img_l = kps.reshape(n_ann, 51).tolist(), boxes.tolist(), (np.arange(n_ann) % n_img).tolist()
    anns = [{"id": j, "image_id": img_l[j], "category_id": 1, "iscrowd": 0, "bbox": boxes_l[j],
             "keypoints": kps_l[j], "num_keypoints": 17} for j in range(n_ann)]
    p = tmp_path / "big.json"
    p.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    del anns, kps_l
    t0 = time.perf_counter()
    ds = CocoKeypoints(p, train=True)
    seconds = time.perf_counter() - t0
    print(f"init of 150k annotations: {seconds:.2f} s")
    labelled = (kps[:, :, 2] > 0).any(axis=1)
    assert len(ds) == int(labelled.sum())
    assert ds._keypoints.dtype == np.float32 and ds._centers.dtype == np.float32
    assert seconds < 20.0  # ~2-3 s on one free core; generous for the shared CI machine
