"""Shared helpers of the hostile-input tests (``tests/test_hostile_*.py``, issue 12): run a command the way a user
would (in-process through ``main`` or as a subprocess that can be signalled, killed or limited), and check that it
refused cleanly and left the user's folders as they were.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
PEOPLE = DATA / "people"
COCO_ANN = DATA / "coco_val2017_samples" / "person_keypoints.json"

# A hook run before ``main`` in a subprocess: makes a command signal itself at a chosen moment. ``AT`` is the call
# (1-based) of ``TARGET`` at which ``SIGNAL`` is sent to the process itself; for SIGKILL the call first does half of
# its work where that means something (a checkpoint file cut in half).
_SELF_SIGNAL = """
import functools, importlib, os, signal, sys
_m = importlib.import_module("{module}")
for _part in "{owner}".split(".") if "{owner}" else []:
    _m = getattr(_m, _part)
_real, _calls = getattr(_m, "{name}"), [0]
@functools.wraps(_real)
def _hooked(*a, **k):
    _calls[0] += 1
    if _calls[0] == {at}:
        {before}
        os.kill(os.getpid(), signal.{signal})
    return _real(*a, **k)
setattr(_m, "{name}", _hooked)
"""


def self_signal(target: str, at: int, signal: str, before: str = "pass") -> str:
    """Prelude for :func:`run_cli`: send ``signal`` (``"SIGINT"``, ``"SIGKILL"``) to the command's own process at the
    ``at``-th call of ``target`` (``"package.module:function"`` or ``"package.module:Class.method"``, replaced for
    the whole process); ``before`` is Python run just before the signal (``a``/``k`` are the call's arguments)."""
    module, qualname = target.split(":")
    owner, _, name = qualname.rpartition(".")
    return _SELF_SIGNAL.format(module=module, owner=owner, name=name, at=at, signal=signal, before=before)


def default_signals() -> None:
    """In a child process before it starts (``preexec_fn``): the signal dispositions a command gets from an interactive
    shell. A test suite started as a background job (``nohup pytest &``, ``pytest &`` in a script) runs with SIGINT
    ignored, and children inherit that: the tests that send SIGINT, SIGTERM or SIGHUP set what they rely on."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def run_cli(args: list[str], prelude: str = "", file_size_limit: int | None = None, wrapper: list[str] | None = None,
            cwd: Path | None = None, timeout: float = 300, ignore: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``fasterpose ARGS`` in a fresh Python (with this checkout's ``PYTHONPATH``), optionally after ``prelude``,
    under a file-size limit (``ulimit -f``: writes beyond it fail with EFBIG, like a full disk) or inside ``wrapper``
    (e.g. a mount namespace). The child starts with the default signal dispositions (:func:`default_signals`), except
    the signals named in ``ignore`` (``"SIGINT"``: as under ``nohup cmd &``). Returns the finished process (text
    output)."""
    code = f"{prelude}\nimport sys\nfrom fasterpose.cli import main\nsys.exit(main(sys.argv[1:]))"

    def limit() -> None:
        default_signals()
        for name in ignore:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    cmd = [*(wrapper or []), sys.executable, "-c", code, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit, cwd=cwd, timeout=timeout)


#: The ways :func:`damaged_checkpoint` damages a checkpoint.
CHECKPOINT_DAMAGES = ("garbage", "missing", "truncated", "onnx_file", "no_spec", "nan_weight")


def damaged_checkpoint(good: Path, damage: str, folder: Path) -> Path:
    """``folder/model.pth``: a copy of the checkpoint ``good`` damaged as a user's file can be.

    ``garbage``: not a checkpoint at all; ``missing``: not there; ``truncated``: a copy interrupted half-way;
    ``onnx_file``: the export beside ``good`` (``good.with_suffix(".onnx")``) given as the checkpoint; ``no_spec``:
    a checkpoint whose spec is invalid; ``nan_weight``: a NaN in one bias (the model would predict NaN keypoints).
    """
    ckpt = folder / "model.pth"
    if damage == "garbage":
        ckpt.write_bytes(b"garbage, not a checkpoint")
    elif damage == "truncated":
        data = good.read_bytes()
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "onnx_file":
        ckpt.write_bytes(good.with_suffix(".onnx").read_bytes())
    elif damage in ("no_spec", "nan_weight"):
        import torch

        state = torch.load(good, map_location="cpu", weights_only=False)
        if damage == "no_spec":
            state["spec"] = {"model_name": 3}
        else:
            name = [k for k in state["model"] if k.endswith("bias")][-1]
            state["model"][name][0] = float("nan")
        torch.save(state, ckpt)
    elif damage != "missing":
        raise ValueError(f"unknown damage {damage!r}; one of {CHECKPOINT_DAMAGES}")
    return ckpt


def digest(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones too): file contents by hash, symlinks by target, folders by name."""
    if not folder.exists():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        if p.is_symlink():
            out[key] = "-> " + os.readlink(p)
        elif p.is_file():
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[key] = "dir"
    return out


def assert_refused(err: str, *needles: str, out: str = "") -> None:
    """A clean refusal: every ``needle`` (a name, a value, an advice) is in the message, and no traceback."""
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    for needle in needles:
        assert needle in err, f"{needle!r} not in: {err[-2000:]}"


def assert_exit(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert_refused(proc.stderr, *needles, out=proc.stdout)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[list[str]]:
    """Make ``folder`` read-only for a subprocess; yields the ``wrapper`` to pass to :func:`run_cli`.

    A normal user gets ``chmod 555``. Root ignores permission bits, so there the command runs in a private mount
    namespace where ``folder`` is bind-mounted read-only (EROFS, as on a read-only disk); skipped where that is not
    allowed."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield []
        finally:
            folder.chmod(mode)
        return
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-m", "true"], capture_output=True) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("running as root (permission bits do not apply) and no mount namespace for a read-only mount")
    script = f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" && exec "$@"'
    yield [unshare, "-m", "sh", "-c", script, "sh"]


def tiny_train_args(out: Path, *overrides: str) -> list[str]:
    """``train`` arguments for the tiny synthetic run of ``_engine_utils.TINY`` (2 epochs of 2 iterations)."""
    from _engine_utils import TINY

    args = ["train", "synthetic_fasterpose_r18", "--out", str(out), "--device", "cpu"]
    for o in (*TINY, *overrides):
        args += ["--opt", o]
    return args
