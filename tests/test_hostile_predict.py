"""Hostile inputs to ``fasterpose predict`` (issue 12): the user's photos are never replaced, bad media and values
are named, interrupted or killed runs keep complete files only, and two runs never mix their outputs.

Each case checks the exit status, a message naming the file/value and what to do, no traceback, and the output
folder exactly as before (hashed) or holding only complete files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from hostile import PEOPLE, assert_exit, assert_refused, damaged_checkpoint, digest, read_only, run_cli, self_signal

from fasterpose.cli import main

pytest.importorskip("onnxruntime")


def _predict(model: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", str(source), "--onnx", str(model.with_suffix(".onnx")), "--full-image", "--out", str(out),
            *extra]


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """A folder of three real photos (a copy: the tests may damage it)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("messi5.jpg", "basketball1.png", "basketball2.png"):
        shutil.copy(PEOPLE / name, folder / name)
    return folder


# --- the inputs are never replaced ---------------------------------------------------------------------------------

def test_refuses_to_overwrite_the_input_photo(tiny_model: Path, photos: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    before = digest(photos)
    monkeypatch.chdir(photos)  # `cd photos && fasterpose predict messi5.jpg --full-image --out .`
    assert main(_predict(tiny_model, Path("messi5.jpg"), Path("."))) == 2
    assert_refused(capsys.readouterr().err, "would overwrite the input file", "messi5.jpg", "another --out")
    assert digest(photos) == before
    assert main(_predict(tiny_model, photos, photos)) == 2  # a folder written into itself
    assert_refused(capsys.readouterr().err, "would overwrite the input file")
    assert digest(photos) == before


def test_same_stem_different_formats_all_kept(tiny_model: Path, tmp_path: Path) -> None:
    """``photo.jpg``, ``photo.png`` and ``photo.JPG``: three drawings, none replacing another."""
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    image = cv2.imread(str(PEOPLE / "messi5.jpg"))
    cv2.imwrite(str(photos / "photo.jpg"), image)
    cv2.imwrite(str(photos / "photo.png"), image[:, ::-1])
    cv2.imwrite(str(photos / "photo.JPG"), image[::-1])
    out = tmp_path / "out"
    assert main(_predict(tiny_model, photos, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["keypoint_set.json", "photo_jpg.jpg", "photo_jpg_2.jpg",
                                                     "photo_png.jpg", "results.json"]
    drawn = [cv2.imread(str(out / n)) for n in ("photo_jpg.jpg", "photo_jpg_2.jpg", "photo_png.jpg")]
    assert all(float(abs(a.astype(int) - b).mean()) > 1 for a, b in [(drawn[0], drawn[1]), (drawn[0], drawn[2])])


# --- outputs that cannot be written: refused before any work ----------------------------------------------------

@pytest.mark.parametrize("kind", ["file", "device", "under_a_file"])
def test_out_that_is_not_a_folder(tiny_model: Path, tmp_path: Path, kind: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    out = {"file": mine, "device": Path("/dev/null"), "under_a_file": mine / "out"}[kind]
    assert main(_predict(tiny_model, PEOPLE / "messi5.jpg", out)) == 2
    assert_refused(capsys.readouterr().err, "is a file, not a folder", str(out if kind != "under_a_file" else mine))
    assert mine.read_text() == "mine"


def test_read_only_out_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    """A real read-only folder (chmod for a user; a read-only mount for root, who ignores permission bits)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine")
    before = digest(folder)
    with read_only(folder) as wrapper:
        proc = run_cli(_predict(tiny_model, PEOPLE / "messi5.jpg", folder / "out"), wrapper=wrapper)
    assert_exit(proc, 2, "not writable", str(folder), "choose another path")
    assert digest(folder) == before


def test_into_another_runs_folder_is_refused(tiny_model: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(_predict(tiny_model, PEOPLE / "messi5.jpg", out)) == 0
    before = digest(out)
    assert main(_predict(tiny_model, PEOPLE / "astronaut.png", out)) == 2
    assert_refused(capsys.readouterr().err, "holds the results of another run", "messi5.jpg", "new folder")
    assert digest(out) == before
    assert main(_predict(tiny_model, PEOPLE / "messi5.jpg", out)) == 0  # the same inputs again: replaced in place


@pytest.mark.parametrize("option, value", [
    ("--det-thr", "nan"), ("--det-thr", "-1"), ("--kpt-thr", "5"), ("--kpt-thr", "nan"), ("--threads", "0"),
    ("--threads", "100000"), ("--max-frames", "0"), ("--det-every", "0"), ("--redetect-thr", "nan"),
    ("--redetect-thr", "-1"),
])
def test_bad_numbers_are_refused_before_any_work(tiny_model: Path, tmp_path: Path, option: str, value: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(_predict(tiny_model, PEOPLE / "messi5.jpg", out, option, value)) == 2
    assert_refused(capsys.readouterr().err, option, value)
    assert not out.exists()


def test_input_that_is_a_fifo_is_refused_not_waited_on(tiny_model: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)  # reading it would block for ever
    assert main(_predict(tiny_model, fifo, tmp_path / "out")) == 2
    assert_refused(capsys.readouterr().err, "photo.jpg is not a regular file")


@pytest.mark.parametrize("what", ["boxes_dir", "boxes_device", "model_dir", "model_text", "detector_dir",
                                  "detector_text", "detector_is_the_pose_model"])
def test_inputs_that_are_not_files(tiny_model: Path, tmp_path: Path, what: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("this is not an ONNX model")
    args = {"boxes_dir": ["--boxes", str(tmp_path)], "boxes_device": ["--boxes", "/dev/null"],
            "detector_dir": ["--detector", str(tmp_path)], "detector_text": ["--detector", str(fake)],
            "detector_is_the_pose_model": ["--detector", str(tiny_model.with_suffix(".onnx"))]}.get(what, [])
    model = {"model_dir": tmp_path, "model_text": fake}.get(what, tiny_model.with_suffix(".onnx"))
    out = tmp_path / "out"
    cmd = ["predict", str(PEOPLE / "messi5.jpg"), "--onnx", str(model), "--out", str(out), *args]
    assert main(cmd) == 2
    expected = {"boxes_dir": "is a directory", "boxes_device": "not a regular file", "model_dir": "is a directory",
                "model_text": "model.onnx", "detector_dir": "is a directory", "detector_text": "model.onnx",
                "detector_is_the_pose_model": "--detector-layout"}[what]
    assert_refused(capsys.readouterr().err, expected)
    assert not out.exists()


@pytest.mark.parametrize("entry, message", [
    ('{"image_id": 1, "category_id": 1, "bbox": [NaN, 0, 10, 10], "score": 0.9}', "bbox must be 4 finite numbers"),
    ('{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1e308, 1e308], "score": 0.9}', "bbox must be 4 finite"),
    ('{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 1' + "0" * 400 + "}", "score must be a"),
    ('{"image_id": 1, "category_id": 1, "bbox": "0 0 10 10", "score": 0.9}', "bbox"),
    ('{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9', "not valid JSON"),
])
def test_malformed_detection_files(tiny_model: Path, tmp_path: Path, entry: str, message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Boxes that would be NaN, infinite in float32 (then reported as 'outside the image') or a score too large
    for a float (a traceback before) are named with the entry."""
    dets = tmp_path / "dets.json"
    dets.write_text(f"[{entry}]")
    image = tmp_path / "1.jpg"  # image id 1 by the digits of its name
    shutil.copy(PEOPLE / "messi5.jpg", image)
    out = tmp_path / "out"
    assert main(["predict", str(image), "--onnx", str(tiny_model.with_suffix(".onnx")), "--boxes", str(dets),
                 "--out", str(out)]) == 2
    assert_refused(capsys.readouterr().err, "dets.json", message)
    assert not out.exists()


# --- damaged media and models: warned about or refused, never silently wrong ---------------------------------------

@pytest.mark.parametrize("damage", ["zero_bytes", "text_named_jpg", "truncated_jpeg"])
def test_one_bad_image_in_a_folder_keeps_the_others(tiny_model: Path, photos: Path, tmp_path: Path, damage: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = photos / "bad.jpg"
    if damage == "zero_bytes":
        bad.write_bytes(b"")
    elif damage == "text_named_jpg":
        bad.write_text("holiday notes, not a photo")
    else:
        data = (PEOPLE / "messi5.jpg").read_bytes()
        bad.write_bytes(data[: int(len(data) * 0.4)])  # a download cut short: the decoder fills the rest with grey
    out = tmp_path / "out"
    assert main(_predict(tiny_model, photos, out)) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    good = {"messi5.jpg", "basketball1.png", "basketball2.png"}
    if damage == "truncated_jpeg":
        assert "suspect input" in printed and "bad.jpg" in printed  # used, but the user is told
        assert {r["file_name"] for r in results} == good | {"bad.jpg"}
    else:
        assert "could not be read and were skipped: bad.jpg" in printed
        assert {r["file_name"] for r in results} == good
        assert sorted(p.name for p in out.iterdir()) == ["basketball1.jpg", "basketball2.jpg", "keypoint_set.json",
                                                         "messi5.jpg", "results.json"]


@pytest.mark.parametrize("damage", ["zero_bytes", "text_named_mp4", "header_only"])
def test_video_without_frames_is_refused(tiny_model: Path, tmp_path: Path, damage: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / ("clip.mp4" if damage == "text_named_mp4" else "clip.avi")
    if damage == "zero_bytes":
        video.write_bytes(b"")
    elif damage == "text_named_mp4":
        video.write_text("not a video")
    else:
        video.write_bytes((PEOPLE / "vtest_short.avi").read_bytes()[:4096])  # the header, no whole frame
    out = tmp_path / "out"
    assert main(_predict(tiny_model, video, out)) == 2
    assert_refused(capsys.readouterr().err, video.name)
    assert not out.exists()


def test_warns_about_a_truncated_video(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (PEOPLE / "vtest_short.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 3])  # the header still announces 20 frames; 7 decode
    assert main(_predict(tiny_model, cut, tmp_path / "out", "--no-draw")) == 0
    printed = capsys.readouterr().out
    assert "suspect input" in printed and "cut.avi (7 of 20 frames)" in printed


def test_warns_when_an_image_detection_file_is_used_on_a_video(tiny_model: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(PEOPLE / "vtest_short.avi"), "--onnx", str(tiny_model.with_suffix(".onnx")),
                 "--boxes", str(PEOPLE / "person_detections.json"), "--out", str(out), "--no-draw"]) == 0
    assert "person_detections.json is an image detection file" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["checkpoint", "onnx"])
def test_refuses_a_model_with_a_nan_weight(tiny_model: Path, tmp_path: Path, backend: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A damaged checkpoint is refused when it is loaded; its ONNX export (which cannot be checked that way) when it
    outputs non-finite keypoints. Either way before any result is written."""
    torch = pytest.importorskip("torch")
    from fasterpose import create_model
    from fasterpose.checkpoint import save_checkpoint
    from fasterpose.spec import PoseSpec

    model = create_model("fasterpose_shufflev2")
    with torch.no_grad():
        model.head.final.bias[0] = float("nan")  # one damaged weight
    spec = PoseSpec(model_name="fasterpose_shufflev2", input_size=(128, 96), codec={"input_size": [128, 96]})
    ckpt = tmp_path / "nan.pth"
    save_checkpoint(ckpt, {"spec": spec, "model": model.state_dict(), "config": None})
    model_args = ["--checkpoint", str(ckpt)]
    if backend == "onnx":  # the same damage in an exported model: one weight of the last layer set to NaN
        import onnx
        from onnx import numpy_helper

        proto = onnx.load(str(tiny_model.with_suffix(".onnx")))
        last = proto.graph.initializer[-1]
        values = numpy_helper.to_array(last).copy()
        values.flat[0] = float("nan")
        last.CopyFrom(numpy_helper.from_array(values, last.name))
        onnx.save(proto, str(tmp_path / "nan.onnx"))
        model_args = ["--onnx", str(tmp_path / "nan.onnx")]
    out = tmp_path / "out"
    assert main(["predict", str(PEOPLE / "messi5.jpg"), *model_args, "--full-image", "--out", str(out)]) == 2
    assert_refused(capsys.readouterr().err, "non-finite", "another checkpoint" if backend == "checkpoint"
                   else "re-export")
    assert not out.exists()


@pytest.mark.parametrize("damage", ["garbage", "missing", "truncated"])
def test_damaged_checkpoints(tiny_model: Path, tmp_path: Path, damage: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = damaged_checkpoint(tiny_model, damage, tmp_path)
    out = tmp_path / "out"
    assert main(["predict", str(PEOPLE / "messi5.jpg"), "--checkpoint", str(ckpt), "--full-image",
                 "--out", str(out)]) == 2
    assert_refused(capsys.readouterr().err, "model.pth")
    assert not out.exists()


# --- interrupted, killed, full disk, two at once: only complete files ------------------------------------------------

def test_ctrl_c_on_a_video_keeps_the_frames_before_it(tiny_model: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from fasterpose.commands import predict

    real = predict._Run.process

    def interrupt_at_frame_5(self, image, image_id, file_name, frame=None):  # noqa: ANN001, ANN202
        if frame == 5:
            raise KeyboardInterrupt
        return real(self, image, image_id, file_name, frame=frame)

    monkeypatch.setattr(predict._Run, "process", interrupt_at_frame_5)
    out = tmp_path / "out"
    assert main(_predict(tiny_model, PEOPLE / "vtest_short.avi", out)) == 0
    results = json.loads((out / "results.json").read_text())
    assert sorted({r["frame"] for r in results}) == [0, 1, 2, 3, 4]
    assert json.loads((out / "results_incomplete.json").read_text())["frames"] == 5
    assert (out / "vtest_short_pose.mp4").stat().st_size > 0
    assert "interrupted" in capsys.readouterr().out
    monkeypatch.setattr(predict._Run, "process", real)  # a complete run into the same folder clears the marker
    assert main(_predict(tiny_model, PEOPLE / "vtest_short.avi", out, "--max-frames", "3")) == 0
    assert not (out / "results_incomplete.json").exists()


def test_sigint_on_a_folder_keeps_the_images_done(tiny_model: Path, photos: Path, tmp_path: Path) -> None:
    """A real SIGINT (Ctrl-C) while the third image is predicted: the first two are kept, marked incomplete; the next
    run completes the folder and clears the mark."""
    out = tmp_path / "out"
    proc = run_cli(_predict(tiny_model, photos, out),
                   prelude=self_signal("fasterpose.commands.predict:_Run.process", 3, "SIGINT"))
    assert_exit(proc, 0)
    assert "interrupted: kept the 2 images" in proc.stdout
    assert json.loads((out / "results_incomplete.json").read_text())["images"] == 2
    assert {r["file_name"] for r in json.loads((out / "results.json").read_text())} == {"basketball1.png",
                                                                                       "basketball2.png"}
    assert sorted(p.name for p in out.iterdir()) == ["basketball1.jpg", "basketball2.jpg", "keypoint_set.json",
                                                     "results.json", "results_incomplete.json"]
    assert main(_predict(tiny_model, photos, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["basketball1.jpg", "basketball2.jpg", "keypoint_set.json",
                                                     "messi5.jpg", "results.json"]


def test_sigint_on_a_video_keeps_the_frames_before_it(tiny_model: Path, tmp_path: Path) -> None:
    """A real SIGINT at the fourth frame: exit 0, results and a readable drawn video of the three frames before."""
    import cv2

    out = tmp_path / "out"
    proc = run_cli(_predict(tiny_model, PEOPLE / "vtest_short.avi", out),
                   prelude=self_signal("fasterpose.commands.predict:_Run.process", 4, "SIGINT"))
    assert_exit(proc, 0)
    assert "interrupted: kept the 3 frames" in proc.stdout
    assert sorted({r["frame"] for r in json.loads((out / "results.json").read_text())}) == [0, 1, 2]
    video = cv2.VideoCapture(str(out / "vtest_short_pose.mp4"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    video.release()


@pytest.mark.parametrize("source", ["folder", "video"])
def test_sigkill_leaves_the_folder_as_before_and_the_next_run_cleans_up(tiny_model: Path, photos: Path,
                                                                        tmp_path: Path, source: str) -> None:
    """SIGKILL (no chance to clean up) half-way through: the user's files in --out are untouched, nothing visible
    is added, and the next run removes the hidden staging folder and lock and writes the complete outputs."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's notes")
    before = digest(out)
    src = photos if source == "folder" else PEOPLE / "vtest_short.avi"
    proc = run_cli(_predict(tiny_model, src, out),
                   prelude=self_signal("fasterpose.commands.predict:_Run.process", 3, "SIGKILL"))
    assert proc.returncode == -9
    assert {k: v for k, v in digest(out).items() if not k.startswith(".")} == before
    assert main(_predict(tiny_model, src, out, "--max-frames", "4")) == 0
    names = sorted(p.name for p in out.iterdir())
    drawn = ["basketball1.jpg", "basketball2.jpg", "messi5.jpg"] if source == "folder" else ["vtest_short_pose.mp4"]
    assert names == sorted(["keypoint_set.json", "mine.txt", "results.json", *drawn])  # no .predict-* staging left
    assert (out / "mine.txt").read_text() == "the user's notes"


def test_disk_full_while_drawing_leaves_the_folder_as_before(tiny_model: Path, photos: Path, tmp_path: Path) -> None:
    """A file-size limit (``ulimit -f``: EFBIG, the errno path of a full disk) below the size of a drawn photo."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's notes")
    before = digest(out)
    proc = run_cli(_predict(tiny_model, photos, out), file_size_limit=20_000)
    assert_exit(proc, 2, "could not write", "basketball1.png", "free some space")
    assert digest(out) == before  # no drawing, no results.json, no staging folder


def test_disk_full_while_drawing_a_video(tiny_model: Path, tmp_path: Path) -> None:
    """OpenCV's video writer only logs the frames it cannot write (the run used to end with exit 0 and a video
    without its index): the finished file is read back, and the run fails with a message, leaving nothing."""
    out = tmp_path / "out"
    proc = run_cli(_predict(tiny_model, PEOPLE / "vtest_short.avi", out), file_size_limit=200_000)
    assert_exit(proc, 2, "could not write the drawn video vtest_short_pose.mp4", "--no-draw")
    assert not out.exists()


def test_two_runs_into_one_folder_at_once(tiny_model: Path, photos: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The first run holds --out while it works; a second one started meanwhile is refused, the first completes."""
    import subprocess
    import sys

    out, flag, go = tmp_path / "out", tmp_path / "first_is_working", tmp_path / "go_on"
    wait = (f"open({str(flag)!r}, 'w').close()\n"  # at its second image, the first run waits for the test
            "        import time\n"
            f"        while not os.path.exists({str(go)!r}) and time.monotonic() - {time.monotonic()} < 120:\n"
            "            time.sleep(0.05)")
    prelude = self_signal("fasterpose.commands.predict:_Run.process", 2, "SIGCONT", before=wait)
    code = f"{prelude}\nimport sys\nfrom fasterpose.cli import main\nsys.exit(main(sys.argv[1:]))"
    first = subprocess.Popen([sys.executable, "-c", code, *_predict(tiny_model, photos, out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert flag.exists(), first.communicate()[1][-2000:]
        assert main(_predict(tiny_model, PEOPLE / "astronaut.png", out)) == 2  # the second run, in this process
        assert_refused(capsys.readouterr().err, "being written by another fasterpose run",
                       "another folder")
    finally:
        go.touch()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr[-2000:]
    assert {r["file_name"] for r in json.loads((out / "results.json").read_text())} == {
        "messi5.jpg", "basketball1.png", "basketball2.png"}
    assert sorted(os.listdir(out)) == ["basketball1.jpg", "basketball2.jpg", "keypoint_set.json", "messi5.jpg",
                                       "results.json"]
