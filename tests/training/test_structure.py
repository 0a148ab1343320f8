"""training/ reads top to bottom: no import circle (function-local imports included), and the
modules of training and the command line stay small (STYLE 7: ~400 lines, ~60 per function)."""

from __future__ import annotations

import ast
from pathlib import Path

import napari_cliprl

PACKAGE = Path(napari_cliprl.__file__).parent
TRAINING = PACKAGE / "training"
OWNED = [
    *TRAINING.glob("*.py"),
    PACKAGE / "cli.py",
    *(PACKAGE / "_commands").glob("*.py"),
    PACKAGE / "annotation" / "finetune_job.py",
]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (absolute names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: from the package of ``path``
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
                base = ".".join(parts[: -node.level] + (node.module,))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_training_has_no_import_circle():
    modules = {f"napari_cliprl.training.{p.stem}": p for p in TRAINING.glob("*.py")}
    modules.pop("napari_cliprl.training.__init__")
    graph = {name: _imports(path) & set(modules) for name, path in modules.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
    # the old circle: finetune -> phases -> setup -> finetune
    assert "napari_cliprl.training.finetune" not in graph["napari_cliprl.training.setup"]
    assert "napari_cliprl.training.finetune" not in graph["napari_cliprl.training.phases"]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_modules_and_functions_stay_small():
    too_long = []
    for path in OWNED:
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.name}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, too_long
