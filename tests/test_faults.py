"""Classes of fault a new user's probe found (issue 19), one table-driven test per class, each case fast:

- data loss: a command that writes a folder never replaces or removes files it did not write there;
- hangs: a FIFO where a file is read, YAML built to expand without end: refused at once;
- tracebacks from values: wrong-typed model options, seeds out of range, invalid YAML in options, counts and rates
  out of range, ``None`` given to a public class: a message naming the value, exit 2;
- silent wrong results: a training file check-data refuses, a run ending with non-finite weights: errors.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hostile import COCO_ANN, PEOPLE, assert_exit, assert_refused, digest, run_cli, tiny_train_args

from fasterpose.cli import main
from fasterpose.errors import ConfigError
from fasterpose.io_utils import read_image

SYNTH = ["--images", "2", "--size", "64x64"]


# --- data loss: only what fasterpose wrote is replaced -------------------------------------------------------------

@pytest.mark.parametrize("mine", ["images/000001.jpg", "person_keypoints.json", "person_detections.json", "fifo"])
def test_synth_never_replaces_a_users_files(tmp_path: Path, mine: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``fasterpose synth OUT`` where OUT holds the user's own files of the names it writes: refused, naming them,
    nothing changed (a FIFO is not even opened)."""
    out = tmp_path / "data"
    (out / "images").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    if mine == "fifo":
        mine = "person_keypoints.json"
        os.mkfifo(out / mine)
    else:
        (out / mine).write_bytes(b"the user's own file")
    before = digest(out)
    assert main(["synth", str(out), *SYNTH]) == 2
    assert_refused(capsys.readouterr().err, mine, "did not record writing there", "Nothing was written")
    assert digest(out) == before


def test_synth_keeps_other_files_and_replaces_only_its_own(tmp_path: Path) -> None:
    """The user's other files in OUT stay; a second dataset (--overwrite) replaces and removes only images the first
    one wrote."""
    out = tmp_path / "data"
    (out / "images").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "images" / "999999.jpg").write_bytes(b"the user's photo")
    assert main(["synth", str(out), "--images", "3", "--size", "64x64"]) == 0
    assert main(["synth", str(out), "--images", "1", "--size", "64x64", "--seed", "4", "--overwrite"]) == 0
    names = set(digest(out))
    assert {"notes.txt", "images/999999.jpg", "images/000000.jpg"} <= names
    assert "images/000002.jpg" not in names  # the first dataset's own extra image is gone
    assert (out / "images" / "999999.jpg").read_bytes() == b"the user's photo"


def test_resume_into_another_runs_folder_is_refused(tiny_run: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    (other / "last.pt").write_bytes(b"another run's checkpoint")
    before = digest(other)
    args = tiny_train_args(other)
    args[args.index("--out"):args.index("--out")] = ["--resume", str(tiny_run / "last.pt")]
    assert main(args) == 2
    assert_refused(capsys.readouterr().err, "holds another run", "last.pt", "nothing was written")
    assert digest(other) == before


@pytest.mark.parametrize("name", ["config.yaml", "metrics.csv", "train.log"])
def test_a_new_run_never_replaces_a_users_file(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("the user's own")
    assert main(tiny_train_args(out)) == 2
    assert_refused(capsys.readouterr().err, name, "would be replaced")
    assert sorted(digest(out)) == [name] and (out / name).read_text() == "the user's own"


def test_distill_never_replaces_a_users_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    assert main(["distill", str(PEOPLE / "messi5.jpg"), "--teacher", "x.pth", "--full-image", "--out", str(out)]) == 2
    assert_refused(capsys.readouterr().err, "report.json", "would be replaced")
    assert (out / "report.json").read_text() == "{}"


@pytest.mark.parametrize("name", ["report.json", "people/messi5.jpg"])
def test_demo_never_replaces_a_users_file(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    (out / "people").mkdir(parents=True)
    (out / name).write_text("the user's own")
    before = digest(out)
    assert main(["demo", "--out", str(out), "--minutes", "0.01"]) == 2
    assert_refused(capsys.readouterr().err, name, "would be replaced")
    assert digest(out) == before


# --- hangs: refused at once -----------------------------------------------------------------------------------------

_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, n in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("case", ["config_fifo", "annotation_fifo", "results_fifo", "boxes_fifo", "distill_input_fifo",
                                  "config_bomb", "opt_bomb", "student_opt_bomb", "self_alias"])
def test_inputs_that_would_hang_are_refused_at_once(tmp_path: Path, tiny_model: Path, case: str) -> None:
    fifo = tmp_path / "input.json"
    os.mkfifo(fifo)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_BOMB)
    onnx = str(tiny_model.with_suffix(".onnx"))
    args, needle = {
        "config_fifo": (["train", str(fifo), "--out", str(tmp_path / "r")], "not a regular file"),
        "annotation_fifo": (["check-data", str(fifo)], "not a regular file"),
        "results_fifo": (["eval-results", str(COCO_ANN), str(fifo)], "not a regular file"),
        "boxes_fifo": (["predict", str(PEOPLE / "messi5.jpg"), "--onnx", onnx, "--boxes", str(fifo), "--out",
                        str(tmp_path / "p")], "not a regular file"),
        "distill_input_fifo": (["distill", str(fifo), "--teacher", str(tiny_model), "--full-image", "--out",
                                str(tmp_path / "d")], "not a regular file"),
        "config_bomb": (["train", str(bomb), "--out", str(tmp_path / "r")], "expand to more than"),
        "opt_bomb": (["train", "synthetic_fasterpose_r18", "--out", str(tmp_path / "r"), "--opt",
                      "model.kwargs=" + _BOMB.replace("\n", ", ").join("{}")], "expand to more than"),
        "student_opt_bomb": (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", str(tmp_path / "d"),
                              "--student-opt", "k=" + _BOMB.replace("\n", ", ").join("{}")], "expand to more than"),
        "self_alias": (["train", "synthetic_fasterpose_r18", "--out", str(tmp_path / "r"), "--opt",
                        "model.kwargs=&a {k: *a}"], "refers to the node that contains it"),
    }[case]
    proc = run_cli(args, timeout=120)
    assert_exit(proc, 2, needle)
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


def test_an_image_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """``io_utils.read_image``, which training, calibration and export's --eval read images with: a FIFO named like
    an image is refused (in a subprocess with a timeout: a regression would hang, not fail, in-process)."""
    import subprocess
    import sys

    os.mkfifo(tmp_path / "photo.jpg")
    code = ("import sys\nfrom fasterpose.io_utils import read_image\nfrom fasterpose.errors import DataError\n"
            "try:\n    read_image(sys.argv[1])\nexcept DataError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "photo.jpg")], capture_output=True, text=True,
                          timeout=60)
    assert "photo.jpg is not a regular file" in proc.stdout, proc.stderr[-2000:]
    assert read_image(PEOPLE / "messi5.jpg").shape[2] == 3 and read_image(tmp_path / "none.jpg") is None


# --- tracebacks from values: a message naming the value, exit 2 -------------------------------------------------------

@pytest.mark.parametrize("args, needles", [
    (["train", "synthetic_fasterpose_r18", "--opt", "model.kwargs={head_channels: '8'}"], ["head_channels", "'8'"]),
    (["train", "synthetic_fasterpose_r18", "--opt", "model.kwargs={head_channels: 1.5}"], ["head_channels", "1.5"]),
    (["train", "synthetic_fasterpose_r18", "--opt", "model.kwargs={num_keypoints: 5}"], ["num_keypoints", "model"]),
    (["train", "synthetic_fasterpose_r18", "--opt", "model.kwargs=[1]"], ["model.kwargs", "[1]"]),
    (["train", "synthetic_fasterpose_r18", "--opt", "train.seed=4294967296"], ["train.seed", "4294967296"]),
    (["train", "synthetic_fasterpose_r18", "--opt", "train.seed=-1"], ["train.seed", "-1"]),
    (["train", "synthetic_fasterpose_r18", "--opt", "optim.lr=1e300"], ["optim.lr", "1e+300"]),
    (["synth", "OUT", "--seed", "4294967296"], ["--seed", "4294967296"]),
    (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", "d", "--seed", "-1"], ["--seed", "-1"]),
    (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", "d", "--lr", "inf"], ["--lr", "inf"]),
    (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", "d", "--finetune-lr", "nan"],
     ["--finetune-lr", "nan"]),
    (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", "d", "--batch-size", "0"],
     ["--batch-size", "0"]),
    (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", "d", "--threads", "100000"],
     ["--threads", "100000", "1024"]),
    (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", "d", "--frame-step", "0"],
     ["--frame-step", "0"]),
    (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", "d", "--student-opt", "k=[1"],
     ["--student-opt", "not valid YAML"]),
    (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", "d", "--student-opt", "output_stride=16",
      "--student-opt", "output_stride=32"], ["output_stride", "given twice"]),
    (["distill", "x.jpg", "--teacher", "t.pth", "--full-image", "--out", "d", "--student-opt", "head_channels=x"],
     ["head_channels", "'x'"]),
    (["check-data", "a.json", "--decode", "-1"], ["--decode", "-1"]),
    (["bench", "--threads", "0"], ["--threads", "0"]),
    (["predict", "x.jpg", "--threads", "99999"], ["--threads", "99999"]),
    (["export", "--checkpoint", "c.pth", "--out", "m.onnx", "--calib-size", "0"], ["--calib-size", "0"]),
    (["info", "fasterpose_r18", "--num-keypoints", "x"], ["--num-keypoints", "'x'"]),
])
def test_bad_values_are_a_message_not_a_traceback(tmp_path: Path, args: list[str], needles: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(tmp_path / "out") if a in ("OUT", "d") else a for a in args]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "run")]
    assert main(args) == 2
    assert_refused(capsys.readouterr().err, *needles)
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_none_given_to_a_public_class_is_named() -> None:
    import fasterpose
    from fasterpose.keypoints import KeypointSet, get_keypoint_set
    from fasterpose.spec import PoseSpec

    for call in (lambda: fasterpose.Predictor(None), lambda: fasterpose.Pipeline(None),
                 lambda: fasterpose.OnnxDetector(None), lambda: KeypointSet(None, None, None, None, None, None),
                 lambda: get_keypoint_set(None), lambda: fasterpose.create_model("fasterpose_r18", num_keypoints=None)):
        with pytest.raises(ConfigError, match="None"):
            call()
    with pytest.raises(ValueError, match="mapping"):
        PoseSpec.from_dict(None)


# --- silent wrong results: errors instead ------------------------------------------------------------------------

@pytest.mark.parametrize("damage, code", [("duplicate_image_id", "duplicate-image-id"),
                                          ("unknown_image", "unknown-image"), ("bad_keypoints", "bad-keypoints")])
def test_train_refuses_at_start_what_check_data_refuses(tmp_path: Path, damage: str, code: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A COCO file check-data reports errors in: train refuses it before writing anything (it used to train on it
    and fail, or score wrongly, at its first validation)."""
    data = json.loads(COCO_ANN.read_text())
    if damage == "duplicate_image_id":
        data["images"].append(dict(data["images"][0]))
    elif damage == "unknown_image":
        data["annotations"][0]["image_id"] = 987654321
    else:
        data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    run = tmp_path / "run"
    args = tiny_train_args(run, "data.dataset=coco", f"data.train_ann={ann}", f"data.val_ann={ann}",
                           f"data.train_images={COCO_ANN.parent}", f"data.val_images={COCO_ANN.parent}")
    assert main(args) == 2
    assert_refused(capsys.readouterr().err, "data.train_ann", code, "check-data")
    assert not run.exists()


def test_a_run_ending_with_non_finite_weights_is_an_error(tmp_path: Path) -> None:
    """The last update makes the weights NaN (the loss before it was finite): exit 2 with a message, and no
    checkpoint with those weights is written."""
    run = tmp_path / "run"
    prelude = ("import torch\n_step = torch.optim.Adam.step\n"
               "def _nan_step(self, *a, **k):\n    out = _step(self, *a, **k)\n"
               "    with torch.no_grad():\n        self.param_groups[0]['params'][0].fill_(float('nan'))\n"
               "    return out\ntorch.optim.Adam.step = _nan_step\n")
    proc = run_cli(tiny_train_args(run, "train.max_iters=1"), prelude=prelude)
    assert_exit(proc, 2, "weights are not finite after iteration 1", "no checkpoint had been written")
    assert not (run / "last.pt").exists() and not (run / "best.pt").exists()
