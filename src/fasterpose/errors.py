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
