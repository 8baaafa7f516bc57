"""Hostile inputs to ``fasterpose export`` (issue 12): outputs checked before the work, damaged checkpoints named,
and a failed, interrupted or killed export never leaves a half-written model nor replaces the previous one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hostile import (
    CHECKPOINT_DAMAGES,
    PEOPLE,
    assert_exit,
    assert_refused,
    damaged_checkpoint,
    digest,
    read_only,
    run_cli,
    self_signal,
)

from fasterpose.cli import main

pytest.importorskip("onnxruntime")


def _export(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["export", "--checkpoint", str(ckpt), "--out", str(out), *extra]


@pytest.fixture()
def exports(tmp_path: Path, tiny_model: Path) -> Path:
    """A folder that already holds the user's earlier export ``model.onnx``."""
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(tiny_model.with_suffix(".onnx").read_bytes())
    return folder


@pytest.mark.parametrize("case", ["directory", "under_a_file", "device_link"])
def test_output_checked_before_loading_anything(tmp_path: Path, case: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if case == "directory":
        target, message = tmp_path / "model.onnx", "is a directory"
        target.mkdir()
    elif case == "under_a_file":
        (tmp_path / "afile").write_text("mine")
        target, message = tmp_path / "afile" / "model.onnx", "is a file, not a folder"
    else:
        target, message = tmp_path / "model.onnx", "not a regular file"
        target.symlink_to("/dev/null")  # a link to a device: never replaced, never written through
    # the check comes first: the checkpoint does not even exist
    assert main(_export(tmp_path / "missing.pt", target)) == 2
    assert_refused(capsys.readouterr().err, "--out", message)
    assert (tmp_path / "afile").read_text() == "mine" if case == "under_a_file" else True
    assert os.path.exists("/dev/null") and not Path("/dev/null").is_file()


def test_read_only_folder(tiny_model: Path, exports: Path) -> None:
    before = digest(exports)
    with read_only(exports) as wrapper:
        proc = run_cli(_export(tiny_model, exports / "new.onnx"), wrapper=wrapper)
    assert_exit(proc, 2, "--out", "not writable", "choose another path")
    assert digest(exports) == before


@pytest.mark.parametrize("damage", CHECKPOINT_DAMAGES)
def test_damaged_checkpoints(tiny_model: Path, tmp_path: Path, damage: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = damaged_checkpoint(tiny_model, damage, tmp_path)
    out = tmp_path / "out"
    assert main(_export(ckpt, out / "m.onnx")) == 2
    assert_refused(capsys.readouterr().err, "model.pth" if damage != "nan_weight" else "non-finite values")
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--opset", "5"], "opset 5 is too old"), (["--opset", "99999"], "opset 99999 is newer"),
    (["--int8"], "--int8 needs --calib"), (["--int8", "--calib", str(PEOPLE), "--calib-size", "0"], "--calib-size"),
    (["--eval", "/nonexistent/val.json"], "--eval /nonexistent/val.json does not exist"),
])
def test_bad_options_are_refused_and_nothing_written(tiny_model: Path, exports: Path, extra: list[str],
                                                     message: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = digest(exports)
    assert main(_export(tiny_model, exports / "model.onnx", *extra)) == 2
    assert_refused(capsys.readouterr().err, message)
    assert digest(exports) == before


def test_out_not_ending_in_onnx(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(_export(tiny_model, notes)) == 2
    assert_refused(capsys.readouterr().err, "should end in .onnx")
    assert notes.read_text() == "mine"


@pytest.mark.parametrize("option", ["--eval", "--parity-data"])
def test_a_check_failing_after_the_export_keeps_the_previous_model(tiny_model: Path, exports: Path, option: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``--eval`` with a detection file (not keypoint annotations) fails after the model was built: --out keeps the
    user's earlier export, and no temporary file is left. The message names the option that was given."""
    before = digest(exports)
    assert main(_export(tiny_model, exports / "model.onnx", option, str(PEOPLE / "person_detections.json"))) == 2
    err = capsys.readouterr().err
    assert_refused(err, "person_detections.json", "not a COCO keypoints json", f"folder of images as {option}")
    assert "--calib" not in err
    assert digest(exports) == before


def test_symlinked_output_is_written_through(tiny_model: Path, exports: Path) -> None:
    link = exports / "latest.onnx"
    link.symlink_to("model.onnx")
    assert main(_export(tiny_model, link)) == 0
    assert link.is_symlink() and os.readlink(link) == "model.onnx"
    assert sorted(p.name for p in exports.iterdir()) == ["latest.onnx", "model.onnx"]


def test_disk_full_leaves_nothing(tiny_model: Path, exports: Path) -> None:
    """A file-size limit (``ulimit -f``; the errno path of a full disk) hit while writing the ~5 MB model."""
    before = digest(exports)
    proc = run_cli(_export(tiny_model, exports / "new.onnx"), file_size_limit=1_000_000)
    assert_exit(proc, 2, "could not write", "free some space")
    assert digest(exports) == before  # no half-written model, no temporary file


def test_sigint_during_the_parity_check_keeps_the_previous_model(tiny_model: Path, exports: Path) -> None:
    before = digest(exports)
    proc = run_cli(_export(tiny_model, exports / "model.onnx"),
                   prelude=self_signal("fasterpose.deploy.export:run_session", 1, "SIGINT"))
    assert_exit(proc, 130, "interrupted")
    assert digest(exports) == before


def test_sigkill_while_writing_then_the_next_export_cleans_up(tiny_model: Path, exports: Path) -> None:
    """Killed while the model is copied into place: the earlier model is intact (the copy goes to a temporary file);
    the next export into the folder removes the dead process's temporary file."""
    before = digest(exports)
    proc = run_cli(_export(tiny_model, exports / "model.onnx"), prelude=self_signal("shutil:copyfile", 1, "SIGKILL"))
    assert proc.returncode == -9
    after = digest(exports)
    assert after["model.onnx"] == before["model.onnx"]
    assert [k for k in after if k != "model.onnx"] and all(".model.tmp." in k for k in after if k != "model.onnx")
    assert main(_export(tiny_model, exports / "model.onnx")) == 0
    assert sorted(p.name for p in exports.iterdir()) == ["model.onnx"]


def test_out_linked_to_the_checkpoint_is_refused(tiny_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(tiny_model.read_bytes())
    (tmp_path / "model.onnx").symlink_to(ckpt)  # written through, it would replace the checkpoint
    before = digest(tmp_path)
    assert main(_export(ckpt, tmp_path / "model.onnx")) == 2
    assert_refused(capsys.readouterr().err, "would overwrite the input file", "m.pth")
    assert digest(tmp_path) == before


def test_killed_exports_leave_no_lasting_temporary_folders(tiny_model: Path, exports: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An export or a Predictor's on-the-fly export killed with SIGKILL leaves its ``fasterpose_export_<pid>-*`` /
    ``fasterpose_predictor_<pid>-*`` folder in the system temp folder; the next one removes it."""
    import subprocess
    import sys
    import tempfile

    from fasterpose.deploy.predictor import Predictor

    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))  # the subprocess's
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))  # this process's (gettempdir() caches its answer)
    killed = run_cli(_export(tiny_model, exports / "new.onnx"),
                     prelude=self_signal("fasterpose.deploy.export:export_onnx", 1, "SIGKILL"))
    assert killed.returncode == -9
    left = [p.name for p in system_tmp.iterdir()]
    assert len(left) == 1 and left[0].startswith("fasterpose_export_"), left
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (system_tmp / f"fasterpose_predictor_{dead.pid}-abc").mkdir()
    assert main(_export(tiny_model, exports / "new.onnx")) == 0
    assert [p.name for p in system_tmp.iterdir()] == [f"fasterpose_predictor_{dead.pid}-abc"]  # export's only
    predictor = Predictor(tiny_model, backend="onnxruntime", threads=1)
    assert [p.name for p in system_tmp.iterdir()] == [Path(predictor._tmpdir.name).name]
    assert Path(predictor._tmpdir.name).name.startswith(f"fasterpose_predictor_{os.getpid()}-")
