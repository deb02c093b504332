"""The package's layering: stages import only earlier stages, and nothing imports in a cycle.

Every ``import`` and ``from ... import`` inside the package is read with :mod:`ast`, at
module level and inside functions alike (a lazy import is still a dependency), and
checked against the layer order

    {errors, aami, progress, files} < signal < model < store < label < evaluation
    < {plots, cli, server, __init__, __main__}

Inside a layer any import is allowed as long as there is no cycle (e.g. in signal:
records < filtering < detection < beats). Evaluation is imported by nothing but the
command line, and so is the server (``simsearch serve``), which uses every stage but
evaluation. No TensorFlow, no data: this runs in well under a second.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import simsearch

PACKAGE = Path(simsearch.__file__).resolve().parent
NAME = PACKAGE.name

LAYERS = [
    {"errors", "aami", "progress", "files"},
    {"signal"},
    {"model"},
    {"store"},
    {"label"},
    {"evaluation"},
    {"plots", "cli", "server", "__init__", "__main__"},
]
"""Top-level modules and subpackages of simsearch, lowest first."""


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages as their __init__)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> set[tuple[str, int]]:
    """(imported module of the package, line) for every import in ``path``, at any depth."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            # ``from . import x`` names a module; ``from .a import f`` names only ``.a``
            if name in known and name != module and not module.startswith(name + "."):
                edges.add((name, node.lineno))
    return edges


def unit(module: str) -> str:
    """The top-level module or subpackage a module belongs to (``simsearch.signal.beats`` -> ``signal``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> int:
    name = unit(module)
    for i, members in enumerate(LAYERS):
        if name in members:
            return i
    raise AssertionError(f"{module}: {name} is in no layer; add it to LAYERS in {__file__}")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[tuple[str, int]]]:
    found = modules()
    return {m: imports(m, p, set(found)) for m, p in found.items()}


def test_the_walk_sees_module_and_function_level_imports(graph):
    # guards the test itself: cli imports most stages inside its commands only
    cli = {target for target, _ in graph[f"{NAME}.cli"]}
    assert f"{NAME}.label.query" in cli and f"{NAME}.store.index" in cli and f"{NAME}.errors" in cli
    assert f"{NAME}.signal.filtering" in {t for t, _ in graph[f"{NAME}.signal.beats"]}
    assert len(graph) > 30


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer(module)


def test_no_upward_import(graph):
    upward = [f"{m} (line {line}) imports {t}" for m, edges in graph.items() for t, line in edges
              if layer(t) > layer(m)]
    assert not upward, "imports against the layer order:\n" + "\n".join(sorted(upward))


def test_evaluation_is_imported_by_the_cli_only(graph):
    users = sorted({m for m, edges in graph.items() for t, _ in edges
                    if unit(t) == "evaluation" and unit(m) not in ("evaluation", "cli")})
    assert not users, f"evaluation imported by {users}"


def test_server_is_imported_by_the_cli_only_and_imports_no_evaluation(graph):
    users = sorted({m for m, edges in graph.items() for t, _ in edges
                    if unit(t) == "server" and unit(m) not in ("server", "cli")})
    assert not users, f"server imported by {users}"
    evaluation = sorted({f"{m} imports {t}" for m, edges in graph.items() for t, _ in edges
                         if unit(m) == "server" and unit(t) in ("evaluation", "plots", "cli")})
    assert not evaluation, evaluation


def test_no_import_cycle(graph):
    edges = {m: {t for t, _ in e} for m, e in graph.items()}
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_public_api_names_real_modules_of_the_top_layers():
    """``simsearch/__init__.py`` imports lazily by string: those strings are imports too."""
    found = modules()
    for name, module in simsearch._EXPORTS.items():
        assert module in found, f"{name}: no module {module}"
        assert unit(module) != "evaluation", f"{name} comes from evaluation"
