"""Hostile inputs to ``fasterpose train`` (issue 12): an earlier run is never replaced, bad configs and numbers are
refused before any work, and an interrupted, killed or disk-full run keeps complete checkpoints only and resumes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile import COCO_ANN, assert_exit, assert_refused, digest, read_only, run_cli, self_signal, tiny_train_args

from fasterpose.cli import main

torch = pytest.importorskip("torch")


def _epoch(checkpoint: Path) -> int:
    return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"])


def _main(args: list[str]) -> int:
    from _engine_utils import restore_torch_state

    with restore_torch_state():
        return main(args)


# --- an earlier run is never replaced ------------------------------------------------------------------------------

def test_refuses_to_replace_an_existing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"an earlier run's checkpoint")
    (run / "best.pt").write_bytes(b"its best")
    before = digest(run)
    assert main(["train", "synthetic_fasterpose_r18", "--out", str(run), "--device", "cpu"]) == 2
    assert_refused(capsys.readouterr().err, "already holds a run", "--resume", "--out NEW_FOLDER")
    assert digest(run) == before


def test_resume_with_another_models_config_is_refused(tiny_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = digest(tiny_run)
    args = tiny_train_args(tiny_run, "model.name=fasterpose_mbv2", "model.kwargs={}")
    args[args.index("--out"):args.index("--out") + 2] = ["--resume", str(tiny_run / "last.pt")]
    assert main(args) == 2
    assert_refused(capsys.readouterr().err, "fasterpose_mbv2", "nothing was written")
    assert digest(tiny_run) == before  # config.yaml and the checkpoints untouched


@pytest.mark.parametrize("epochs", [1, 2])
def test_resume_of_a_finished_run_with_no_epochs_left_is_refused(tiny_run: Path, epochs: int,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The 2-epoch run resumed with train.epochs=1 (or 2) would train nothing and rewrite config.yaml: refused, with
    what was asked, what the run did and how to train more, before the run folder is touched."""
    before = digest(tiny_run)
    last = tiny_run / "last.pt"
    assert _main(["train", "--resume", str(last), "--opt", f"train.epochs={epochs}", "--device", "cpu"]) == 2
    assert_refused(capsys.readouterr().err, f"--resume {last}", "already trained 2 epochs",
                   f"train.epochs={epochs} asks for", "higher train.epochs", f"--resume {last} --opt train.epochs=12",
                   "nothing was written")
    assert digest(tiny_run) == before


def test_resume_from_an_inference_only_checkpoint_is_refused(tiny_run: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before the run folder is touched (its config.yaml used to be replaced first)."""
    run = tmp_path / "run"
    run.mkdir()
    state = torch.load(tiny_run / "last.pt", map_location="cpu", weights_only=False)
    torch.save({k: state[k] for k in ("format", "fasterpose_version", "spec", "model", "config")}, run / "model.pt")
    before = digest(run)
    assert _main(["train", "--resume", str(run / "model.pt"), "--device", "cpu"]) == 2
    assert_refused(capsys.readouterr().err, "inference-only checkpoint", "--out NEW_FOLDER")
    assert digest(run) == before


def test_out_holding_the_config_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``train my_run/config.yaml --out my_run``: the run's resolved config.yaml would replace the user's own."""
    from fasterpose.engine.config import find_config

    folder = tmp_path / "my_run"
    folder.mkdir()
    (folder / "config.yaml").write_text(find_config("synthetic_fasterpose_r18").read_text() + "# my notes\n")
    before = digest(folder)
    assert main(["train", str(folder / "config.yaml"), "--out", str(folder)]) == 2
    assert_refused(capsys.readouterr().err, "would overwrite the input file", "config.yaml")
    assert digest(folder) == before


# --- refused before any work ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("optim.lr=-1", "optim.lr must be > 0"), ("optim.lr=.inf", "optim.lr must be > 0 and <= 1e+06, got inf"),
    ("train.batch_size=-4", "train.batch_size must be >= 1"), ("train.batch_size=abc", "must be an integer"),
    ("train.threads=0", "train.threads must be >= 1"), ("train.threads=100000", "train.threads must be >= 1 and"),
    ("eval.nms_thr=.nan", "eval.nms_thr must be > 0 and <= 1"), ("data.codec.sigma=0", "data.codec.sigma must be > 0"),
    ("data.codec.sigma=.inf", "data.codec.sigma must be > 0, got inf"), ("nonsense", "not of the form key=value"),
    ("train.time_budget_s=.nan", "train.time_budget_s"),
])
def test_bad_numbers(tmp_path: Path, override: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "synthetic_fasterpose_r18", "--out", str(out), "--opt", override]) == 2
    assert_refused(capsys.readouterr().err, message)
    assert not out.exists()  # nothing was started


@pytest.mark.parametrize("text, message", [
    ("model: {name: [fasterpose_r18\n", "is not valid YAML"), ("just a sentence\n", "must contain a mapping"),
    ("", "bad.yaml is empty"), ("train: {epochs: 0}\n", "train.epochs must be >= 1"),
    ("\udcff\udcfe", "not a UTF-8 text file"),
])
def test_malformed_config_files(tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_bytes(text.encode("utf-8", "surrogateescape"))
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out)]) == 2
    assert_refused(capsys.readouterr().err, message)
    assert not out.exists()


@pytest.mark.parametrize("where", ["file", "device", "under_a_file"])
def test_out_that_is_not_a_folder(tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    out = {"file": mine, "device": Path("/dev/null"), "under_a_file": mine / "run"}[where]
    assert main(["train", "synthetic_fasterpose_r18", "--out", str(out)]) == 2
    assert_refused(capsys.readouterr().err, "--out", "is a file, not a folder", "choose another path")
    assert mine.read_text() == "mine"


def test_synthetic_cache_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _main(tiny_train_args(out, "data.synthetic.cache_dir=/dev/null")) == 2
    assert_refused(capsys.readouterr().err, "data.synthetic.cache_dir=/dev/null", "is a file, not a folder")
    assert not out.exists()


def test_read_only_run_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder) as wrapper:
        proc = run_cli(tiny_train_args(folder / "run"), wrapper=wrapper)
    assert_exit(proc, 2, "--out", "not writable")
    assert digest(folder) == {}


def test_finds_an_empty_validation_file_before_training(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
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
    assert _main(args) == 2
    err = capsys.readouterr().err
    assert_refused(err, "val.json")
    assert "no persons" in err or "no annotations" in err or "[no-persons]" in err  # train runs check-data's checks
    assert not out.exists()  # a run that failed before its first checkpoint leaves no folder


def test_a_run_failing_before_its_first_checkpoint_leaves_no_folder(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _main(tiny_train_args(out, "data.input_size=[0,0]")) == 2
    assert_refused(capsys.readouterr().err, "input_size", "(0, 0)")
    assert not out.exists()


# --- interrupted, killed, full disk, two at once -----------------------------------------------------------------

def test_sigint_between_steps_keeps_the_last_checkpoint_and_resumes(tmp_path: Path) -> None:
    """Ctrl-C at the first step of epoch 2 (4 steps an epoch): exit 130, ``last.pt`` of epoch 1 is complete, and
    ``--resume`` finishes the run."""
    run = tmp_path / "run"
    prelude = ("import os, signal\nimport fasterpose.engine.trainer as _t\n_train0 = _t.train\n"
               "_t.train = lambda *a, **k: _train0(*a, **k, on_iteration=lambda it: it == 5 and "
               "os.kill(os.getpid(), signal.SIGINT))\n")
    proc = run_cli(tiny_train_args(run), prelude=prelude)
    assert_exit(proc, 130, "interrupted")
    assert _epoch(run / "last.pt") == 1 and not [p for p in run.iterdir() if ".tmp." in p.name]
    assert _main(tiny_train_args(run) + ["--resume"]) == 0
    assert _epoch(run / "last.pt") == 2


@pytest.mark.parametrize("signal", ["SIGINT", "SIGKILL"])
def test_signal_during_a_checkpoint_write(tmp_path: Path, signal: str) -> None:
    """The second ``last.pt`` write is interrupted (SIGINT) or killed half-way (SIGKILL: half a file on disk): the
    first ``last.pt`` is intact; the SIGKILL's temporary file is removed by the resumed run, which finishes."""
    run = tmp_path / "run"
    half = "open(a[1], 'wb').write(b'half a checkpoint')"  # a[1] is the temporary path torch.save writes
    proc = run_cli(tiny_train_args(run), prelude=self_signal("torch:save", 2, signal, before=half))
    if signal == "SIGKILL":
        assert proc.returncode == -9
        assert [p.name for p in run.iterdir() if ".last.tmp." in p.name]  # the dead writer's half file
    else:
        assert_exit(proc, 130, "interrupted")
        assert not [p for p in run.iterdir() if ".tmp." in p.name]
    assert _epoch(run / "last.pt") == 1
    assert _main(tiny_train_args(run) + ["--resume"]) == 0
    assert _epoch(run / "last.pt") == 2
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporaries, no lock


def test_disk_full_during_training(tmp_path: Path) -> None:
    """A file-size limit (``ulimit -f``: EFBIG, as a full disk) below a checkpoint's size: a message, and no
    half-written checkpoint or run folder is left (the run had no checkpoint yet)."""
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(tiny_train_args(out / "run"), file_size_limit=200_000)
    assert_exit(proc, 2, "could not write the checkpoint", "last.pt", "free some space")
    assert digest(out) == {}


def test_two_runs_into_one_folder_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first run holds its folder while it trains; a second one started meanwhile is refused before it writes
    anything (its config.yaml would replace the first one's), and the first completes."""
    run, flag, go = tmp_path / "run", tmp_path / "first_is_training", tmp_path / "go_on"
    wait = (f"open({str(flag)!r}, 'w').close()\n"
            "        import time\n"
            f"        while not os.path.exists({str(go)!r}) and time.monotonic() - {time.monotonic()} < 120:\n"
            "            time.sleep(0.05)")
    prelude = self_signal("fasterpose.engine.state:save_checkpoint", 1, "SIGCONT", before=wait)
    code = f"{prelude}\nimport sys\nfrom fasterpose.cli import main\nsys.exit(main(sys.argv[1:]))"
    first = subprocess.Popen([sys.executable, "-c", code, *tiny_train_args(run)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert flag.exists(), first.communicate()[1][-2000:]
        assert _main(tiny_train_args(run, "optim.lr=0.5")) == 2  # the second run, in this process
        assert_refused(capsys.readouterr().err, "being written by another fasterpose run",
                       "another folder")
    finally:
        go.touch()
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert "optim:\n  lr: 0.5" not in (run / "config.yaml").read_text()  # the second run's config never landed
    assert _epoch(run / "last.pt") == 2
