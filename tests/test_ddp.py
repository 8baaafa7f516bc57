"""Two Gloo processes under torchrun + DistributedDataParallel on CPU == one process with the same global batch.

Why ``train.freeze_bn``: with BatchNorm in training mode each rank normalises with the statistics of its own
half-batch, which is a different function from normalising with the whole batch, so the two runs would
legitimately differ. torch's SyncBatchNorm (``train.sync_bn``) only runs on GPUs, so on CPU the comparison keeps
BatchNorm in eval mode (its affine parameters still train). Everything else is per-sample: the sharded sampler
gives each rank half of exactly the global batch the single process sees, DDP averages the gradients and the
loss is a mean, so the runs differ only by floating-point summation order (all-reduce vs one batch).

Optimizer: SGD (lr 0.05, gradient norm clipped to 1). Without BN statistics the from-scratch ResNet is badly
conditioned at first, and Adam's per-parameter normalisation amplifies round-off on parameters with near-zero
gradients (we measured up to ~6e-3 differences with Adam, the size of the updates themselves), which would
test Adam's sensitivity rather than DDP. With SGD the update is linear in the gradient.

Tolerance, from the arithmetic (not from one CPU): each step's gradient of a weight is a float32 sum over the batch and
the feature map; the largest sums are conv1's, 4 samples x 32x32 positions = n = 4096 terms at the 64x64 input. DDP
adds the two half-batch sums in another order, which changes a sum by at most n * u = 2.4e-4 of its absolute terms
(u = 2^-24, the float32 unit round-off; the statistical estimate for random rounding is sqrt(n) * u = 3.8e-6). The
gradient is clipped to norm 1, so each entry is at most 1, and an SGD step (lr 0.05) moves a parameter by lr * g: over
8 steps the runs may drift apart by 8 * 0.05 * 2.4e-4 = 9.8e-5 in the worst case (about 1.5e-6 typically). Hence
TOLERANCE = 1e-4. Measured: 2e-9 to 1.8e-6 on AVX-512 and AVX2 CPUs (other oneDNN kernels, other blocking),
all inside it. A real bug (gradients summed instead of averaged, a rank seeing the wrong samples) moves parameters by
the size of the updates themselves, and the test requires the runs to have moved by more than 10 * TOLERANCE
(measured: 1.5e-3). (The per-epoch losses in the two histories differ: rank 0 logs the loss of its own half-batch.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _engine_utils import TINY, load_weights, max_abs_diff, restore_torch_state, tiny_config

from fasterpose.cli import main
from fasterpose.engine.trainer import train

SETTINGS = ["train.epochs=2", "train.freeze_bn=true", "train.val_every=2", "train.flip_test=true", "optim.name=sgd",
            "optim.lr=0.05", "optim.grad_clip=1.0"]
TOLERANCE = 1e-4  # see the module docstring: 8 steps x lr 0.05 x n u (n = 4096 terms, u = 2^-24)


@pytest.mark.slow
def test_torchrun_two_gloo_ranks_match_one_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    opts = [*TINY, *SETTINGS, "train.batch_size=2"]  # 2 per rank x 2 ranks = global batch 4
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fasterpose.cli", "train", "synthetic_fasterpose_r18", "--device", "cpu", "--out", str(ddp_dir)]
    for o in opts:
        cmd += ["--opt", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "process group: gloo, 2 processes" in proc.stderr
    assert proc.stderr.count("training set:") == 1  # only rank 0 logs

    with restore_torch_state():
        single = train(tiny_config(*SETTINGS, "train.batch_size=4"), out=single_dir, device="cpu")
    ddp_ckpt, single_ckpt = (load_weights(d / "last.pt") for d in (ddp_dir, single_dir))
    import torch

    ddp_meta = torch.load(ddp_dir / "last.pt", weights_only=False)
    assert ddp_meta["step"] == single.iterations and ddp_meta["sampler"]["world_size"] == 2
    diff = max_abs_diff(ddp_ckpt, single_ckpt)
    assert diff < TOLERANCE
    changed = max_abs_diff(single_ckpt, load_weights_at_init())
    assert changed > 10 * TOLERANCE  # the runs really trained (measured 1.5e-3), so a real bug would show

    # distributed validation gathered every person, in dataset order, like a single-process evaluation
    ddp_results = json.loads((ddp_dir / "val_results.json").read_text())
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ddp_dir / "last.pt"), "--json", "--results",
                 str(tmp_path / "single_eval.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    single_results = json.loads((tmp_path / "single_eval.json").read_text())
    assert report["num_persons"] > 0 and len(ddp_results) == len(single_results)
    assert [r["image_id"] for r in ddp_results] == [r["image_id"] for r in single_results]
    ap_ddp = ddp_meta["history"][-1]["AP"]
    # Same weights, same crops, same single-threaded kernels per sample: the predictions agree to round-off, far
    # below what moves an OKS match across a threshold; AP is then the same number from the same matches.
    assert abs(ap_ddp - report["stats"]["AP"]) < 1e-6


def load_weights_at_init() -> dict:
    from fasterpose.engine.trainer import build_model, configure_torch

    cfg = tiny_config(*SETTINGS)
    with restore_torch_state():
        configure_torch(cfg, __import__("torch").device("cpu"))
        return build_model(cfg).state_dict()
