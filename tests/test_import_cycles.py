"""No import cycle among azjobs' modules, counting the imports inside functions too.

Each module's imports are read with ast, at module level and inside functions and classes alike; only
those under `if TYPE_CHECKING:` are left out (they never run). A name imported from a package counts
as an import of the module that the package's `__init__` takes it from (its re-export, static or
through a lazy `__getattr__`), so a package re-exporting its own modules makes no cycle; any other
cycle fails, with its modules named.
"""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import azjobs

PACKAGE_DIR = Path(azjobs.__file__).parent


def module_files() -> dict[str, Path]:
    """Every azjobs module by its dotted name (a package by its own name, for its __init__.py)."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = ("azjobs", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = module_files()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imported_from(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module if is_package(module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module anywhere in it, except under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def reexport(package: str, name: str) -> str | None:
    """The module `package`'s __init__ takes `name` from, if it re-exports it (statically or lazily)."""
    tree = TREES[package]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            source = imported_from(package, node)
            return f"{source}.{name}" if f"{source}.{name}" in MODULES else source
    lazy = any(isinstance(node, ast.FunctionDef) and node.name == "__getattr__" for node in tree.body)
    if not lazy:
        return None
    try:
        found = getattr(importlib.import_module(package), name)
    except AttributeError:
        return None
    origin = found.__name__ if isinstance(found, types.ModuleType) else getattr(found, "__module__", None)
    return origin if origin in MODULES else None


def import_graph() -> dict[str, set[str]]:
    """module -> the azjobs modules it imports."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for module, tree in TREES.items():
        for node in imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = imported_from(module, node)
                targets = []
                for alias in node.names:
                    if f"{source}.{alias.name}" in MODULES:
                        targets.append(f"{source}.{alias.name}")
                    elif source in MODULES and is_package(source):
                        targets.append(reexport(source, alias.name) or source)
                    else:
                        targets.append(source)
            graph[module].update(t for t in targets if t in MODULES and t != module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for after in sorted(graph[node]):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def path_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the component's first module, as the modules along it."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for after in sorted(graph[node] & members):
            if after == start:
                return paths[node] + [start]
            if after not in paths:
                paths[after] = paths[node] + [after]
                todo.append(after)
    return component


def test_the_graph_sees_lazy_imports_and_reexports() -> None:
    graph = import_graph()
    assert "azjobs.run" in graph["azjobs.players.load"]  # a function-level import
    assert "azjobs.search.mcts" in graph["azjobs.players.network"]  # `from azjobs.search import best_actions`
    assert "azjobs.players.load" in graph["azjobs.jobs.evaluate"]  # `make_player`, re-exported lazily
    assert "azjobs.settings" not in graph["azjobs.net.model"]  # only under TYPE_CHECKING there


def test_azjobs_has_no_import_cycle() -> None:
    graph = import_graph()
    found = [" -> ".join(path_within(graph, component)) for component in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_search_and_the_settings_stay_apart() -> None:
    """The search takes its own configs (not even a type of the settings); the settings package imports
    only leaves: errors and the player specs (for eval_opponents); Redis, files and games are the run's."""
    for module in (m for m in MODULES if m.startswith("azjobs.search")):
        named = {
            imported_from(module, n) if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(TREES[module])
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names
        }
        assert not any(name.startswith("azjobs.settings") for name in named), module
    graph = import_graph()
    allowed = {"azjobs.errors", "azjobs.players.specs"}
    for module in (m for m in MODULES if m == "azjobs.settings" or m.startswith("azjobs.settings.")):
        outside = {m for m in graph[module] if not m.startswith("azjobs.settings")}
        assert outside <= allowed, (module, outside - allowed)
    assert graph["azjobs.players.specs"] == set()  # a leaf itself
