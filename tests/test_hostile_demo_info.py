"""Hostile inputs to ``fasterpose demo`` and ``fasterpose info`` (issue 12): refused before any work, with the
option and the value in the message."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import assert_refused

from fasterpose.cli import main


def test_demo_out_under_a_file_fails_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    assert main(["demo", "--out", str(mine / "demo"), "--minutes", "0.01"]) == 2
    assert_refused(capsys.readouterr().err, "is a file, not a folder")
    assert mine.read_text() == "mine"


def test_demo_never_replaces_a_training_run(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--out`` pointing at the user's run folder: refused before training (a previous demo would be replaced)."""
    from hostile import digest

    before = digest(tiny_run)
    assert main(["demo", "--out", str(tiny_run), "--minutes", "0.01"]) == 2
    assert_refused(capsys.readouterr().err, "holds a training run", "not a demo", "another --out")
    assert digest(tiny_run) == before


@pytest.mark.parametrize("args, message", [
    (["--minutes", "nan"], "--minutes: must be a finite number > 0"), (["--minutes", "inf"], "got inf"),
    (["--minutes", "0"], "got 0"), (["--minutes", "-3"], "got -3"), (["--threads", "0"], "--threads"),
    (["--threads", "100000"], "--threads: must be a thread count between 1 and 1024"),
])
def test_demo_bad_numbers(tmp_path: Path, args: list[str], message: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *args]) == 2
    assert_refused(capsys.readouterr().err, message)
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["fasterpose_r18", "--num-keypoints", "0"], "--num-keypoints: must be an integer >= 1, got 0"),
    (["fasterpose_r18", "--input-size", "0x0"], "'0x0'"), (["fasterpose_r9000"], "unknown model 'fasterpose_r9000'"),
    (["fasterpose_r18", "--num-keypoints", "100000000"], "ran out of memory"),  # a traceback from PyTorch before
])
def test_info_bad_values(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", *args]) == 2
    assert_refused(capsys.readouterr().err, message)
