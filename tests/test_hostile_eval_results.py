"""Hostile inputs to ``fasterpose eval-results`` (issue 12): malformed annotation and results files, non-files and
bad thresholds are named errors (file, entry, field), never a traceback or a silently wrong score. It writes
nothing, so there is no output folder to compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile import COCO_ANN, assert_refused

from fasterpose.cli import main


def _one_result() -> dict:
    gt = json.loads(COCO_ANN.read_text())
    a = next(a for a in gt["annotations"] if a["num_keypoints"] > 0)
    return {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9,
            "bbox": a["bbox"]}


@pytest.mark.parametrize("flag, value", [("--nms-thr", "nan"), ("--nms-thr", "-1"), ("--kpt-thr", "2"),
                                         ("--kpt-thr", "nan")])
def test_bad_thresholds(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-results", str(COCO_ANN), str(COCO_ANN), flag, value]) == 2
    assert_refused(capsys.readouterr().err, flag, value)


@pytest.mark.parametrize("case, message", [
    ("bbox_text", "'bbox' is"), ("bbox_null", "'bbox' is"), ("huge_score", "digits"), ("nan_keypoint", "finite"),
    ("deep", "nested too deeply"), ("empty_list", "no results"), ("a_dict", "expected a JSON list"),
    ("binary", "not a UTF-8 text file"), ("numbers", "entry [0] is a int"), ("short_keypoints", "has length 3"),
    ("truncated", "not valid JSON"), ("empty_file", "not valid JSON"),
])
def test_malformed_results(tmp_path: Path, case: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = _one_result()
    path = tmp_path / "results.json"
    if case == "bbox_text":
        r["bbox"] = ["a", 1, 2, 3]
    elif case == "bbox_null":
        r["bbox"] = None
    elif case == "nan_keypoint":
        r["keypoints"][0] = float("nan")
    elif case == "short_keypoints":
        r["keypoints"] = [1, 2, 3]
    text = {
        "huge_score": json.dumps([r]).replace('"score": 0.9', '"score": 1' + "0" * 400),
        "deep": "[" * 100_000 + "]" * 100_000, "empty_list": "[]", "a_dict": "{}", "numbers": "[1, 2, 3]",
        "truncated": json.dumps([r] * 3)[:150], "empty_file": "",
    }.get(case, json.dumps([r]))
    if case == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
    else:
        path.write_text(text)
    assert main(["eval-results", str(COCO_ANN), str(path)]) == 2
    assert_refused(capsys.readouterr().err, message, str(path))


@pytest.mark.parametrize("which", ["annotations", "results"])
@pytest.mark.parametrize("what, message", [("missing", "does not exist"), ("directory", "is a directory"),
                                           ("device", "not a regular file")])
def test_files_that_are_not_files(tmp_path: Path, which: str, what: str, message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"missing": tmp_path / "nope.json", "directory": tmp_path, "device": Path("/dev/null")}[what]
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_one_result()]))
    args = [str(bad), str(results)] if which == "annotations" else [str(COCO_ANN), str(bad)]
    assert main(["eval-results", *args]) == 2
    assert_refused(capsys.readouterr().err, str(bad), message, "annotation file" if which == "annotations"
                   else "results file")


def test_nan_ground_truth_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = json.loads(COCO_ANN.read_text())
    gt["annotations"][0]["keypoints"][0] = float("nan")
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt))  # Python writes the NaN token, which json.load reads back
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_one_result()]))
    assert main(["eval-results", str(ann), str(results)]) == 2
    assert_refused(capsys.readouterr().err, "not a finite number", "gt.json")


def test_results_and_annotations_swapped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_one_result()]))
    assert main(["eval-results", str(results), str(COCO_ANN)]) == 2
    assert_refused(capsys.readouterr().err, "results.json")
