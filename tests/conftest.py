"""Session-wide fixtures of the hostile-input tests: one tiny model (checkpoint and ONNX) and one tiny trained run,
built once and copied by the tests that change them."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``m.pth`` (random fasterpose_shufflev2 weights at 128x96, inference-only) and ``m.onnx`` beside it."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from fasterpose import create_model
    from fasterpose.checkpoint import save_checkpoint
    from fasterpose.deploy.export import export_onnx
    from fasterpose.spec import PoseSpec

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_model")
    spec = PoseSpec(model_name="fasterpose_shufflev2", input_size=(128, 96), codec={"input_size": [128, 96]})
    save_checkpoint(folder / "m.pth", {"spec": spec, "model": create_model("fasterpose_shufflev2").state_dict(),
                                       "config": None})
    export_onnx(folder / "m.pth", folder / "m.onnx", dynamic_batch=True)
    return folder / "m.pth"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run of the tiny synthetic config (``last.pt`` with its training config, 4 iterations)."""
    pytest.importorskip("torch")
    from _engine_utils import TINY, restore_torch_state

    from fasterpose.cli import main

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    args = ["train", "synthetic_fasterpose_r18", "--out", str(run), "--device", "cpu"]
    for o in TINY:
        args += ["--opt", o]
    with restore_torch_state():
        assert main(args) == 0
    return run
