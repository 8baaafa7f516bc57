"""Checks on the JSON reports of the commands: the paths they name exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Keys whose values are files or folders a command wrote or read.
PATH_KEYS = {"path", "out", "checkpoint", "output_dir", "root", "images", "annotations", "detections", "val_picture",
             "val_annotations", "drawn_images"}


def report_paths(report: Any, key: str = "") -> Iterator[str]:
    """Every path in a report: the string values (or list items) of :data:`PATH_KEYS`, at any depth."""
    if isinstance(report, dict):
        for k, v in report.items():
            yield from report_paths(v, k)
    elif isinstance(report, list):
        for v in report:
            yield from report_paths(v, key)
    elif isinstance(report, str) and key in PATH_KEYS:
        yield report


def assert_paths_exist(report: Any) -> list[str]:
    paths = list(report_paths(report))
    missing = [p for p in paths if not Path(p).exists()]
    assert not missing, f"the report names files that do not exist: {missing}"
    return paths
