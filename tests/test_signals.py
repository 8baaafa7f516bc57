"""SIGTERM and SIGHUP stop a command as Ctrl-C does (issue 19): what was finished is kept, temporary files are
removed, ``--resume`` continues, and the exit status is 128 + the signal (143 for SIGTERM, 129 for SIGHUP, 130 for
Ctrl-C). And the signal tests pass however the suite is started: under ``nohup``/``cmd &`` a child inherits SIGINT
ignored, so the tests set the dispositions they rely on (``hostile.run_cli`` does), which a test here shows by running
them with SIGINT ignored.

Each command is made to signal itself at a chosen call (``hostile.self_signal``) through the command line, so the
tests hold whatever the command's inside looks like.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import PEOPLE, assert_exit, digest, run_cli, self_signal, tiny_train_args

from fasterpose.cli import main, stop_on_signals
from fasterpose.errors import Stopped

SYNTH = ["--images", "3", "--size", "64x64"]


def _temporaries(folder: Path) -> list[str]:
    return [k for k in digest(folder) if ".tmp." in k]


def _epoch(ckpt: Path) -> int:
    import torch

    return int(torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"])


# --- the handlers themselves ---------------------------------------------------------------------------------------

def test_handlers_raise_once_and_are_restored() -> None:
    """In the context SIGTERM raises Stopped (a KeyboardInterrupt) naming it; a second one is only noted (cleanup
    goes on); afterwards the handlers are the previous ones again, and a signal ignored before stays ignored."""
    before_term, before_hup = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with pytest.raises(Stopped) as stopped, stop_on_signals() as received:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # nohup's choice is kept
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # during the cleanup: noted, not raised
        assert isinstance(stopped.value, KeyboardInterrupt) and stopped.value.signum == signal.SIGTERM
        assert "SIGTERM" in str(stopped.value) and received == [signal.SIGTERM, signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) == before_term
    finally:
        signal.signal(signal.SIGHUP, before_hup)


# --- each command: finished work kept, no temporary file, 128 + signal ------------------------------------------------

@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_synth_keeps_no_half_dataset_and_the_next_run_completes(tmp_path: Path, sig: str) -> None:
    """Stopped at the second image: no temporary file, the dataset is not marked complete (no keypoints json), and
    the next run completes it."""
    out = tmp_path / "data"
    proc = run_cli(["synth", out, *SYNTH], prelude=self_signal("os:replace", 2, sig))
    assert_exit(proc, 128 + getattr(signal, sig), "interrupted" if sig == "SIGINT" else f"stopped by {sig}")
    assert not _temporaries(out) and not (out / "person_keypoints.json").exists()
    assert main(["synth", str(out), *SYNTH]) == 0
    assert len(json.loads((out / "person_keypoints.json").read_text())["images"]) == 3


def test_sigterm_still_stops_a_command_started_with_sigint_ignored(tmp_path: Path) -> None:
    """``nohup fasterpose synth ... &``: Ctrl-C (SIGINT) stays ignored as the user asked, SIGTERM still stops it."""
    out = tmp_path / "data"
    prelude = ("import os, signal\n_replace, _calls = os.replace, []\n"
               "def _hooked(*a):\n    _calls.append(1)\n"
               "    os.kill(os.getpid(), signal.SIGINT if len(_calls) <= 2 else signal.SIGTERM)\n"
               "    return _replace(*a)\nos.replace = _hooked\n")
    proc = run_cli(["synth", out, *SYNTH], prelude=prelude, ignore=("SIGINT",))
    assert_exit(proc, 143, "stopped by SIGTERM")
    assert (out / "images" / "000000.jpg").is_file()  # the manifest, then this image: written after ignored SIGINTs
    assert not _temporaries(out) and not (out / "person_keypoints.json").exists()


def test_export_keeps_the_previous_model(tiny_model: Path, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "model.onnx").write_bytes(tiny_model.with_suffix(".onnx").read_bytes())
    before = digest(exports)
    proc = run_cli(["export", "--checkpoint", tiny_model, "--out", exports / "model.onnx"],
                   prelude=self_signal("fasterpose.deploy.export:run_session", 1, "SIGTERM"))
    assert_exit(proc, 143, "stopped by SIGTERM")
    assert digest(exports) == before


# bench (SIGHUP) and eval (SIGTERM): test_hostile_bench.py, test_hostile_eval.py, beside their Ctrl-C cases


def test_predict_on_a_folder_keeps_the_images_done(tiny_model: Path, tmp_path: Path) -> None:
    """SIGTERM while the third image is read: the results of the first two are kept and marked incomplete, the exit
    status says the run was stopped."""
    import shutil

    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name in ("basketball1.png", "basketball2.png", "messi5.jpg"):
        shutil.copy(PEOPLE / name, photos / name)
    proc = run_cli(["predict", photos, "--onnx", tiny_model.with_suffix(".onnx"), "--full-image", "--out", out],
                   prelude=self_signal("cv2:imread", 3, "SIGTERM"))
    assert_exit(proc, 143, "SIGTERM")
    assert {r["file_name"] for r in json.loads((out / "results.json").read_text())} == {"basketball1.png",
                                                                                       "basketball2.png"}
    assert (out / "results_incomplete.json").is_file() and not _temporaries(out)


def test_training_stopped_by_sigterm_with_workers_in_its_process_group(tmp_path: Path) -> None:
    """A scheduler signals the whole process group (Slurm, systemd): the DataLoader's worker processes get SIGTERM
    too. They leave the stopping to the main process, which exits 143 with a message, not a worker's traceback."""
    run = tmp_path / "run"
    prelude = ("import os, signal\nos.setpgrp()\nimport fasterpose.engine.trainer as _t\n_train0 = _t.train\n"
               "_t.train = lambda *a, **k: _train0(*a, **k, on_iteration=lambda it: it == 5 and "
               "os.killpg(0, signal.SIGTERM))\n")
    proc = run_cli(tiny_train_args(run, "train.workers=2"), prelude=prelude)
    assert_exit(proc, 143, "stopped by SIGTERM")
    assert _epoch(run / "last.pt") == 1 and not _temporaries(run)


def test_distill_keeps_its_last_epoch_and_resumes(tiny_run: Path, tmp_path: Path) -> None:
    """SIGTERM before the second epoch's ``last.pt``: exit 143, the first epoch's checkpoint complete, no student and
    no temporary file; ``--resume`` finishes the run (test_distill.py shows the resumed run is exact)."""
    out = tmp_path / "student"
    args = ["distill", PEOPLE, "--teacher", tiny_run / "last.pt", "--full-image", "--epochs", "2", "--batch-size",
            "4", "--threads", "1", "--out", out]
    proc = run_cli(args, prelude=self_signal("fasterpose.engine.state:save_checkpoint", 2, "SIGTERM"))
    assert_exit(proc, 143, "stopped by SIGTERM")
    assert (out / "last.pt").is_file() and not (out / "student.pt").exists() and not _temporaries(out)
    assert main([*map(str, args), "--resume", "--json"]) == 0
    assert (out / "student.pt").is_file()


# --- the suite passes however it is started ------------------------------------------------------------------------

def test_signal_tests_pass_when_the_suite_starts_with_sigint_ignored() -> None:
    """``nohup pytest &`` or ``pytest &`` in a script: pytest starts with SIGINT ignored. A few quick signal tests
    (Ctrl-C included) still pass, because they set the dispositions they rely on in the processes they start."""
    here = Path(__file__).parent
    selection = [f"{here / 'test_signals.py'}::test_synth_keeps_no_half_dataset_and_the_next_run_completes",
                 f"{here / 'test_signals.py'}::test_handlers_raise_once_and_are_restored",
                 f"{here / 'test_hostile_bench.py'}::test_stop_signal_during_the_benchmark_writes_nothing[SIGINT]"]

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *selection],
                          capture_output=True, text=True, preexec_fn=ignore_sigint, cwd=here.parent, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "5 passed" in proc.stdout, proc.stdout[-2000:]
