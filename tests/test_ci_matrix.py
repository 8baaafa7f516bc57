"""The CI version matrix's inputs: the subset names tests that exist, and the environments follow pyproject."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _requirements_module():  # noqa: ANN202 - a module loaded from .ci/
    spec = importlib.util.spec_from_file_location("ci_requirements", ROOT / ".ci" / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_listed_test_exists() -> None:
    """A renamed test would stop the matrix with "not found" only after its installs: caught here, in seconds."""
    lines = [line.strip() for line in (ROOT / ".ci" / "matrix-tests.txt").read_text().splitlines()]
    ids = [line for line in lines if line and not line.startswith("#")]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    for node in ids:
        path, _, name = node.partition("::")
        assert re.search(rf"^def {re.escape(name)}\(", (ROOT / path).read_text(), re.M), node


def test_environments_follow_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    ci = _requirements_module()
    project = ci.tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {}
    for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
        name, specifier = ci._split(requirement)
        declared.setdefault(name, specifier)
    monkeypatch.delenv("FASTERPOSE_CI_OPENCV", raising=False)
    newest = dict(ci._split(r) for r, _ in ci.requirements("newest"))
    lowest = dict(ci._split(r) for r, _ in ci.requirements("lowest"))
    assert set(newest) == set(lowest) == set(declared) - {"ruff"}
    for name, specifier in declared.items():
        if name in ("ruff", "pytest"):
            continue
        assert newest[name] == specifier, name
        found = re.search(r">=\s*([\w.]+)", specifier)
        if found is None:  # no lower bound declared: left to pip, with a note
            assert lowest[name] == specifier, name
            continue
        bound, exception = found.group(1), ci.LOWEST_EXCEPTIONS.get(name)
        assert lowest[name] == f"=={exception[1] if exception and exception[0] == bound else bound}", name
    assert lowest["opencv-python-headless"] == "==4.8.0.76"  # 4.8.0.74 was yanked
    monkeypatch.setenv("FASTERPOSE_CI_OPENCV", "==5.1.0.95")
    assert "opencv-python-headless==5.1.0.95" in [r for r, _ in ci.requirements("newest")]
    assert ci._lower_bound(">=0.4.3,<1") == "0.4.3" and ci._lower_bound("") is None
