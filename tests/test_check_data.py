"""``fasterpose check-data`` on the real COCO samples and on a damaged copy with planted faults: every fault is found
with the ids to look at, warnings do not fail, errors exit with status 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fasterpose.cli import main
from fasterpose.data.check import check_dataset

SAMPLES = Path(__file__).parent / "data" / "coco_val2017_samples"


def test_the_real_samples_are_clean(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((SAMPLES / "person_keypoints.json").read_text())
    report = check_dataset(SAMPLES / "person_keypoints.json")
    assert report.ok and report.problems == []
    assert report.keypoint_set.name == "coco17" and report.num_images == 4 and report.images_decoded == 4
    # Independent count: labelled keypoints of non-crowd persons, straight from the json.
    anns = [a for a in data["annotations"] if not a.get("iscrowd")]
    labelled = [sum(1 for a in anns if a["keypoints"][3 * j + 2] > 0) for j in range(17)]
    visible = [sum(1 for a in anns if a["keypoints"][3 * j + 2] == 2) for j in range(17)]
    assert report.labelled == labelled and report.visible == visible
    assert report.num_persons == sum(1 for a in anns if any(a["keypoints"][2::3]))
    assert main(["check-data", str(SAMPLES / "person_keypoints.json")]) == 0
    out = capsys.readouterr().out
    assert "left_eye<->right_eye" in out and "0 errors, 0 warnings" in out


def test_planted_faults_are_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "images"
    shutil.copytree(SAMPLES, images, ignore=shutil.ignore_patterns("*.json"))
    data = json.loads((SAMPLES / "person_keypoints.json").read_text())
    anns = [a for a in data["annotations"] if not a.get("iscrowd") and any(a["keypoints"][2::3])]
    a0, a1, a2, a3, a4 = anns[:5]
    a0["bbox"][2] = 0  # empty box
    img_of = {i["id"]: i for i in data["images"]}
    a1["bbox"] = [img_of[a1["image_id"]]["width"] + 10, 5, 20, 20]  # box outside its image
    j = next(j for j in range(17) if a2["keypoints"][3 * j + 2] > 0)
    a2["keypoints"][3 * j] = -500.0  # a labelled keypoint far outside image and box
    a3["id"] = a4["id"]  # duplicate annotation id
    dangling = dict(anns[5], id=999001, image_id=424242)  # refers to an image that is not listed
    short = dict(anns[6], id=999002, keypoints=anns[6]["keypoints"][:-3])  # 16 keypoints
    data["annotations"] += [dangling, short]
    data["images"].append(dict(data["images"][0], id=777, file_name="missing.jpg"))
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    data["images"].append(dict(data["images"][0], id=778, file_name="broken.jpg"))
    ann = tmp_path / "damaged.json"
    ann.write_text(json.dumps(data))

    report = check_dataset(ann, images)
    found = {p.code: p for p in report.problems}
    assert found["empty-box"].ids == [a0["id"]] and found["empty-box"].level == "warning"
    assert found["box-outside-image"].ids == [a1["id"]]
    assert a2["id"] in found["keypoint-outside-image"].ids and a2["id"] in found["keypoint-outside-box"].ids
    assert found["duplicate-ann-id"].ids == [a4["id"]] and found["duplicate-ann-id"].level == "error"
    assert found["unknown-image"].ids == [999001]
    assert found["bad-keypoints"].ids == [999002] and "51 finite numbers" in found["bad-keypoints"].message
    assert found["missing-image"].ids == [777]
    assert found["unreadable-image"].ids == [778]
    assert not report.ok

    assert main(["check-data", str(ann), "--images", str(images)]) == 2
    out = capsys.readouterr().out
    assert "ERROR [duplicate-ann-id]" in out and "WARNING [empty-box]" in out and "fix the errors" in out
    assert main(["check-data", str(ann), "--images", str(images), "--json"]) == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False and {p["code"] for p in payload["problems"]} == set(found)


def test_warnings_alone_pass_and_unusable_files_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((SAMPLES / "person_keypoints.json").read_text())
    cat = next(c for c in data["categories"] if c.get("keypoints"))
    cat["keypoints"][1] = "eye_of_the_left"  # its partner is gone: right_eye stays unpaired
    data["annotations"][0]["bbox"][3] = -1
    ann = tmp_path / "warn.json"
    ann.write_text(json.dumps(data))
    assert main(["check-data", str(ann), "--images", str(SAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "WARNING [unpaired-side]" in out and "right_eye" in out and "training would work" in out

    del cat["keypoints"]
    ann.write_text(json.dumps(data))
    assert main(["check-data", str(ann), "--no-images"]) == 2
    assert "no category declares 'keypoints'" in capsys.readouterr().out
    ann.write_text("{not json")
    assert main(["check-data", str(ann)]) == 2
    assert "not valid JSON (Expecting property name" in capsys.readouterr().err
