"""Hostile inputs to ``fasterpose synth`` (issue 12): bad sizes and counts refused before any work, an output that
is a file or another dataset refused, and a full disk or a kill leaves no half-written image that the next run
keeps (the dataset is complete only once ``person_keypoints.json`` is written, last)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile import assert_exit, assert_refused, digest, read_only, run_cli, self_signal

from fasterpose.cli import main

SMALL = ["--images", "3", "--size", "64x64"]


@pytest.mark.parametrize("where", ["file", "under_a_file", "device"])
def test_out_dir_that_is_a_file(tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    out = {"file": mine, "under_a_file": mine / "data", "device": Path("/dev/null")}[where]
    assert main(["synth", str(out), *SMALL]) == 2
    assert_refused(capsys.readouterr().err, "is a file, not a folder", "choose another path")
    assert mine.read_text() == "mine"


@pytest.mark.parametrize("args, message", [
    (["--images", "0"], "--images: must be an integer >= 1, got 0"), (["--images", "-1"], "got -1"),
    (["--size", "99999x99999"], "99999x99999"), (["--size", "abc"], "'abc'"), (["--size", "10x10"], "each 32.."),
    (["--max-persons", "0"], "--max-persons: must be an integer >= 1"),
    (["--seed", "-1"], "--seed: must be a seed between 0 and 4294967295, got -1"),
])
def test_bad_values_refused_before_any_work(tmp_path: Path, args: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    assert main(["synth", str(out), *SMALL, *args]) == 2
    assert_refused(capsys.readouterr().err, message)
    assert not out.exists()


def test_another_dataset_is_not_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    assert main(["synth", str(out), *SMALL]) == 0
    before = digest(out)
    assert main(["synth", str(out), *SMALL, "--seed", "5"]) == 2
    assert_refused(capsys.readouterr().err, "holds a synthetic dataset with other parameters", "--overwrite")
    assert digest(out) == before


def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder) as wrapper:
        proc = run_cli(["synth", folder / "data", *SMALL], wrapper=wrapper)
    assert_exit(proc, 2, "not writable", "choose another path")
    assert digest(folder) == {}


def test_disk_full_then_the_next_run_completes(tmp_path: Path) -> None:
    """A file-size limit below the annotation file's size: a message naming the file; no temporary file; the
    dataset is not marked complete, and a run with space completes it."""
    out = tmp_path / "data"
    proc = run_cli(["synth", out, *SMALL], file_size_limit=3000)
    assert_exit(proc, 2, "could not write", str(out), "free some space")
    assert not (out / "person_keypoints.json").exists()
    assert not [k for k in digest(out) if ".tmp." in k]
    assert main(["synth", str(out), *SMALL]) == 0
    assert len(json.loads((out / "person_keypoints.json").read_text())["images"]) == 3


def test_sigkill_mid_write_then_the_next_run_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "data"
    proc = run_cli(["synth", out, *SMALL], prelude=self_signal("os:replace", 2, "SIGKILL"))
    assert proc.returncode == -9
    assert [k for k in digest(out) if ".tmp." in k]  # the second image, written but never renamed
    assert main(["synth", str(out), *SMALL]) == 0
    assert sorted(digest(out)) == [".fasterpose-written.json", "images", "images/000000.jpg", "images/000001.jpg",
                                   "images/000002.jpg", "person_detections.json", "person_keypoints.json"]
