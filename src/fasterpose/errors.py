"""User-facing errors.

Anything raised as :class:`FasterPoseError` is shown by the command line as one clear message (what was wrong,
in which file or field, what to do) without a traceback. Internal bugs stay ordinary exceptions.
"""


class FasterPoseError(Exception):
    """An error caused by the user's input (a file, a field, a value), with a message that says what to do."""


class DataError(FasterPoseError, ValueError):
    """A dataset, annotation, detection or results file is malformed or inconsistent."""


class ConfigError(FasterPoseError, ValueError):
    """A configuration file or ``--opt`` override is invalid."""


class CheckpointError(FasterPoseError, ValueError):
    """A checkpoint or exported model does not fit what was asked of it."""


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by a signal (SIGTERM from a scheduler, ``docker stop`` or systemd; SIGHUP when
    its terminal closed). A :class:`KeyboardInterrupt`, so every path that keeps finished work on Ctrl-C (atomic
    writers removing their temporaries, predict's ``results_incomplete.json``) does the same for these signals."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = int(signum)
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")


def check_argument(ok: bool, call: str, value: object, expected: str) -> None:
    """Refuse a value of no use given to a public class or function (``Predictor(None)``, ``Pipeline(None)``) with a
    message naming the call, the value and what it takes, instead of an ``AttributeError`` from deep inside it.

    Raises:
        ConfigError: when ``ok`` is false.
    """
    if not ok:
        raise ConfigError(f"{call}: got {value!r} ({type(value).__name__}); expected {expected}")
