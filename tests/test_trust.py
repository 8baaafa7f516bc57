"""Files from others run no code: every entry point that opens a model file refuses a pickle that would run a command
(the marker file it would create never appears, exit 2, the message names the file and the object, no traceback);
the objects published formats need are allowed by name; checkpoints of the old format still load; a model shared as
safetensors gives the checkpoint's keypoints; ONNX external data and detector zips cannot reach outside their
folder."""

from __future__ import annotations

import io
import json
import os
import random
import shlex
import stat
import sys
import types
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fasterpose import Predictor, create_model
from fasterpose.checkpoint import (
    ALLOWED_GLOBALS,
    SPEC_METADATA_KEY,
    load_checkpoint,
    read_torch_file,
)
from fasterpose.cli import main
from fasterpose.errors import CheckpointError
from fasterpose.models import model_from_checkpoint
from fasterpose.spec import MAX_SPEC_JSON_CHARS, PoseSpec

PEOPLE = Path(__file__).parent / "data" / "people"
IMAGE = PEOPLE / "messi5.jpg"


class RunsCode:
    """What a hostile file holds: unpickling it runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _hostile_copy(good: Path, out: Path, marker: Path) -> Path:
    """``good``'s checkpoint with one more entry whose unpickling would create ``marker``."""
    state = load_checkpoint(good)
    state["notes"] = RunsCode(marker)
    torch.save(state, out)
    return out


def _mmpose_keys() -> dict[str, torch.Tensor]:
    """An MMPose 0.x SimpleBaseline layout (keys only matter: the file is refused before they are read)."""
    keys = json.loads((Path(__file__).parent / "fixtures" / "mmpose0x_res50_coco_256x192.json").read_text())
    return {k: torch.zeros(1) for k in keys}


@pytest.fixture(scope="module")
def hostile(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    marker = folder / "MARKER"
    ours = _hostile_copy(tiny_model, folder / "shared.pt", marker)
    mmpose = folder / "res50_coco_256x192-ec54d7f3_20200709.pth"
    torch.save({"meta": {"mmpose_version": "0.29.0", "env": RunsCode(marker)}, "state_dict": _mmpose_keys()}, mmpose)
    return {"ours": ours, "mmpose": mmpose, "marker": marker, "good": tiny_model, "folder": folder}


def _cli(args: list[str]) -> None:
    assert main(args) == 2


ENTRY_POINTS = {
    "predict --checkpoint": lambda h, t: _cli(["predict", str(IMAGE), "--checkpoint", str(h["ours"]), "--full-image",
                                               "--out", str(t / "out")]),
    "predict --weights MMPose file": lambda h, t: _cli(["predict", str(IMAGE), "--weights", str(h["mmpose"]),
                                                        "--full-image", "--out", str(t / "out")]),
    "eval": lambda h, t: _cli(["eval", "--checkpoint", str(h["ours"]), "--device", "cpu"]),
    "export": lambda h, t: _cli(["export", "--checkpoint", str(h["ours"]), "--out", str(t / "m.onnx")]),
    "export safetensors": lambda h, t: _cli(["export", "--checkpoint", str(h["ours"]), "--out",
                                             str(t / "m.safetensors")]),
    "bench": lambda h, t: _cli(["bench", "--checkpoint", str(h["ours"]), "--input-size", "128x96", "--repeats", "1",
                                "--warmup", "0", "--backends", "torch"]),
    "train --resume": lambda h, t: _cli(["train", "--resume", str(h["ours"]), "--out", str(t / "run")]),
    "distill teacher": lambda h, t: _cli(["distill", str(IMAGE), "--teacher", str(h["ours"]), "--full-image",
                                          "--out", str(t / "d")]),
    "Predictor(path)": lambda h, t: Predictor(str(h["ours"])),
    "Predictor(MMPose file)": lambda h, t: Predictor(h["mmpose"]),
    "create_model(weights=)": lambda h, t: create_model("fasterpose_shufflev2", weights=h["ours"]),
    "create_model(pretrained=)": lambda h, t: create_model("fasterpose_shufflev2", pretrained=h["ours"]),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_no_entry_point_runs_code_from_a_file(entry: str, hostile: dict[str, Path], tmp_path: Path, capsys) -> None:
    call = ENTRY_POINTS[entry]
    if entry.startswith(("Predictor", "create_model")):
        with pytest.raises(CheckpointError) as info:
            call(hostile, tmp_path)
        message = str(info.value)
    else:
        call(hostile, tmp_path)
        message = capsys.readouterr().err
        assert "Traceback" not in message
    assert not hostile["marker"].exists()
    path = hostile["mmpose"] if "MMPose" in entry else hostile["ours"]
    assert str(path) in message and "system" in message and "refused" in message, message
    assert not any(p.name in ("out", "m.onnx", "m.safetensors", "run", "d") for p in tmp_path.iterdir())


def test_distill_resume_runs_no_code(hostile: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    out.mkdir()
    _hostile_copy(hostile["good"], out / "last.pt", hostile["marker"])
    assert main(["distill", str(IMAGE), "--teacher", str(hostile["good"]), "--full-image", "--out", str(out),
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert not hostile["marker"].exists() and str(out / "last.pt") in err and "Traceback" not in err


def test_refusal_names_the_object(tmp_path: Path) -> None:
    class_path = tmp_path / "obj.pt"
    torch.save({"x": types.SimpleNamespace(a=1)}, class_path)  # an ordinary class, not a function: still refused
    with pytest.raises(CheckpointError, match=r"asks to build types\.SimpleNamespace"):
        read_torch_file(class_path)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(class_path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="could not be read"):
        read_torch_file(damaged)


# --- what published formats need, allowed by name ------------------------------------------------------------------

def test_allowlist_is_the_documented_table() -> None:
    names = {g.name for g in ALLOWED_GLOBALS}
    assert {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
            "numpy.dtype", "mmengine.logging.history_buffer.HistoryBuffer"} <= names
    assert all(g.reason for g in ALLOWED_GLOBALS)
    choices = (Path(__file__).parents[1] / "docs" / "choices.md").read_text()
    assert "Loading files safely" in choices and "HistoryBuffer" in choices and "numpy.core.multiarray" in choices


class HistoryBuffer:
    """Pickled under MMEngine's name (``mmengine.logging.history_buffer``) without MMEngine installed."""

    def __init__(self) -> None:
        self.data = np.arange(3.0)


def test_mmpose_file_with_numpy_and_mmengine_objects_in_meta_loads(tmp_path: Path, monkeypatch) -> None:
    for name in ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["mmengine.logging.history_buffer"].HistoryBuffer = HistoryBuffer
    monkeypatch.setattr(HistoryBuffer, "__module__", "mmengine.logging.history_buffer")
    state = create_model("simplebaseline_r18").state_dict()  # MMPose 1.x's keys are ours: backbone.*, head.*
    meta = {"dataset_meta": {"sigmas": np.linspace(0.025, 0.1, 17, dtype=np.float32), "flip_indices": [0, 2, 1]},
            "seed": np.int64(7), "epoch": 210, "mmengine_version": "0.10.7"}
    path = tmp_path / "td-hm_res18_8xb64-210e_coco-256x192.pth"
    torch.save({"meta": meta, "state_dict": state, "message_hub": {"log_scalars": {"loss": HistoryBuffer()}}}, path)
    model, spec = model_from_checkpoint(path)
    assert spec.model_name == "simplebaseline_r18" and spec.input_size == (256, 192)
    assert torch.equal(model.head.final_layer.weight, state["head.final_layer.weight"])


# --- checkpoints of the old format (fasterpose 0.1.0, commit 8a36e8d) ----------------------------------------------

def _old_training_checkpoint(tiny_model: Path, path: Path, numpy1_names: bool) -> dict:
    """A training checkpoint laid out exactly as the trainer of 8a36e8d wrote it (``torch.save`` of this dict).

    The non-tensor objects in such a file were found with ``torch.serialization.get_unsafe_globals_in_checkpoint``
    on a real run of that commit (``fasterpose train synthetic_fasterpose_r18`` with tests/_engine_utils.py TINY):
    ``numpy.ndarray``, ``numpy.dtype`` and ``numpy._core.multiarray._reconstruct``, all from the NumPy RNG state;
    under NumPy 1 the last one is ``numpy.core.multiarray._reconstruct`` (``numpy1_names``).
    """
    ckpt = load_checkpoint(tiny_model)
    model = create_model("fasterpose_shufflev2")
    model.load_state_dict(ckpt["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.zeros(1, 3, 128, 96)).sum().backward()
    optimizer.step()
    np.random.seed(3)
    random.seed(4)
    old = {
        "format": "fasterpose-checkpoint/1", "fasterpose_version": "0.1.0", "spec": ckpt["spec"],
        "model": model.state_dict(), "config": {"model": {"name": "fasterpose_shufflev2"}, "train": {"seed": 0}},
        "epoch": 2, "step": 8, "best_ap": 0.0, "optimizer": optimizer.state_dict(),
        "scheduler": {"type": "function", "iteration": 8, "warmup_iters": 2, "lr": 7.6e-05}, "scaler": {},
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        "sampler": {"seed": 0, "epoch": 2, "samples_in_epoch": 0, "world_size": 1},
        "history": [{"epoch": 1, "step": 4, "lr": 0.0013, "loss": 0.32, "AP": 0.0}],
        "train_seconds": 2.04, "loss_sum": 0.0, "loss_count": 0,
    }
    torch.save(old, path)
    if numpy1_names:  # the same file as NumPy 1 writes it: only the module name of _reconstruct differs
        with zipfile.ZipFile(path) as zf:
            members = [(info, zf.read(info)) for info in zf.infolist()]
        with zipfile.ZipFile(path, "w") as zf:
            for info, data in members:
                if info.filename.endswith("data.pkl"):
                    assert b"numpy._core.multiarray" in data
                    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                zf.writestr(info, data)
    return old


@pytest.mark.parametrize("numpy1_names", [False, True], ids=["numpy2", "numpy1"])
def test_old_format_checkpoint_still_loads(numpy1_names: bool, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    old = _old_training_checkpoint(tiny_model, path, numpy1_names)
    got = load_checkpoint(path)
    assert got.keys() == old.keys() and got["history"] == old["history"]
    assert got["rng"]["python"] == old["rng"]["python"] and torch.equal(got["rng"]["torch"], old["rng"]["torch"])
    name, keys, pos, gauss, cached = got["rng"]["numpy"]
    assert name == "MT19937" and keys.dtype == np.uint32 and np.array_equal(keys, old["rng"]["numpy"][1])
    np.random.set_state(got["rng"]["numpy"])
    expected = np.random.rand(3)
    np.random.set_state(old["rng"]["numpy"])
    assert np.array_equal(expected, np.random.rand(3))  # the RNG continues exactly
    model, spec = model_from_checkpoint(path)
    assert spec.model_name == "fasterpose_shufflev2"
    assert all(torch.equal(v, old["model"][k]) for k, v in model.state_dict().items())


# --- safetensors --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("share") / "model.safetensors"
    assert main(["export", "--checkpoint", str(tiny_model), "--out", str(out)]) == 0
    return out


def test_safetensors_holds_no_pickle_and_the_spec(shared: Path, tiny_model: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(shared), framework="pt") as f:
        meta = f.metadata()
        assert meta["fasterpose_format"] == "fasterpose-safetensors/1" and meta["format"] == "pt"
        spec = PoseSpec.from_json(meta[SPEC_METADATA_KEY])
        assert spec.to_dict() == PoseSpec.from_dict(load_checkpoint(tiny_model)["spec"]).to_dict()
    assert b"\x80\x02" not in shared.read_bytes()[:64] and not zipfile.is_zipfile(shared)


def test_safetensors_gives_the_checkpoints_keypoints(shared: Path, tiny_model: Path, tmp_path: Path) -> None:
    image = cv2.imread(str(IMAGE))
    boxes = np.array([[150, 40, 200, 300, 0.9], [300, 60, 150, 280, 0.8]])
    expected = Predictor(tiny_model)(image, boxes)
    got = Predictor(str(shared))(image, boxes)
    assert all(np.array_equal(a["keypoints"], b["keypoints"]) for a, b in zip(expected, got))
    same = create_model("fasterpose_shufflev2", weights=shared)
    ref = model_from_checkpoint(tiny_model)[0].state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in same.state_dict().items())
    for flag, model in (("--checkpoint", tiny_model), ("--weights", shared)):
        assert main(["predict", str(IMAGE), flag, str(model), "--full-image", "--out", str(tmp_path / flag)]) == 0
    a, b = (json.loads((tmp_path / f / "results.json").read_text()) for f in ("--checkpoint", "--weights"))
    assert [r["keypoints"] for r in a] == [r["keypoints"] for r in b]


def _rewrite(shared: Path, out: Path, metadata: dict | None = None, tensors: dict | None = None) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(shared), framework="pt") as f:
        meta, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta.update(metadata or {})
    state.update(tensors or {})
    save_file(state, str(out), metadata={k: v for k, v in meta.items() if v is not None})
    return out


@pytest.mark.parametrize("case,expected", [
    ("too_long", "more than the"), ("not_json", "not a valid PoseSpec"), ("bad_spec", "input_size"),
    ("no_spec", "not one written by `fasterpose export`"), ("nan", "non-finite"), ("deep", "not a valid PoseSpec"),
    ("truncated", "could not be read as a safetensors")])
def test_safetensors_metadata_and_weights_are_checked(case: str, expected: str, shared: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad.safetensors"
    first_key = next(iter(create_model("fasterpose_shufflev2").state_dict()))
    edits = {
        "too_long": {"metadata": {SPEC_METADATA_KEY: " " * (MAX_SPEC_JSON_CHARS + 1)}},
        "not_json": {"metadata": {SPEC_METADATA_KEY: "{not json"}},
        "bad_spec": {"metadata": {SPEC_METADATA_KEY: json.dumps({"model_name": "fasterpose_shufflev2",
                                                                  "input_size": [-1, 96]})}},
        "no_spec": {"metadata": {SPEC_METADATA_KEY: None}},
        "nan": {"tensors": {first_key: torch.full_like(create_model("fasterpose_shufflev2").state_dict()[first_key],
                                                       float("nan"))}},
        "deep": {"metadata": {SPEC_METADATA_KEY: "[" * 100_000 + "]" * 100_000}},
    }
    if case == "truncated":
        out.write_bytes(shared.read_bytes()[:len(shared.read_bytes()) // 2])
    else:
        _rewrite(shared, out, **edits[case])
    with pytest.raises(CheckpointError, match=expected):
        model_from_checkpoint(out)
    with pytest.raises(CheckpointError, match=expected):
        Predictor(str(out))


def test_safetensors_export_refuses_onnx_options(tiny_model: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", "--checkpoint", str(tiny_model), "--out", str(tmp_path / "m.safetensors"), "--int8",
                 "--calib", str(PEOPLE)]) == 2
    assert "apply to an ONNX export" in capsys.readouterr().err and not (tmp_path / "m.safetensors").exists()
    assert main(["export", "--checkpoint", str(tiny_model), "--out", str(tmp_path / "m.pt")]) == 2
    assert ".safetensors" in capsys.readouterr().err


# --- ONNX from others ---------------------------------------------------------------------------------------------

@pytest.fixture()
def external_onnx(tiny_model: Path, tmp_path: Path) -> Path:
    """The tiny model's ONNX export with its weights in ``weights.bin`` beside it (external data)."""
    onnx = pytest.importorskip("onnx")
    folder = tmp_path / "model"
    folder.mkdir()
    proto = onnx.load(str(tiny_model.with_suffix(".onnx")))
    onnx.save_model(proto, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    return folder / "m.onnx"


def _relocate(path: Path, location: str) -> None:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, str(path))


def test_onnx_external_data_inside_its_folder_runs(external_onnx: Path, tiny_model: Path) -> None:
    image = cv2.imread(str(IMAGE))
    box = np.array([[150, 40, 200, 300]])
    got = Predictor(external_onnx)(image, box)[0]["keypoints"]
    ref = Predictor(tiny_model.with_suffix(".onnx"))(image, box)[0]["keypoints"]
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_onnx_external_data_outside_its_folder_is_refused(how: str, external_onnx: Path, tmp_path: Path,
                                                          monkeypatch) -> None:
    import onnxruntime

    outside = tmp_path / "secret.bin"
    outside.write_bytes((external_onnx.parent / "weights.bin").read_bytes())  # readable, would even "work"
    location = {"absolute": str(outside), "dotdot": "../secret.bin", "symlink": "link.bin"}[how]
    if how == "symlink":
        (external_onnx.parent / "link.bin").symlink_to(outside)
    _relocate(external_onnx, location)
    opened = []
    real = onnxruntime.InferenceSession
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda *a, **k: opened.append(a) or real(*a, **k))
    with pytest.raises(CheckpointError, match=f"keeps its data in .*{location.rsplit('/', 1)[-1]}.*outside the "
                                              "model's folder"):
        Predictor(external_onnx)
    assert not opened  # refused before onnxruntime saw the file


def test_onnx_spec_metadata_is_limited_and_validated(tiny_model: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    for text, expected in ((" " * (MAX_SPEC_JSON_CHARS + 1), "characters long"),
                           ("[" * 50_000 + "]" * 50_000, "not a valid PoseSpec"),
                           (json.dumps({"model_name": "x", "input_size": [128, 96], "codec": [1]}), "codec"),
                           (json.dumps([1, 2]), "not a valid PoseSpec")):
        proto = onnx.load(str(tiny_model.with_suffix(".onnx")))
        next(p for p in proto.metadata_props if p.key == SPEC_METADATA_KEY).value = text
        path = tmp_path / "m.onnx"
        onnx.save(proto, str(path))
        with pytest.raises(CheckpointError, match=expected):
            Predictor(path)


# --- detector zips ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["symlink", "fifo", "char_device"])
def test_detector_zip_with_special_member_is_refused(kind: str, tmp_path: Path) -> None:
    from fasterpose.detect.zoo import extract_onnx
    from fasterpose.hub import DownloadError

    mode, said = {"symlink": (stat.S_IFLNK, "a symbolic link"), "fifo": (stat.S_IFIFO, "a FIFO"),
                  "char_device": (stat.S_IFCHR, "a character device")}[kind]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("det/end2end.onnx", b"onnx bytes")
        info = zipfile.ZipInfo("det/pipeline.json")
        info.create_system = 3
        info.external_attr = (mode | 0o777) << 16
        zf.writestr(info, b"/etc/passwd")
    path = tmp_path / "det.zip"
    path.write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match=f"'det/pipeline.json' is {said}, not a file"):
        extract_onnx(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.zip"]


def test_plain_zip_members_still_extract(tmp_path: Path) -> None:
    from fasterpose.detect.zoo import extract_onnx

    path = tmp_path / "det.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("det/end2end.onnx")
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        zf.writestr(info, b"onnx bytes")
        zf.writestr("det/", b"")
    assert extract_onnx(path).read_bytes() == b"onnx bytes"

