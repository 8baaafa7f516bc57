"""Where person boxes come from (``detect/sources.py``), photos through the one ``Pipeline``, and predict's own faults
(issue 19): folders scanned for every format OpenCV reads, detection files matched by path, crowds in batches, long
file names, SIGTERM, OpenCV without HOG."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hostile import PEOPLE, assert_exit, assert_refused, run_cli, self_signal

from fasterpose.cli import main
from fasterpose.data.detections import listed_image_id
from fasterpose.detect import sources
from fasterpose.errors import DataError

pytest.importorskip("onnxruntime")


def _predict(model: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", str(source), "--onnx", str(model.with_suffix(".onnx")), "--out", str(out), *extra]


def test_box_sources_by_hand(tmp_path: Path) -> None:
    frame = np.zeros((120, 200, 3), np.uint8)
    np.testing.assert_array_equal(sources.FullImageBoxes()(frame, 0), [[0, 0, 200, 120, 1]])
    given = sources.GivenBoxes({3: [[1, 2, 30, 40]], "a.jpg": [[5, 6, 7, 8, 0.5]]})
    np.testing.assert_array_equal(given(frame, 3), [[1, 2, 30, 40, 1]])  # a missing score is 1
    np.testing.assert_array_equal(given(frame, "a.jpg"), [[5, 6, 7, 8, 0.5]])
    assert given(frame, 4).shape == (0, 5)
    seen = []
    source = sources.as_box_source(lambda image: seen.append(image.shape) or np.array([[1.0, 1, 10, 10, 0.9]]))
    assert isinstance(source, sources.DetectorBoxes) and source(frame, 7).tolist() == [[1, 1, 10, 10, 0.9]]
    assert seen == [frame.shape] and sources.as_box_source(given) is given
    with pytest.raises(DataError, match="shape"):
        sources.GivenBoxes({0: [[1, 2, 3]]})
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps({"images": [{"id": 5, "file_name": "a/img.jpg"}, {"id": 6, "file_name": "b/img.jpg"},
                                           {"id": 7, "file_name": "solo.jpg"}],
                                "detections": [{"image_id": 6, "category_id": 1, "bbox": [1, 2, 3, 4],
                                                "score": 0.9}]}))
    boxes = sources.DetectionFileBoxes(dets)
    assert boxes.image_id(tmp_path / "b" / "img.jpg") == 6 and boxes.image_id(tmp_path / "a" / "img.jpg") == 5
    assert boxes.image_id(tmp_path / "elsewhere" / "solo.jpg") == 7  # a unique base name still matches
    assert boxes.image_id(tmp_path / "other.jpg") is None
    np.testing.assert_allclose(boxes(frame, 6), [[1, 2, 3, 4, 0.9]], rtol=1e-6)
    with pytest.raises(DataError, match="2 images named img.jpg"):
        boxes.image_id(tmp_path / "c" / "img.jpg")  # which folder's? refused, not guessed
    assert listed_image_id({1: "img.jpg", 2: "x/img.jpg"}, "/data/x/img.jpg", "f") == 2  # the longest end wins


def test_a_photo_through_the_pipeline_is_the_predictor_on_its_boxes(tiny_model: Path) -> None:
    """``Pipeline(tracking=False)`` gives exactly the Predictor's keypoints for the source's valid boxes (boxes as
    given, not clipped; the box outside the image skipped and counted), without track ids."""
    from fasterpose import Pipeline, Predictor

    image = cv2.imread(str(PEOPLE / "basketball1.png"))
    boxes = np.array([[10.0, 20.0, 120.0, 200.0, 0.9], [-30.0, 40.0, 90.0, 150.0, 0.8], [5000, 10, 20, 20, 0.7]])
    predictor = Predictor(tiny_model.with_suffix(".onnx"))
    pipe = Pipeline(predictor, sources.GivenBoxes({"p": boxes}), tracking=False)
    people = pipe(image, key="p")
    expected = predictor(image, boxes[:2])
    assert len(people) == 2 and pipe.skipped_boxes == 1 and "track_id" not in people[0]
    for got, want in zip(people, expected):
        np.testing.assert_array_equal(got["keypoints"], want["keypoints"])
        np.testing.assert_array_equal(got["box"], want["box"])
    assert pipe.wants_detection()  # every photo asks its source


def test_a_crowd_goes_through_in_batches(tiny_model: Path) -> None:
    from fasterpose import Predictor

    image = cv2.imread(str(PEOPLE / "basketball1.png"))
    rng = np.random.default_rng(0)
    boxes = np.concatenate([rng.uniform(0, 200, (7, 2)), rng.uniform(40, 120, (7, 2))], axis=1)
    whole = Predictor(tiny_model.with_suffix(".onnx"), max_batch=64)
    small = Predictor(tiny_model.with_suffix(".onnx"), max_batch=3)
    sizes = []
    real = small.infer
    small.infer = lambda inputs: sizes.append(len(inputs)) or real(inputs)  # type: ignore[method-assign]
    got, want = small(image, boxes), whole(image, boxes)
    assert sizes == [6, 6, 2]  # 3 + 3 + 1 persons, each with its flipped crop
    np.testing.assert_allclose(np.stack([p["keypoints"] for p in got]), np.stack([p["keypoints"] for p in want]),
                               atol=1e-4)
    with pytest.raises(ValueError, match="max_batch"):
        Predictor(tiny_model.with_suffix(".onnx"), max_batch=0)


def test_max_batch_option(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_predict(tiny_model, PEOPLE / "messi5.jpg", tmp_path / "bad", "--full-image", "--max-batch", "0")) == 2
    assert_refused(capsys.readouterr().err, "--max-batch: must be an integer >= 1")
    assert main(_predict(tiny_model, PEOPLE / "messi5.jpg", tmp_path / "ok", "--full-image", "--max-batch", "1")) == 0


def test_folder_takes_every_format_opencv_reads_and_names_the_rest(tiny_model: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    image = cv2.imread(str(PEOPLE / "messi5.jpg"))
    cv2.imwrite(str(folder / "a.ppm"), image)  # a format the old suffix list missed
    cv2.imwrite(str(folder / "b.jpe"), image)
    shutil.copy(PEOPLE / "basketball1.png", folder / "no_suffix")  # found by its first bytes
    (folder / "notes.txt").write_text("not a photo")
    (folder / "sub").mkdir()
    out = tmp_path / "out"
    assert main(_predict(tiny_model, folder, out, "--full-image")) == 0
    printed = capsys.readouterr().out
    assert {r["file_name"] for r in json.loads((out / "results.json").read_text())} == {"a.ppm", "b.jpe", "no_suffix"}
    assert "2 entries of the folder skipped (not images OpenCV reads): notes.txt, sub/" in printed
    assert "and 3 drawn images" in printed


def test_detections_of_two_folders_with_one_name(tiny_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``a/messi5.jpg`` and ``b/messi5.jpg`` in one detection file: the image in folder ``b`` gets b's boxes; an
    image in a third folder is refused (its boxes would be a guess), exit 2."""
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
        shutil.copy(PEOPLE / "messi5.jpg", tmp_path / sub / "messi5.jpg")
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps({"images": [{"id": 1, "file_name": "a/messi5.jpg"}, {"id": 2, "file_name":
                                                                                   "b/messi5.jpg"}],
                                "detections": [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 200],
                                                "score": 0.9},
                                               {"image_id": 2, "category_id": 1, "bbox": [200, 30, 90, 180],
                                                "score": 0.8}]}))
    out = tmp_path / "out"
    assert main(_predict(tiny_model, tmp_path / "b", out, "--boxes", str(dets))) == 0
    [result] = json.loads((out / "results.json").read_text())
    assert result["image_id"] == 2 and result["bbox"] == [200, 30, 90, 180]
    capsys.readouterr()
    assert main(_predict(tiny_model, tmp_path / "c", tmp_path / "out_c", "--boxes", str(dets))) == 2
    assert_refused(capsys.readouterr().err, "2 images named messi5.jpg", "a/messi5.jpg", "relative")
    assert not (tmp_path / "out_c").exists()


def test_long_file_names_give_outputs_within_the_name_limit(tiny_model: Path, tmp_path: Path) -> None:
    """A 250-byte video name: ``<stem>_pose.mp4`` would be 259 bytes (ENAMETOOLONG, once reported as a full disk);
    it is cut to 255 with a hash that keeps two such names apart. Two images of one long stem likewise."""
    folder = tmp_path / "in"
    folder.mkdir()
    stem = "ä" * 60 + "v" * 130  # 250 bytes: multi-byte characters are never cut in half
    video = folder / f"{stem}.avi"
    shutil.copy(PEOPLE / "vtest_short.avi", video)
    out = tmp_path / "out"
    assert main(_predict(tiny_model, video, out, "--full-image", "--max-frames", "2")) == 0
    [drawn] = [p for p in out.iterdir() if p.suffix == ".mp4"]
    assert len(drawn.name.encode()) == 255 and drawn.name.startswith(stem[:60]) and drawn.name.endswith(".mp4")
    photos = tmp_path / "photos"
    photos.mkdir()
    image = cv2.imread(str(PEOPLE / "messi5.jpg"))
    for suffix in (".png", ".jpg"):
        cv2.imwrite(str(photos / f"{stem}{suffix}"), image)
    out2 = tmp_path / "out2"
    assert main(_predict(tiny_model, photos, out2, "--full-image")) == 0
    names = sorted(p.name for p in out2.iterdir() if p.name.endswith(".jpg"))
    assert len(names) == 2 and all(len(n.encode()) <= 255 for n in names) and names[0] != names[1]


def test_sigterm_on_a_folder_keeps_the_images_done(tiny_model: Path, tmp_path: Path) -> None:
    """SIGTERM (a scheduler's stop) while the third image is predicted: the two images done are kept and marked
    incomplete, the summary names only the drawings written (not the marker file), and the exit status says that a
    signal stopped the command (143)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("messi5.jpg", "basketball1.png", "basketball2.png"):
        shutil.copy(PEOPLE / name, photos / name)
    out = tmp_path / "out"
    prelude = self_signal("fasterpose.commands.predict:_Run.process", 3, "SIGTERM")
    proc = run_cli(_predict(tiny_model, photos, out, "--full-image"), prelude=prelude)
    assert_exit(proc, 143)
    assert "interrupted: kept the 2 images" in proc.stdout and "and 2 drawn images" in proc.stdout
    assert json.loads((out / "results_incomplete.json").read_text())["images"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["basketball1.jpg", "basketball2.jpg", "keypoint_set.json",
                                                     "results.json", "results_incomplete.json"]


def test_without_hog_a_command_says_which_boxes_to_give(tiny_model: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """OpenCV 5 has no HOG: with no box source named, predict says what to give instead; exit 2, nothing written."""
    monkeypatch.setattr("fasterpose.detect.hog.hog_available", lambda: False)
    for extra in ((), ("--hog",)):
        out = tmp_path / f"out{len(extra)}"
        assert main(_predict(tiny_model, PEOPLE / "messi5.jpg", out, *extra)) == 2
        assert_refused(capsys.readouterr().err, "no HOG people detector", "--detector yolox_tiny_humanart",
                       "--detector FILE.onnx", "--boxes", "--full-image")
        assert not out.exists()
    assert isinstance(sources.open_box_source(full_image=True), sources.FullImageBoxes)  # a named source needs no HOG


def test_list_images_names_what_it_skips(tmp_path: Path) -> None:
    """The one folder scan (predict, export --calib, distill): images by suffix or content; a FIFO, a subfolder and
    a text file are skipped and named (a FIFO is never opened: it would block); a folder without images is refused
    naming what it holds."""
    import os

    from fasterpose.data.images import list_images

    shutil.copy(PEOPLE / "messi5.jpg", tmp_path / "b.JPG")
    shutil.copy(PEOPLE / "basketball1.png", tmp_path / "a.data")  # a PNG under another name
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.jpg").mkdir()
    files, skipped = list_images(tmp_path)
    assert [f.name for f in files] == ["a.data", "b.JPG"] and skipped == ["notes.txt", "pipe", "sub.jpg/"]
    empty = tmp_path / "sub.jpg"
    (empty / "readme.md").write_text("x")
    with pytest.raises(DataError, match="contains no images OpenCV reads.*readme.md"):
        list_images(empty)
