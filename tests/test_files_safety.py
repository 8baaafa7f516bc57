"""Nothing lost: a user's files and runs are never replaced by fasterpose's outputs (issue 12, first part).

Each case runs the command through ``main([...])`` and checks: exit status 2, a message naming the path and what to
do, no traceback, and the user's files exactly as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from fasterpose.cli import main
from fasterpose.errors import DataError
from fasterpose.io_utils import atomic_path, atomic_write_json, writable_target

PEOPLE = Path(__file__).parent / "data" / "people"


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the atomic writer ---------------------------------------------------------------------------------------------

def test_atomic_writer_writes_through_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_json(link, {"a": 1})
    assert link.is_symlink() and real.read_text() == '{"a": 1}'


@pytest.mark.parametrize("target", ["/dev/null", "DIR"])
def test_atomic_writer_refuses_devices_and_directories(tmp_path: Path, target: str) -> None:
    path = tmp_path if target == "DIR" else Path(target)
    if not path.exists():
        pytest.skip(f"{path} does not exist here")
    before = path.stat()
    with pytest.raises(DataError, match="not a regular file|is a directory"):
        atomic_write_json(path, {"a": 1})
    after = path.stat()
    assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)
    assert writable_target(tmp_path / "new.json") == tmp_path / "new.json"


def test_atomic_writer_removes_leftovers_of_killed_writers(tmp_path: Path) -> None:
    """A temporary left by a dead process (its pid is in the name) goes on the next write; a live one stays."""
    dead = 2 ** 22 + 12345  # above the default pid_max of 4194304: no such process
    stale = tmp_path / f".last.tmp.{dead}.abcd.pt"
    stale.write_bytes(b"x" * 100)
    live = tmp_path / f".last.tmp.{os.getpid()}.efgh.pt"  # ours: in use
    live.write_bytes(b"y")
    with atomic_path(tmp_path / "last.pt") as tmp:
        tmp.write_bytes(b"new")
        assert str(os.getpid()) in tmp.name  # the writer's pid is in its temporary name
    assert not stale.exists() and live.exists() and (tmp_path / "last.pt").read_bytes() == b"new"


def test_atomic_writer_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


# --- predict never replaces its inputs -------------------------------------------------------------------------------

@pytest.fixture()
def onnx_model(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from fasterpose import create_model
    from fasterpose.checkpoint import save_checkpoint
    from fasterpose.deploy.export import export_onnx
    from fasterpose.spec import PoseSpec

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("safety_model")
    spec = PoseSpec(model_name="fasterpose_shufflev2", input_size=(128, 96), codec={"input_size": [128, 96]})
    ckpt = folder / "m.pth"
    save_checkpoint(ckpt, {"spec": spec, "model": create_model("fasterpose_shufflev2").state_dict(), "config": None})
    export_onnx(ckpt, folder / "m.onnx", dynamic_batch=True)
    return folder / "m.onnx"


def test_predict_refuses_to_overwrite_the_input_photo(onnx_model: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PEOPLE / "messi5.jpg", photos / "messi5.jpg")
    before = _digest(photos)
    monkeypatch.chdir(photos)  # `cd photos && fasterpose predict messi5.jpg --full-image --out .`
    assert main(["predict", "messi5.jpg", "--onnx", str(onnx_model), "--full-image", "--out", "."]) == 2
    err = capsys.readouterr().err
    assert "would overwrite the input file" in err and "messi5.jpg" in err and "Traceback" not in err
    assert _digest(photos) == before
    # the same for a folder written into itself
    assert main(["predict", str(photos), "--onnx", str(onnx_model), "--full-image", "--out", str(photos)]) == 2
    assert _digest(photos) == before


def test_predict_same_stem_different_formats_both_kept(onnx_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    image = cv2.imread(str(PEOPLE / "messi5.jpg"))
    cv2.imwrite(str(photos / "photo.jpg"), image)
    cv2.imwrite(str(photos / "photo.png"), image[:, ::-1])
    out = tmp_path / "out"
    assert main(["predict", str(photos), "--onnx", str(onnx_model), "--full-image", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["keypoint_set.json", "photo_jpg.jpg", "photo_png.jpg",
                                                      "results.json"]


@pytest.mark.parametrize("kind", ["file", "device"])
def test_predict_out_that_is_not_a_folder(onnx_model: Path, tmp_path: Path, kind: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    if kind == "file":
        out = tmp_path / "notes.txt"
        out.write_text("mine")
    else:
        out = Path("/dev/null")
    assert main(["predict", str(PEOPLE / "messi5.jpg"), "--onnx", str(onnx_model), "--full-image",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err
    if kind == "file":
        assert out.read_text() == "mine"


# --- train never replaces an earlier run ---------------------------------------------------------------------------

def test_train_refuses_to_replace_an_existing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"an earlier run's checkpoint")
    (run / "best.pt").write_bytes(b"its best")
    before = _digest(run)
    assert main(["train", "synthetic_fasterpose_r18", "--out", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--out NEW_FOLDER" in err
    assert "Traceback" not in err and _digest(run) == before


# --- bad numbers are refused before any work -------------------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("optim.lr=-1", "optim.lr must be > 0"),
    ("train.batch_size=-4", "train.batch_size must be >= 1"),
    ("train.threads=0", "train.threads must be >= 1"),
    ("eval.nms_thr=.nan", "eval.nms_thr must be > 0 and <= 1"),
    ("data.codec.sigma=0", "data.codec.sigma must be > 0"),
])
def test_train_refuses_bad_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str,
                                   message: str) -> None:
    out = tmp_path / "run"
    assert main(["train", "synthetic_fasterpose_r18", "--out", str(out), "--opt", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # nothing was started


@pytest.mark.parametrize("flag, value", [("--nms-thr", "nan"), ("--nms-thr", "-1"), ("--kpt-thr", "2")])
def test_eval_results_refuses_bad_thresholds(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    ann = Path(__file__).parent / "data" / "coco_val2017_samples" / "person_keypoints.json"
    assert main(["eval-results", str(ann), str(ann), flag, value]) == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


# --- damaged media and models: warned about or refused, never silently wrong ---------------------------------------

def test_predict_warns_about_a_truncated_video(onnx_model: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = (PEOPLE / "vtest_short.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 3])  # the header still announces 20 frames; 7 decode
    out = tmp_path / "out"
    assert main(["predict", str(cut), "--onnx", str(onnx_model), "--full-image", "--out", str(out), "--no-draw"]) == 0
    printed = capsys.readouterr().out
    assert "suspect input" in printed and "cut.avi (7 of 20 frames)" in printed


def test_predict_warns_when_an_image_detection_file_is_used_on_a_video(onnx_model: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(PEOPLE / "vtest_short.avi"), "--onnx", str(onnx_model), "--boxes",
                 str(PEOPLE / "person_detections.json"), "--out", str(out), "--no-draw"]) == 0
    printed = capsys.readouterr().out
    assert "person_detections.json is an image detection file" in printed


def test_predict_ctrl_c_on_a_video_keeps_the_frames_before_it(onnx_model: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fasterpose.commands import predict

    real = predict._Run.process

    def interrupt_at_frame_5(self, image, image_id, file_name, frame=None):  # noqa: ANN001, ANN202
        if frame == 5:
            raise KeyboardInterrupt
        return real(self, image, image_id, file_name, frame=frame)

    monkeypatch.setattr(predict._Run, "process", interrupt_at_frame_5)
    out = tmp_path / "out"
    assert main(["predict", str(PEOPLE / "vtest_short.avi"), "--onnx", str(onnx_model), "--full-image",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert sorted({r["frame"] for r in results}) == [0, 1, 2, 3, 4]
    assert json.loads((out / "results_incomplete.json").read_text())["frames"] == 5
    assert (out / "vtest_short_pose.mp4").stat().st_size > 0
    assert "interrupted" in capsys.readouterr().out
    # a complete run into the same folder clears the marker
    monkeypatch.setattr(predict._Run, "process", real)
    assert main(["predict", str(PEOPLE / "vtest_short.avi"), "--onnx", str(onnx_model), "--full-image",
                 "--out", str(out), "--max-frames", "3"]) == 0
    assert not (out / "results_incomplete.json").exists()


def test_predict_refuses_a_model_that_outputs_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
    out = tmp_path / "out"
    assert main(["predict", str(PEOPLE / "messi5.jpg"), "--checkpoint", str(ckpt), "--full-image",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "non-finite keypoints" in err and "Traceback" not in err
    assert not (out / "results.json").exists()


# --- unwritable outputs fail before the work, not after it ---------------------------------------------------------

@pytest.mark.parametrize("case", ["directory", "under_a_file", "read_only"])
def test_export_and_eval_check_their_output_first(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from fasterpose.io_utils import check_writable

    if case == "directory":
        target = tmp_path / "model.onnx"
        target.mkdir()
        message = "is a directory"
    elif case == "under_a_file":
        (tmp_path / "afile").write_text("mine")
        target = tmp_path / "afile" / "model.onnx"
        message = "is a file, not a folder"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        target = ro / "model.onnx"
        monkeypatch.setattr(os, "access", lambda p, mode: False)  # root ignores permission bits: simulate them
        message = "not writable"
    with pytest.raises(DataError, match=message):
        check_writable(target, "--out")
    # the commands stop at once with that message, before loading anything (the checkpoint does not even exist)
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    results = target.with_suffix(".json")
    if case != "directory":
        assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt"), "--results", str(results)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_predict_leaves_no_leftovers(onnx_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A staging folder of a killed run goes with the next run; a failed run leaves no empty output folder."""
    out = tmp_path / "out"
    stale = out / f".predict-{2 ** 22 + 7}-abcd"  # a dead process's staging folder
    stale.mkdir(parents=True)
    (stale / "half.jpg").write_bytes(b"x")
    assert main(["predict", str(PEOPLE / "messi5.jpg"), "--onnx", str(onnx_model), "--full-image",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["keypoint_set.json", "messi5.jpg", "results.json"]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    fresh = tmp_path / "new_folder"
    assert main(["predict", str(broken), "--onnx", str(onnx_model), "--full-image", "--out", str(fresh)]) == 2
    assert not fresh.exists()
    assert "broken.jpg" in capsys.readouterr().err


# --- eval-results: malformed files are named, never a traceback ----------------------------------------------------

COCO_ANN = Path(__file__).parent / "data" / "coco_val2017_samples" / "person_keypoints.json"


def _one_result() -> dict:
    import json

    gt = json.loads(COCO_ANN.read_text())
    a = next(a for a in gt["annotations"] if a["num_keypoints"] > 0)
    return {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9,
            "bbox": a["bbox"]}


@pytest.mark.parametrize("case, message", [
    ("bbox_text", "'bbox' is"), ("bbox_null", "'bbox' is"), ("huge_score", "digits"), ("nan_keypoint", "finite"),
    ("deep", "nested too deeply"),
])
def test_eval_results_malformed_results(tmp_path: Path, case: str, message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    r = _one_result()
    path = tmp_path / "results.json"
    if case == "bbox_text":
        r["bbox"] = ["a", 1, 2, 3]
    elif case == "bbox_null":
        r["bbox"] = None
    elif case == "nan_keypoint":
        r["keypoints"][0] = float("nan")
    if case == "huge_score":
        path.write_text(json.dumps([r]).replace('"score": 0.9', '"score": 1' + "0" * 400))
    elif case == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        path.write_text(json.dumps([r]))
    assert main(["eval-results", str(COCO_ANN), str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err


def test_eval_results_refuses_nan_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    gt = json.loads(COCO_ANN.read_text())
    gt["annotations"][0]["keypoints"][0] = float("nan")
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt))  # Python writes the NaN token, which json.load reads back
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_one_result()]))
    assert main(["eval-results", str(ann), str(results)]) == 2
    err = capsys.readouterr().err
    assert "not a finite number" in err and "gt.json" in err and "Traceback" not in err


def test_train_finds_an_empty_validation_file_before_training(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import json

    gt = json.loads(COCO_ANN.read_text())
    gt["annotations"] = []
    val = tmp_path / "val.json"
    val.write_text(json.dumps(gt))
    images = COCO_ANN.parent
    out = tmp_path / "run"
    args = ["train", "coco_fasterpose_r50_256x192", "--out", str(out), "--device", "cpu"]
    for o in (f"data.train_ann={COCO_ANN}", f"data.train_images={images}", f"data.val_ann={val}",
              f"data.val_images={images}", "model.name=fasterpose_r18", "model.pretrained=null",
              "data.input_size=[64,64]", "train.batch_size=2", "train.val_every=1", "train.epochs=1", "eval.boxes=gt"):
        args += ["--opt", o]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "val.json" in err and ("no persons" in err or "no annotations" in err) and "Traceback" not in err
    assert not (out / "last.pt").exists()


def test_resume_with_another_models_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from _engine_utils import TINY, restore_torch_state

    run = tmp_path / "run"
    args = ["train", "synthetic_fasterpose_r18", "--out", str(run), "--device", "cpu"]
    for o in (*TINY, "train.max_iters=1", "train.epochs=1"):
        args += ["--opt", o]
    with restore_torch_state():
        assert main(args) == 0
    capsys.readouterr()
    before = _digest(run)
    other = ["train", "synthetic_fasterpose_r18", "--resume", str(run / "last.pt"), "--device", "cpu"]
    for o in (*TINY, "model.name=fasterpose_mbv2", "model.kwargs={}"):
        other += ["--opt", o]
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "fasterpose_mbv2" in err and "nothing was written" in err and "Traceback" not in err
    assert _digest(run) == before  # config.yaml and the checkpoints untouched


# --- synth and bench ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["file", "under_file"])
def test_synth_out_dir_that_is_a_file(tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    out = mine if where == "file" else mine / "data"
    assert main(["synth", str(out), "--images", "2"]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "Traceback" not in err and mine.read_text() == "mine"


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "--threads"), (["--batch", "-1"], "--batch"), (["--input-size", "250x190"], "multiples of 32"),
    (["--out", "/dev/null"], "not a regular file"),
])
def test_bench_refuses_bad_arguments_before_running(args: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--models", "fasterpose_shufflev2", "--backends", "torch", "--repeats", "1", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err and "prepared" not in captured.err


def test_disk_full_during_export_is_a_message_and_leaves_nothing(onnx_model: Path, tmp_path: Path) -> None:
    """A file-size limit (``ulimit -f``; the same errno path as a full disk) hit while writing the ONNX file."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))  # the model file is ~5 MB

    out = tmp_path / "exports"
    out.mkdir()
    cmd = [sys.executable, "-m", "fasterpose", "export", "--checkpoint", str(onnx_model.parent / "m.pth"),
           "--out", str(out / "m.onnx")]
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "could not write" in proc.stderr and "Traceback" not in proc.stderr
    assert list(out.iterdir()) == []  # no half-written model, no temporary file


def test_predict_into_another_runs_folder_is_refused(onnx_model: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    base = ["--onnx", str(onnx_model), "--full-image", "--out", str(out)]
    assert main(["predict", str(PEOPLE / "messi5.jpg"), *base]) == 0
    before = _digest(out)
    assert main(["predict", str(PEOPLE / "astronaut.png"), *base]) == 2
    err = capsys.readouterr().err
    assert "holds the results of another run" in err and "messi5.jpg" in err and "Traceback" not in err
    assert _digest(out) == before
    assert main(["predict", str(PEOPLE / "messi5.jpg"), *base]) == 0  # the same inputs again: replaced in place


@pytest.mark.parametrize("case", ["under_a_file", "read_only"])
def test_predict_out_under_a_file_or_read_only(onnx_model: Path, tmp_path: Path, case: str,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    if case == "under_a_file":
        (tmp_path / "afile").write_text("mine")
        out, message = tmp_path / "afile" / "out", "is a file, not a folder"
    else:
        out, message = tmp_path / "ro", "not writable"
        out.mkdir()
        monkeypatch.setattr(os, "access", lambda p, mode: False)  # root ignores permission bits: simulate them
    assert main(["predict", str(PEOPLE / "messi5.jpg"), "--onnx", str(onnx_model), "--full-image",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# --- damaged or wrong inputs to eval / export / predict: named, no traceback, nothing written ---------------------

@pytest.mark.parametrize("command", ["eval", "export", "predict"])
@pytest.mark.parametrize("damage", ["garbage", "missing", "truncated"])
def test_damaged_checkpoints(onnx_model: Path, tmp_path: Path, command: str, damage: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "model.pth"
    if damage == "garbage":
        ckpt.write_bytes(b"garbage, not a checkpoint")
    elif damage == "truncated":
        data = (onnx_model.parent / "m.pth").read_bytes()
        ckpt.write_bytes(data[: len(data) // 2])  # a copy interrupted half-way
    out = tmp_path / "out"
    args = {"eval": ["eval", "--checkpoint", str(ckpt)],
            "export": ["export", "--checkpoint", str(ckpt), "--out", str(out / "m.onnx")],
            "predict": ["predict", str(PEOPLE / "messi5.jpg"), "--checkpoint", str(ckpt), "--full-image",
                        "--out", str(out)]}[command]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "model.pth" in err and "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []


def test_demo_out_under_a_file_fails_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    assert main(["demo", "--out", str(mine / "demo"), "--minutes", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err and mine.read_text() == "mine"
