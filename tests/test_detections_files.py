"""Plain COCO detection lists mapped to image files by the digits in their names: right for COCO's naming, and
never a silent wrong mapping for files not named by image id."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fasterpose.data.detections import ids_from_file_names
from fasterpose.errors import DataError


def _files(*names: str) -> list[Path]:
    return [Path("/imgs") / n for n in names]


def test_coco_names_map_quietly(caplog) -> None:
    files = _files("000000000785.jpg", "000000397133.jpg")
    with caplog.at_level(logging.WARNING):
        # a detection list for all of val2017 and a folder holding two of its images: a subset, fine
        assert ids_from_file_names(files, {785, 397133, 872, 1000}, "dets.json") == {
            "000000000785.jpg": 785, "000000397133.jpg": 397133}
    assert not caplog.records


def test_shifted_ids_are_refused() -> None:
    # fasterpose synth names image id 2 "000001.jpg": every file fits only with the ids shifted by one
    files = _files(*(f"{i:06d}.jpg" for i in range(1, 6)))
    with pytest.raises(DataError, match=r"shifted by \+1 \(000001.jpg would be id 2, not 1\).*\"images\""):
        ids_from_file_names(files, {2, 3, 4, 5, 6}, "dets.json")
    with pytest.raises(DataError, match=r"shifted by -1"):
        ids_from_file_names(files, {0, 1, 2, 3, 4}, "dets.json")


def test_same_id_twice_is_refused() -> None:
    with pytest.raises(DataError, match=r"cam_7.jpg and frame007.png both read as image id 7"):
        ids_from_file_names(_files("cam_7.jpg", "frame007.png", "x9.jpg"), {7, 9}, "dets.json")
    # a clash on an id without boxes harms nothing
    assert ids_from_file_names(_files("a_3.jpg", "b_3.jpg", "c_9.jpg"), {9}, "d.json") == {"c_9.jpg": 9}


def test_partial_match_is_reported(caplog) -> None:
    files = _files("img_1.jpg", "img_2.jpg", "img_3.jpg", "holiday.jpg")
    with caplog.at_level(logging.WARNING):
        assert ids_from_file_names(files, {2, 3, 40, 41}, "dets.json") == {"img_2.jpg": 2, "img_3.jpg": 3}
    text = caplog.text
    assert "2 of 4 images matched, 2 without an id (img_1.jpg, holiday.jpg), 2 ids of dets.json without a file " \
           "(40, 41)" in text and '"file_name"' in text


def test_predict_refuses_synth_names_with_plain_list(tiny_model: Path, tmp_path: Path, capsys) -> None:
    """End to end: predict on a folder named like `fasterpose synth`'s with a plain results list stops before any
    work (exit 2, one message) and the same boxes in the images wrapper are used as given."""
    import cv2
    import numpy as np

    from fasterpose.cli import main

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i + 1:06d}.jpg"), np.full((64, 48, 3), 40 * i, np.uint8))
    dets = [{"image_id": i + 2, "category_id": 1, "bbox": [4, 4, 30 + i, 40], "score": 0.9} for i in range(3)]
    plain = tmp_path / "dets.json"
    plain.write_text(json.dumps(dets))
    onnx = str(tiny_model.with_suffix(".onnx"))
    assert main(["predict", str(folder), "--onnx", onnx, "--boxes", str(plain), "--no-draw",
                 "--out", str(tmp_path / "out")]) == 2
    assert "shifted by +1" in capsys.readouterr().err and not (tmp_path / "out").exists()
    wrapper = tmp_path / "wrapped.json"
    wrapper.write_text(json.dumps({"images": [{"id": i + 2, "file_name": f"{i + 1:06d}.jpg"} for i in range(3)],
                                   "detections": dets}))
    assert main(["predict", str(folder), "--onnx", onnx, "--boxes", str(wrapper), "--no-draw",
                 "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted((r["file_name"], r["image_id"], r["bbox"][2]) for r in results) == [
        ("000001.jpg", 2, 30.0), ("000002.jpg", 3, 31.0), ("000003.jpg", 4, 32.0)]
