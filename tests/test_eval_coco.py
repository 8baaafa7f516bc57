"""COCO keypoint evaluation on real annotations: AP of the ground truth, equality with plain pycocotools,
rescoring, per-image NMS, input validation and the ``eval-results`` command."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fasterpose.cli import main
from fasterpose.errors import DataError
from fasterpose.evaluation import (
    STAT_NAMES,
    evaluate_keypoints,
    format_table,
    load_coco,
    load_results,
    make_results,
    rescore,
    write_results,
)

DATA = Path(__file__).parent / "data"
COCO_ANN = DATA / "coco_val2017_samples" / "person_keypoints.json"
OCH_ANN = DATA / "ochuman_samples" / "person_keypoints.json"


def gt_as_results(ann_file: Path, noise: float = 0.0, seed: int = 0) -> list[dict]:
    """Ground-truth persons with keypoints submitted as results (keypoint score 1 where labelled, score 1)."""
    data = json.loads(ann_file.read_text())
    rng = np.random.default_rng(seed)
    out = []
    for a in data["annotations"]:
        if a["num_keypoints"] == 0 or a.get("iscrowd"):
            continue
        kp = np.array(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp[:, 2] = (kp[:, 2] > 0).astype(float)
        kp[:, :2] += rng.normal(0.0, noise, (len(kp), 2)) if noise else 0.0
        score = float(rng.uniform(0.5, 1.0)) if noise else 1.0
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": score})
    return out


def pycocotools_stats(ann_file: Path, res_file: Path) -> list[float]:
    """What plain pycocotools gives on the two files."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        ev = COCOeval(gt, gt.loadRes(str(res_file)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def write(path: Path, obj) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# --- ground truth as results --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ann", [COCO_ANN, OCH_ANN], ids=["coco", "ochuman"])
def test_ground_truth_as_results_gives_ap_1(ann):
    res = gt_as_results(ann)
    assert len(res) == (12 if ann == COCO_ANN else 5)
    for kwargs in ({}, {"rescore": True, "nms": "oks"}, {"rescore": True, "nms": "soft"}):
        stats = evaluate_keypoints(str(ann), res, **kwargs)
        assert list(stats) == list(STAT_NAMES)
        assert stats["AP"] == 1.0 and stats["AR"] == 1.0 and stats["AP50"] == 1.0, kwargs
        assert all(isinstance(v, float) for v in stats.values())
    assert "area" not in res[0]  # the caller's list is not modified by loadRes


@pytest.mark.parametrize("ann", [COCO_ANN, OCH_ANN], ids=["coco", "ochuman"])
@pytest.mark.parametrize("noise", [0.0, 8.0])
def test_cli_no_rescore_no_nms_equals_pycocotools_exactly(ann, noise, tmp_path, capsys):
    res_file = write(tmp_path / "res.json", gt_as_results(ann, noise=noise))
    assert main(["eval-results", str(ann), str(res_file), "--json", "--no-rescore", "--no-nms"]) == 0
    stats = json.loads(capsys.readouterr().out)
    expected = pycocotools_stats(ann, res_file)
    assert [stats[k] for k in STAT_NAMES] == expected  # exactly, not approximately
    if noise:
        assert stats["AP"] < 1.0


def test_cli_json_prints_exactly_one_object(tmp_path, capsys):
    res_file = write(tmp_path / "res.json", gt_as_results(COCO_ANN, noise=5.0))
    assert main(["eval-results", str(COCO_ANN), str(res_file), "--json"]) == 0
    out = capsys.readouterr().out
    stats = json.loads(out)  # nothing but the JSON object on stdout (no pycocotools prints)
    assert out.strip().startswith("{") and out.count("\n") == 1
    assert sorted(stats) == sorted(STAT_NAMES)
    assert 0.0 < stats["AP"] <= 1.0


def test_cli_table_and_errors(tmp_path, capsys):
    res_file = write(tmp_path / "res.json", gt_as_results(OCH_ANN))
    assert main(["eval-results", str(OCH_ANN), str(res_file), "--soft-nms"]) == 0
    out = capsys.readouterr().out
    assert "| AP " in out and "1.000" in out and "soft OKS-NMS" in out
    assert main(["eval-results", str(OCH_ANN), str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "missing.json" in err and "does not exist" in err and "Traceback" not in err


# --- files written by other tools: COCOeval fields left out, other categories beside the keypoint one --------------
def test_missing_eval_fields_are_filled_in_as_training_does(tmp_path, capsys, caplog):
    """A file without area / num_keypoints / iscrowd (as converters write them) is scored with a warning, exactly as
    pycocotools scores the same file with them written in by hand: area = box w*h, COCO's own num_keypoints."""
    data = json.loads(COCO_ANN.read_text())
    reference = json.loads(COCO_ANN.read_text())
    for a, r in zip(data["annotations"], reference["annotations"]):
        assert not a["iscrowd"]
        for field in ("area", "num_keypoints", "iscrowd"):
            a.pop(field)
        r["area"] = r["bbox"][2] * r["bbox"][3]
    assert any(r["num_keypoints"] == 0 for r in reference["annotations"])  # persons COCOeval must ignore
    stripped, reference = write(tmp_path / "stripped.json", data), write(tmp_path / "reference.json", reference)
    res_file = write(tmp_path / "res.json", gt_as_results(COCO_ANN, noise=8.0))
    with caplog.at_level("WARNING", logger="fasterpose.evaluation.coco"):
        assert main(["eval-results", str(stripped), str(res_file), "--json", "--no-rescore", "--no-nms"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert [stats[k] for k in STAT_NAMES] == pycocotools_stats(reference, res_file)
    assert 0.0 < stats["AP"] < 1.0
    assert "stripped.json: 14 keypoint annotations lack 'area', 'num_keypoints' or 'iscrowd'" in caplog.text


def test_a_keypoint_category_beside_other_categories_is_scored_alone(tmp_path, capsys):
    """Keypoint category id 7 in a file that also has boxes of a category without keypoints (and no COCOeval
    fields): its results score exactly as the same persons in a file with nothing but COCO's person category."""
    data = json.loads(COCO_ANN.read_text())
    for a in data["annotations"]:
        a["category_id"] = 7
    data["categories"] = [{"id": 3, "name": "car", "supercategory": "vehicle"}, {**data["categories"][0], "id": 7},
                          {**data["categories"][0], "id": 8, "name": "mannequin"}]
    data["annotations"] += [{"id": 10 ** 6 + i, "image_id": im["id"], "category_id": 3, "bbox": [0, 0, 40, 30]}
                            for i, im in enumerate(data["images"])]
    ann = write(tmp_path / "cat7.json", data)
    res = gt_as_results(COCO_ANN, noise=8.0)
    plain = write(tmp_path / "res1.json", res)
    res7 = write(tmp_path / "res7.json", [{**r, "category_id": 7} for r in res])
    assert main(["eval-results", str(ann), str(res7), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert main(["eval-results", str(COCO_ANN), str(plain), "--json"]) == 0
    assert stats == json.loads(capsys.readouterr().out) and 0.0 < stats["AP"] < 1.0
    mixed = write(tmp_path / "mixed.json", [{**r, "category_id": 7 if i else 8} for i, r in enumerate(res)])
    assert main(["eval-results", str(ann), str(mixed)]) == 2
    err = capsys.readouterr().err
    assert "several categories [7, 8]" in err and "Traceback" not in err


# --- rescoring and results ----------------------------------------------------------------------------------------
def test_rescore_hand_computed():
    kp = np.zeros((3, 4, 3))
    kp[0, :, 2] = [0.9, 0.5, 0.1, 0.2]  # above 0.2: 0.9, 0.5 -> mean 0.7 (0.2 itself is not above)
    kp[1, :, 2] = [0.1, 0.0, 0.2, 0.15]  # none above -> 0 (HRNet)
    kp[2, :, 2] = [1.0, 1.0, 1.0, 1.0]
    # float64 means and products of a few numbers: ulps, inside the default rtol 1e-7
    np.testing.assert_allclose(rescore(kp, [0.5, 0.9, 0.8]), [0.35, 0.0, 0.8])
    np.testing.assert_allclose(rescore(kp, [1, 1, 1], kpt_thr=0.0), [0.425, 0.45 / 3, 1.0])


def test_make_results_rescores_and_nms_per_image():
    kp = np.array(json.loads(COCO_ANN.read_text())["annotations"][0]["keypoints"], dtype=np.float64).reshape(17, 3)
    kp[:, 2] = 0.8
    dup = kp.copy()
    dup[:, :2] += 1.0
    poses = np.stack([kp, dup, kp])
    image_ids = np.array([785, 785, 40083])  # the third is the same pose in another image: not suppressed
    res = make_results(image_ids, poses, np.array([0.9, 0.5, 0.7]), np.full(3, 200.0 * 300.0))
    assert [r["image_id"] for r in res] == [785, 40083]
    assert [r["score"] for r in res] == pytest.approx([0.9 * 0.8, 0.7 * 0.8])  # float64 mean * score: ulps
    r = res[0]
    assert set(r) == {"image_id", "category_id", "keypoints", "score"} and r["category_id"] == 1
    assert type(r["image_id"]) is int and type(r["score"]) is float
    assert len(r["keypoints"]) == 51 and all(type(v) is float for v in r["keypoints"])
    json.dumps(res)
    raw = make_results(image_ids, poses, np.array([0.9, 0.5, 0.7]), np.ones(3), rescore=False, nms=None)
    assert [r["score"] for r in raw] == [0.9, 0.5, 0.7]
    soft = make_results(image_ids, poses, np.array([0.9, 0.5, 0.7]), np.ones(3) * 6e4, nms="soft")
    assert len(soft) == 3  # soft NMS keeps the duplicate (with its own score, as HRNet)
    with pytest.raises(ValueError, match="nms"):
        make_results(image_ids, poses, np.ones(3), np.ones(3), nms="box")
    assert make_results([], np.zeros((0, 17, 3)), [], []) == []


def test_default_recipe_removes_duplicates_of_results_file(tmp_path):
    res = gt_as_results(COCO_ANN, noise=2.0)
    dups = [dict(r, score=r["score"] * 0.5, keypoints=[v + 0.5 if i % 3 != 2 else v
                                                       for i, v in enumerate(r["keypoints"])]) for r in res]
    plain = evaluate_keypoints(COCO_ANN, res + dups)
    recipe = evaluate_keypoints(COCO_ANN, res + dups, rescore=True, nms="oks")
    alone = evaluate_keypoints(COCO_ANN, res, rescore=True, nms="oks")
    assert recipe == alone  # OKS-NMS removed every near-duplicate
    assert plain["AP"] <= recipe["AP"]


def test_write_results_roundtrip(tmp_path):
    res = gt_as_results(OCH_ANN)
    path = tmp_path / "sub" / "res.json"
    write_results(path, res)
    assert json.loads(path.read_text()) == res
    assert [p.name for p in path.parent.iterdir()] == ["res.json"]  # no temporary file left behind
    assert load_results(path, load_coco(OCH_ANN)) == res


def test_format_table():
    table = format_table(dict(zip(STAT_NAMES, [0.5, 0.75, -1.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])))
    lines = table.splitlines()
    assert len(lines) == 3 and all(name in lines[0] for name in STAT_NAMES)
    assert "0.500" in lines[2] and "n/a" in lines[2]


# --- validation -----------------------------------------------------------------------------------------------------
def _ann_variant(tmp_path: Path, edit) -> Path:
    data = json.loads(COCO_ANN.read_text())
    edit(data)
    return write(tmp_path / "bad_ann.json", data)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda d: d.pop("annotations"), ["'annotations'"]),
        (lambda d: d["categories"][0].pop("keypoints"), ["keypoints"]),
        (lambda d: d["annotations"][2].update(keypoints=[1, 2, 2]), ["annotations[2]", "length 3", "51"]),
        (lambda d: d["annotations"][1].pop("bbox"), ["annotations[1]", "'bbox'"]),
        (lambda d: [d["annotations"][1].pop(k) for k in ("bbox", "area")], ["annotations[1]", "'bbox'"]),
        (lambda d: [d["annotations"][1].pop("area"), d["annotations"][1].update(bbox=[1, 2, "w", 4])],
         ["annotations[1]", "no 'area'", "'w'"]),
        (lambda d: d["annotations"][0].pop("id"), ["annotations[0]", "'id'"]),
        (lambda d: d["annotations"][0].update(image_id=999), ["999", "1 in all"]),
    ],
    ids=["not-coco", "no-keypoint-category", "kpt-length", "missing-bbox", "missing-bbox-and-area", "bad-bbox-no-area",
         "missing-id", "unknown-image"],
)
def test_load_coco_rejects_bad_annotations(tmp_path, edit, words):
    path = _ann_variant(tmp_path, edit)
    with pytest.raises(DataError) as e:
        load_coco(path)
    for w in [str(path), *words]:
        assert w in str(e.value)


def test_load_coco_missing_and_not_json(tmp_path):
    with pytest.raises(DataError, match="nope.json: annotation file does not exist"):
        load_coco(tmp_path / "nope.json")
    bad = write(tmp_path / "bad.json", "{not json")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON .*line 1"):
        load_coco(bad)
    with pytest.raises(DataError, match="results file"):
        load_coco(write(tmp_path / "list.json", []))


@pytest.mark.parametrize(
    "results, words",
    [
        ("{oops", ["not valid JSON"]),
        ({"a": 1}, ["JSON list", "dict"]),
        ([], ["no results"]),
        ([{"image_id": 785, "category_id": 1, "keypoints": [0.0] * 51}], ["entry [0]", "'score'"]),
        ([{"image_id": 785, "category_id": 1, "score": 1.0}], ["entry [0]", "'keypoints'"]),
        ([{"category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}], ["entry [0]", "'image_id'"]),
        ([{"image_id": 785, "category_id": 1, "keypoints": [0.0] * 50, "score": 1.0}], ["length 50", "51"]),
        ([{"image_id": 785, "category_id": 1, "keypoints": [None] * 51, "score": 1.0}], ["finite"]),
        ([{"image_id": i, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0} for i in (785, 1, 2, 3, 4, 5, 6)],
         ["not in the annotations", "1, 2, 3, 4, 5", "(6 in all)"]),
        ([{"image_id": 785, "category_id": 3, "keypoints": [0.0] * 51, "score": 1.0}], ["category_id 3"]),
    ],
    ids=["not-json", "not-list", "empty", "no-score", "no-keypoints", "no-image-id", "kpt-length", "nan",
         "unknown-images", "category"],
)
def test_load_results_rejects_bad_results(tmp_path, results, words):
    path = write(tmp_path / "bad_results.json", results)
    coco = load_coco(COCO_ANN)
    with pytest.raises(DataError) as e:
        load_results(path, coco)
    for w in [str(path), *words]:
        assert w in str(e.value)
    with pytest.raises(DataError, match="bad_results.json"):  # the same through the top-level function
        evaluate_keypoints(COCO_ANN, path)


def test_load_results_missing_file(tmp_path):
    with pytest.raises(DataError, match="res.json: results file does not exist"):
        load_results(tmp_path / "res.json", load_coco(COCO_ANN))
