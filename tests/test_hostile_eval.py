"""Hostile inputs to ``fasterpose eval`` (issue 12): ``--results`` is checked before the evaluation (not after it),
never replaces a device or a directory, is written through a symlink, and is never left half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile import assert_exit, assert_refused, damaged_checkpoint, digest, read_only, run_cli, self_signal

from fasterpose.cli import main

pytest.importorskip("torch")


@pytest.mark.parametrize("case, message", [
    ("directory", "is a directory"), ("device", "not a regular file"), ("link_to_device", "not a regular file"),
    ("under_a_file", "is a file, not a folder"),
])
def test_results_checked_before_the_evaluation(tmp_path: Path, case: str, message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("mine")
    target = {"directory": tmp_path, "device": Path("/dev/null"), "link_to_device": tmp_path / "r.json",
              "under_a_file": tmp_path / "afile" / "r.json"}[case]
    if case == "link_to_device":
        target.symlink_to("/dev/null")
    before = digest(tmp_path)
    # the check comes first: the checkpoint does not even exist
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt"), "--results", str(target)]) == 2
    assert_refused(capsys.readouterr().err, "--results", message)
    assert digest(tmp_path) == before


def test_read_only_results_folder(tiny_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder) as wrapper:
        proc = run_cli(["eval", "--checkpoint", tiny_run / "last.pt", "--results", folder / "r.json"],
                       wrapper=wrapper)
    assert_exit(proc, 2, "--results", "not writable")
    assert digest(folder) == {}


@pytest.mark.parametrize("damage, message", [("garbage", "could not be read"), ("missing", "does not exist"),
                                             ("truncated", "could not be read"), ("nan_weight", "non-finite values")])
def test_damaged_checkpoints(tiny_run: Path, tmp_path: Path, damage: str, message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    # nan_weight would score NaN keypoints (written into --results) before this was checked
    ckpt = damaged_checkpoint(tiny_run / "last.pt", damage, tmp_path)
    assert main(["eval", "--checkpoint", str(ckpt), "--results", str(tmp_path / "r.json")]) == 2
    assert_refused(capsys.readouterr().err, "model.pth" if damage != "nan_weight" else "another checkpoint", message)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("case, message", [
    ("bad_yaml", "not valid YAML"), ("batch_zero", "--batch-size: must be an integer >= 1, got 0"),
    ("unknown_key", "unknown config key 'eval.nokey'"), ("boxes_device", "/dev/null"),
    ("nms_nan", "eval.nms_thr"),
])
def test_bad_config_and_options(tiny_run: Path, tmp_path: Path, case: str, message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: [fasterpose_r18\n")
    args = {"bad_yaml": [str(bad)], "batch_zero": ["--batch-size", "0"], "unknown_key": ["--opt", "eval.nokey=1"],
            "boxes_device": ["--boxes", "/dev/null"], "nms_nan": ["--opt", "eval.nms_thr=.nan"]}[case]
    assert main(["eval", *args, "--checkpoint", str(tiny_run / "last.pt"), "--results",
                 str(tmp_path / "r.json")]) == 2
    assert_refused(capsys.readouterr().err, message)
    assert not (tmp_path / "r.json").exists()


def test_results_written_through_a_symlink(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "kept" / "results.json"
    real.parent.mkdir()
    real.write_text("[]")
    link = tmp_path / "r.json"
    link.symlink_to(real)
    assert main(["eval", "--checkpoint", str(tiny_run / "last.pt"), "--results", str(link), "--json"]) == 0
    assert link.is_symlink() and isinstance(json.loads(real.read_text()), list) and real.read_text() != "[]"
    assert "AP" in json.loads(capsys.readouterr().out)["stats"]


def test_disk_full_writing_results(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(["eval", "--checkpoint", tiny_run / "last.pt", "--results", out / "r.json"], file_size_limit=2000)
    assert_exit(proc, 2, "could not write", "free some space")
    assert digest(out) == {}  # no half-written results, no temporary file


@pytest.mark.parametrize("sig, code, said", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "stopped by SIGTERM")],
                         ids=["SIGINT", "SIGTERM"])
def test_stop_signal_during_the_scoring_keeps_complete_results(tiny_run: Path, tmp_path: Path, sig: str, code: int,
                                                               said: str) -> None:
    """Ctrl-C (or a scheduler's SIGTERM) after the predictions, while COCOeval scores them: the results file is
    complete (it was written atomically before the scoring), nothing else is left."""
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(["eval", "--checkpoint", tiny_run / "last.pt", "--results", out / "r.json"],
                   prelude=self_signal("fasterpose.evaluation.coco:evaluate_keypoints", 1, sig))
    assert_exit(proc, code, said)
    assert list(digest(out)) == ["r.json"]
    results = json.loads((out / "r.json").read_text())
    assert results and all(len(r["keypoints"]) == 51 for r in results)


def test_results_that_would_replace_an_input(tiny_run: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``--results`` naming the checkpoint itself (or a link to it): refused before the evaluation."""
    link = tmp_path / "results.json"
    link.symlink_to(tiny_run / "last.pt")
    before = digest(tiny_run)
    for target in (tiny_run / "last.pt", link):
        assert main(["eval", "--checkpoint", str(tiny_run / "last.pt"), "--results", str(target)]) == 2
        assert_refused(capsys.readouterr().err, "would overwrite the input file", "last.pt", "another path")
    assert digest(tiny_run) == before
