"""The ``fasterpose`` command. Each subcommand lives in ``fasterpose/commands/<name>.py`` and provides
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import heavy libraries (torch, onnxruntime)
inside ``run`` so that ``fasterpose --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

from . import __version__
from .errors import FasterPoseError, Stopped

# subcommand -> (module under fasterpose.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "end-to-end demo: synthetic data, train on CPU, official COCO eval, skeletons on real photos"),
    "info": ("info", "parameters, GMACs and output shape of a registered model"),
    "synth": ("synth", "write a synthetic COCO-format person keypoint dataset"),
    "check-data": ("check_data", "validate a COCO-format keypoint dataset before training on it"),
    "data": ("data", "download a dataset into the layout the configs read: data coco ROOT [--val-only]"),
    "train": ("train", "train a model from a YAML config (CPU, one GPU, or torchrun/DDP)"),
    "eval": ("evaluate", "evaluate a checkpoint (COCO OKS AP with pycocotools, or MPII PCKh)"),
    "eval-results": ("eval_results", "score an existing COCO keypoint-results json with pycocotools"),
    "export": ("export", "export a checkpoint to ONNX (optionally int8)"),
    "predict": ("predict", "predict poses on an image, folder, video or webcam and draw skeletons"),
    "bench": ("bench", "latency benchmark: PyTorch vs onnxruntime fp32 vs int8"),
    "distill": ("distill", "train a FasterPose student on a teacher's heatmaps, from unlabeled images or videos"),
    "weights": ("weights", "published weights by name: list them, or download one into the cache"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fasterpose",
        description="FasterPose: fast top-down 2D human pose estimation for CPUs. "
        "Run `fasterpose COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"fasterpose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"fasterpose.commands.{module_name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


_FS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


# Signals that stop a command the way Ctrl-C does: schedulers (Slurm, Kubernetes, docker stop, systemd) send SIGTERM,
# a closed terminal SIGHUP. SIGINT keeps Python's own handler (KeyboardInterrupt), or stays ignored when the command
# was started with it ignored (``nohup cmd &``, ``cmd &`` in a script): that user asked for Ctrl-C not to stop it.
STOP_SIGNALS = ("SIGTERM", "SIGHUP")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """While the context runs, SIGTERM and SIGHUP raise :class:`~fasterpose.errors.Stopped` (a KeyboardInterrupt) in
    the main thread, so every Ctrl-C path keeps what was finished and removes temporary files; the previous handlers
    come back at the end (``main`` is also called in-process, by tests and scripts).

    Yields the signals received (numbers), so that a command that kept its results and returned still exits with
    128 + the signal. A signal ignored when the command started (``nohup`` ignores SIGHUP) stays ignored; the first
    signal raises, later ones (a scheduler repeating SIGTERM) let the cleanup finish; a forked worker process
    (DataLoader) that inherits the handler ignores it: its parent stops it.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set in the main thread
        yield received
        return
    owner = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            return
        received.append(signum)
        if len(received) == 1:
            raise Stopped(signum)

    previous = {}
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)  # SIGHUP does not exist on Windows
        if signum is None or signal.getsignal(signum) == signal.SIG_IGN:
            continue
        previous[signum] = signal.signal(signum, handler)
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def stopped_status(signum: int) -> int:
    """The exit status of a command stopped by ``signum``: 128 + the signal's number, as a shell reports a process
    that a signal ended (130 for Ctrl-C's SIGINT, 143 for SIGTERM, 129 for SIGHUP)."""
    return 128 + int(signum)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or an option refused (exit 2 with argparse's message)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    status = 0
    try:
        with stop_on_signals() as received:
            status = _run(args)
    except Stopped:  # arrived after the command returned, before the handlers were restored
        pass
    if received and status != stopped_status(received[0]):  # the command kept its results and returned
        print(f"fasterpose {args.command}: stopped by {signal.Signals(received[0]).name}; what was finished is kept",
              file=sys.stderr)
        return stopped_status(received[0])
    return status


def _run(args: argparse.Namespace) -> int:
    """Run the command; a user's error, an interruption, no memory or a refused write become a message and a status."""
    try:
        return int(args._run(args) or 0)
    except FasterPoseError as e:
        print(f"fasterpose {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Stopped as e:
        print(f"fasterpose {args.command}: stopped by {e.name}; what was finished is kept", file=sys.stderr)
        return stopped_status(e.signum)
    except KeyboardInterrupt:
        print(f"fasterpose {args.command}: interrupted", file=sys.stderr)
        return stopped_status(signal.SIGINT)
    except (MemoryError, RuntimeError) as e:
        # PyTorch reports a failed allocation as a RuntimeError ("can't allocate memory"; CUDA: OutOfMemoryError)
        if isinstance(e, RuntimeError) and not (type(e).__name__ == "OutOfMemoryError"
                                                or "can't allocate memory" in str(e)):
            raise
        print(f"fasterpose {args.command}: error: ran out of memory; use smaller sizes or batches (e.g. --batch, "
              "--input-size, --num-keypoints, --size, train.batch_size) or a machine with more memory",
              file=sys.stderr)
        return 2
    except OSError as e:
        # The file system refused a write (disk full, file-size limit, read-only, no permission): the user's to fix,
        # so a message, not a traceback. The atomic writers have already removed their temporary files.
        if e.errno not in _FS_ERRNOS:
            raise
        where = f" {e.filename}" if e.filename else ""
        print(f"fasterpose {args.command}: error: could not write{where}: {e.strerror}; free some space or choose "
              "another output path (no half-written file was left)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
