"""Hostile inputs to ``fasterpose bench`` (issue 12): every bad option is refused before the (long) benchmark, and
``--out`` is checked first, never replaces a device or a directory, and is never left half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import assert_exit, assert_refused, digest, run_cli, self_signal

from fasterpose.cli import main

pytest.importorskip("torch")
QUICK = ["--models", "fasterpose_shufflev2", "--backends", "torch", "--repeats", "1", "--warmup", "0",
         "--input-size", "64x64"]


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "--threads"),
    (["--threads", "100000"], "--threads: must be a thread count between 1 and 1024"),
    (["--batch", "-1"], "--batch"), (["--repeats", "0"], "--repeats"), (["--warmup", "-1"], "--warmup"),
    (["--input-size", "250x190"], "multiples of 32"), (["--input-size", "0x0"], "'0x0'"),
    (["--backends", "tensorflow"], "--backends must be a subset"), (["--models", " , "], "--models is empty"),
    (["--models", "fasterpose_r9000"], "unknown model 'fasterpose_r9000'"),
    (["--int8"], "--int8 rows run on onnxruntime"), (["--out", "/dev/null"], "not a regular file"),
    (["--checkpoint", "/nonexistent/model.pth"], "/nonexistent/model.pth does not exist"),
])
def test_bad_arguments_refused_before_running(args: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *QUICK, *args]) == 2
    captured = capsys.readouterr()
    assert_refused(captured.err, message)
    assert "|" not in captured.out  # no table: nothing was measured


@pytest.mark.parametrize("case, message", [("directory", "is a directory"), ("under_a_file", "is a file, not a folder"),
                                           ("link_to_device", "not a regular file")])
def test_out_checked_first(tmp_path: Path, case: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("mine")
    out = {"directory": tmp_path, "under_a_file": tmp_path / "afile" / "b.json", "link_to_device": tmp_path / "l"}[case]
    if case == "link_to_device":
        out.symlink_to("/dev/null")
    before = digest(tmp_path)
    assert main(["bench", *QUICK, "--out", str(out)]) == 2
    assert_refused(capsys.readouterr().err, "--out", message)
    assert digest(tmp_path) == before


def test_disk_full_writing_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(["bench", *QUICK, "--out", out / "bench.json"], file_size_limit=100)
    assert_exit(proc, 2, "could not write", "bench.json", "free some space")
    assert digest(out) == {}


@pytest.mark.parametrize("sig, code, said", [("SIGINT", 130, "interrupted"), ("SIGHUP", 129, "stopped by SIGHUP")],
                         ids=["SIGINT", "SIGHUP"])
def test_stop_signal_during_the_benchmark_writes_nothing(tmp_path: Path, sig: str, code: int, said: str) -> None:
    """Ctrl-C, or a closed terminal's SIGHUP: exit 128 + the signal, nothing written."""
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(["bench", *QUICK, "--out", out / "bench.json"],
                   prelude=self_signal("fasterpose.deploy.bench:_prepost_runners", 1, sig))
    assert_exit(proc, code, said)
    assert digest(out) == {}


def test_out_that_would_replace_the_checkpoint(tiny_model: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(tiny_model.read_bytes())
    before = digest(tmp_path)
    assert main(["bench", "--checkpoint", str(ckpt), "--backends", "torch", "--out", str(ckpt)]) == 2
    assert_refused(capsys.readouterr().err, "would overwrite the input file", "m.pth")
    assert digest(tmp_path) == before
