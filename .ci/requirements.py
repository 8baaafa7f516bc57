"""Print the requirements of one version-matrix environment, one per line, read from pyproject.toml.

    python3 .ci/requirements.py newest   # pyproject's own specifiers: pip picks the newest release each allows
    python3 .ci/requirements.py lowest   # each package pinned to the lower bound pyproject declares

Both take the runtime dependencies and the ``test`` extra (without ruff: the matrix runs no linter; pytest is a tool,
not a dependency, so it is the newest in both). Reading pyproject keeps the matrix in step with it: a dependency
added there (safetensors) is tested at its lower bound with no edit here.

``FASTERPOSE_CI_OPENCV`` (newest only), e.g. ``==5.1.0.95``, replaces OpenCV's specifier: it tests an OpenCV that
pyproject does not allow yet (its ``<5`` cap), to see what a user with OpenCV 5 meets.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip carries the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOT_IN_MATRIX = {"ruff"}
TOOLS = {"pytest"}  # newest in both environments
OPENCV = "opencv-python-headless"

# Where the lowest environment cannot use the declared lower bound itself: (bound in pyproject, version used, why).
# An entry applies only while pyproject still declares that bound.
LOWEST_EXCEPTIONS = {
    OPENCV: ("4.8", "4.8.0.76", "4.8.0.74, the first 4.8 release, was yanked ('deprecated, use 4.8.0.76'): pip "
                                "never installs it for '>=4.8'"),
}

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*(;.*)?$")


def _split(requirement: str) -> tuple[str, str]:
    match = _REQUIREMENT.match(requirement)
    if not match:
        sys.exit(f".ci/requirements.py: cannot read the requirement {requirement!r} in pyproject.toml")
    return match.group(1).lower().replace("_", "-"), match.group(3)


def _lower_bound(specifier: str) -> str | None:
    bounds = [s.strip()[2:].strip() for s in specifier.split(",") if s.strip().startswith(">=")]
    return bounds[0] if len(bounds) == 1 else None


def requirements(kind: str) -> list[tuple[str, str]]:
    """``(requirement, note)`` pairs for ``kind`` (``"newest"`` or ``"lowest"``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + list(project.get("optional-dependencies", {}).get("test", []))
    out: list[tuple[str, str]] = []
    seen = set()
    for requirement in wanted:
        name, specifier = _split(requirement)
        if name in NOT_IN_MATRIX or name in seen:
            continue
        seen.add(name)
        if name in TOOLS:
            out.append((name, "test tool: newest"))
        elif kind == "newest":
            forced = os.environ.get("FASTERPOSE_CI_OPENCV", "").strip()
            if name == OPENCV and forced:
                out.append((f"{name}{forced}", f"FASTERPOSE_CI_OPENCV replaces pyproject's {specifier!r}"))
            else:
                out.append((f"{name}{specifier}", ""))
        else:
            bound = _lower_bound(specifier)
            declared, used, why = LOWEST_EXCEPTIONS.get(name, (None, None, ""))
            if bound is None:  # nothing to pin to: said, so that a missing bound is seen
                out.append((f"{name}{specifier}", "pyproject declares no single '>=' lower bound: as pip resolves it"))
            elif declared == bound:
                out.append((f"{name}=={used}", f"not {bound}: {why}"))
            else:
                out.append((f"{name}=={bound}", ""))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("newest", "lowest"):
        sys.exit("usage: python3 .ci/requirements.py newest|lowest")
    for requirement, note in requirements(sys.argv[1]):
        if note:
            print(f"# {requirement}: {note}", file=sys.stderr)
        print(requirement)
