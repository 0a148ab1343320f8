"""The plugin's code stays small and layered: no import cycle inside ``_napari``, no module
reaching into another's private names, modules under 400 lines and functions under 60."""

from __future__ import annotations

import ast
from pathlib import Path

import napari_cliprl._napari as plugin

ROOT = Path(plugin.__file__).parent
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def modules() -> dict[str, ast.Module]:
    """Dotted name inside ``_napari`` (``_sections.data``) -> parsed module."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return out


def local_imports(name: str, tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(imported module inside ``_napari``, names imported) for every import statement,
    function-local ones included."""
    package = name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif (node.module or "").startswith("napari_cliprl._napari."):
                target = node.module.removeprefix("napari_cliprl._napari.")
            else:
                continue
            names = [alias.name for alias in node.names]
            if not node.module and node.level:  # ``from . import x``: modules themselves
                found += [(f"{target}.{n}".lstrip("."), []) for n in names]
            else:
                found.append((target, names))
    return found


def test_no_import_cycle_inside_the_plugin():
    trees = modules()
    graph = {
        name: {t for t, _ in local_imports(name, tree) if t in trees and t != name}
        for name, tree in trees.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_no_module_imports_another_modules_private_names():
    for name, tree in modules().items():
        for target, names in local_imports(name, tree):
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{name} imports private {private} from {target}"


def test_modules_and_functions_stay_small():
    for path in ROOT.rglob("*.py"):
        lines = path.read_text().splitlines()
        assert len(lines) <= MAX_MODULE_LINES, f"{path.name}: {len(lines)} lines"
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.name}: {length} lines"
