"""The value types of every command's numeric options, in one place: argparse ``type=`` functions that refuse a bad
value before any work, with a message naming the value and the range (argparse names the option and exits 2).

Every command uses them, so ``--threads 100000``, ``--lr inf``, ``--epochs 0`` or ``--seed -1`` are refused the same
way by ``train``, ``distill``, ``predict``, ``bench``... (issue 19). Config values (``--opt train.seed=...``) are
checked by the same ranges in :mod:`fasterpose.engine.config`.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

from ..cpu import MAX_THREADS
from ..engine.config import MAX_LR, MAX_SEED  # the same bounds as a config's values


def int_range(low: int, high: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """An option type: an integer in ``[low, high]`` (no upper bound when ``high`` is ``None``)."""
    bounds = f">= {low}" if high is None else f"between {low} and {high}"

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what} {bounds}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {what} {bounds}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(low: float | None = None, high: float | None = None, low_open: bool = False,
                high_open: bool = False) -> Callable[[str], float]:
    """An option type: a finite number in the range (NaN and infinity are never a valid setting)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    bounds = f"a finite number {' and '.join(parts)}".rstrip()

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text!r}") from None
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


#: counts of things to make or run (images, epochs, repetitions, batch sizes): at least one
positive_int = int_range(1)
#: counts where zero means "none" (warm-up rounds, fine-tuning epochs)
non_negative_int = int_range(0)
#: a duration, a factor: finite and > 0
positive_float = float_range(0.0, low_open=True)
#: a learning rate: > 0 and at most MAX_LR (1e6: far beyond, the optimizer's float32 overflows)
learning_rate = float_range(0.0, MAX_LR, low_open=True)
#: a score threshold: in [0, 1]
fraction = float_range(0.0, 1.0)
#: a generator seed
seed = int_range(0, MAX_SEED, "a seed")


def thread_count(text: str) -> int:
    """An option type: intra-op threads, 1 .. :data:`~fasterpose.cpu.MAX_THREADS` (beyond it OpenMP crashes the
    process or seems to hang)."""
    try:
        return int_range(1, MAX_THREADS, "a thread count")(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e} (this machine has {os.cpu_count()} logical CPUs; one thread per "
                                         "physical core is usually fastest)") from None


thread_count.__name__ = "integer"


def key_value(text: str) -> tuple[str, object]:
    """An option type: ``KEY=VALUE`` with a YAML value (``output_stride=16``, ``head_channels=128``)."""
    from ..errors import ConfigError
    from ..io_utils import load_yaml

    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. output_stride=16)")
    try:
        return key.strip(), load_yaml(value, f"the value of {key.strip()}")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def unique_keys(pairs: list[tuple[str, object]], option: str) -> dict[str, object]:
    """The ``KEY=VALUE`` pairs of a repeatable option as a dict; a key given twice is refused, not silently replaced.

    Raises:
        ConfigError: naming the option and the key.
    """
    from ..errors import ConfigError

    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ConfigError(f"{option} {key} is given twice ({out[key]!r} and {value!r}); give it once")
        out[key] = value
    return out
