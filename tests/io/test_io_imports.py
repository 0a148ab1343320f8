"""io stays on numpy, PIL, av and the standard library."""

import subprocess
import sys


def test_io_imports_no_torch_or_qt() -> None:
    code = (
        "import sys, napari_cliprl.io, napari_cliprl._commands.convert; "
        "bad = [m for m in ('torch', 'qtpy', 'napari', 'magicgui', 'PyQt6') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _imports(path, package: str) -> set[str]:
    """Modules of ``napari_cliprl`` that module file ``path`` imports, function-local included."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            found.add(f"{base}.{node.module}")
    return {m for m in found if m.startswith("napari_cliprl")}


def test_io_schemas_files_and_limits_have_no_import_cycle() -> None:
    """No cycle through io/, schemas/, files.py or limits.py, counting imports made inside
    functions (the way a cycle hides)."""
    from pathlib import Path

    import napari_cliprl

    root = Path(napari_cliprl.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rsplit(".", 1)[0]
        modules[name] = (path, package)
    graph = {
        name: {m for m in _imports(path, package) if m in modules and m != name}
        for name, (path, package) in modules.items()
    }
    ours = (
        "napari_cliprl.io",
        "napari_cliprl.schemas",
        "napari_cliprl.files",
        "napari_cliprl.limits",
    )

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*trail, start]
                if nxt not in seen and nxt.startswith(ours):
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = [c for m in graph if m.startswith(ours) and (c := cycle_from(m))]
    assert not cycles, "import cycle: " + " -> ".join(cycles[0])
