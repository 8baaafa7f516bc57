"""The package's import graph has no circle and no import climbs a floor: every module's imports (those inside
functions too, not those under ``if TYPE_CHECKING:``) are read with ``ast``; no module can reach itself through them,
and none imports a module of a higher floor (docs/design.md) without a reason written here."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"
PACKAGE = SRC / "fasterpose"

# Import edges a cycle may use, each with the reason it is acceptable. Empty: there is no circle to excuse.
ALLOWED_EDGES: dict[tuple[str, str], str] = {}

# The floors, lowest first: a module imports from its own floor or below. ``fasterpose`` itself (the package root,
# which imports lazily) is below all of them.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "io_utils", "keypoints", "geometry", "codec", "spec", "cpu", "hub", "checkpoint"),  # facts and files
    ("models", "losses", "data", "evaluation", "detect", "deploy", "visualize"),  # networks, data, inference
    ("engine", "video"),  # training, evaluation runs, video pipelines
    ("commands", "cli", "__main__"),  # the command line
)
# Imports that climb a floor, each with the reason. Empty: none does.
ALLOWED_CLIMBS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree``, at any depth, except in ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(unresolved: list[str] | None = None) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a ``from X import name`` that is a submodule counts as X.name).

    Imports of the package that name no module of it (``from .pck import x`` where there is no ``pck.py``) are
    appended to ``unresolved`` as ``"importer: target"``.
    """
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    root = PACKAGE.name
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
                named = targets
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in paths else module for a in node.names]
                named = [module]
            if unresolved is not None:
                unresolved += [f"{name}: {t}" for t in named if t.split(".")[0] == root and t not in paths]
            for target in targets:
                while target and target not in paths:  # "fasterpose.models.registry.create_model" -> the module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    for edge in ALLOWED_EDGES:
        graph[edge[0]].discard(edge[1])
    assert cycles(graph) == []


def test_every_import_of_the_package_names_one_of_its_modules() -> None:
    unresolved: list[str] = []
    import_graph(unresolved)
    assert unresolved == []  # e.g. "from .pck import pck" after pck.py moved to another folder


def _floor(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    for level, rooms in enumerate(FLOORS):
        if parts[1] in rooms:
            return level
    raise AssertionError(f"{module} is on no floor: add its room to FLOORS")


def test_no_import_climbs_a_floor() -> None:
    climbs = [f"{a} -> {b}" for a, targets in sorted(import_graph().items()) for b in sorted(targets)
              if _floor(b) > _floor(a) and (a, b) not in ALLOWED_CLIMBS]
    assert climbs == []


def test_the_checker_sees_a_cycle_and_function_level_imports() -> None:
    graph = import_graph()
    # imports inside functions are edges (models/published.py reads files through checkpoint.py inside a function)
    assert "fasterpose.checkpoint" in graph["fasterpose.models.published"]
    assert "fasterpose.models.registry" in graph["fasterpose.models"]  # from .registry import ... in __init__
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_are_not_edges() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\nelse:\n    import y\n"
                     "def f():\n    import z\n")
    names = [a.name for node in _imports(tree) if isinstance(node, ast.Import) for a in node.names]
    assert names == ["y", "z"]
