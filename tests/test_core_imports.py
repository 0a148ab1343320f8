"""The core never imports the GUI stack (DESIGN section 1, STYLE "For this project" 1).

Each check runs in a fresh interpreter, since this test process may already hold napari.
Modules that do not exist yet are skipped, so the check grows with the package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

GUI_MODULES = ("qtpy", "napari", "magicgui", "PyQt6", "PyQt5", "PySide2", "PySide6")

REQUIRED = (
    "napari_cliprl",
    "napari_cliprl.schemas",
    "napari_cliprl.io",
    "napari_cliprl.metrics",
    "napari_cliprl.io.sample",
    "napari_cliprl.cli",
)
OPTIONAL = (
    "napari_cliprl.model",
    "napari_cliprl.predictor",
    "napari_cliprl.training",
    "napari_cliprl.annotation",
)
TORCH_FREE = (
    "napari_cliprl.schemas",
    "napari_cliprl.io",
    "napari_cliprl.metrics",
    "napari_cliprl.io.sample",
    "napari_cliprl.steps",
    "napari_cliprl.devices",
    "napari_cliprl.errors",
    "napari_cliprl.limits",
    "napari_cliprl.files",
    "napari_cliprl.annotation.session",
    "napari_cliprl.annotation.store",
    "napari_cliprl.annotation.suggest",
)

_PROBE = textwrap.dedent(
    """
    import importlib, importlib.util, json, pkgutil, sys

    names, walk, watch, build_parser = json.loads(sys.argv[1])
    imported, missing = [], []

    def exists(name):
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package does not exist yet
            return False

    if walk:  # every module of the package except the GUI layer
        import napari_cliprl
        for info in pkgutil.walk_packages(napari_cliprl.__path__, "napari_cliprl."):
            if not info.name.startswith("napari_cliprl._napari"):
                names.append(info.name)
    for name in names:
        if not exists(name):
            missing.append(name)
            continue
        importlib.import_module(name)
        imported.append(name)
    if build_parser:  # `cliprl --help` imports every subcommand module
        importlib.import_module("napari_cliprl.cli").build_parser()
    loaded = sorted(m for m in watch if m in sys.modules)
    print(json.dumps({"imported": imported, "missing": missing, "loaded": loaded}))
    """
)


def _probe(
    names: tuple[str, ...], watch: tuple[str, ...], walk: bool = False, build_parser: bool = False
) -> dict[str, list[str]]:
    """Import ``names`` in a fresh interpreter; report which of ``watch`` got imported."""
    arg = json.dumps([list(names), walk, list(watch), build_parser])
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, arg], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"importing the core failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_core_modules_do_not_import_the_gui() -> None:
    result = _probe(REQUIRED + OPTIONAL, GUI_MODULES)
    assert not set(REQUIRED) & set(result["missing"]), result["missing"]
    assert result["loaded"] == [], f"the core imported GUI modules: {result['loaded']}"


def test_every_non_gui_module_and_the_cli_parser_stay_gui_free() -> None:
    result = _probe((), GUI_MODULES, walk=True, build_parser=True)
    assert "napari_cliprl.metrics" in result["imported"]
    assert result["loaded"] == [], f"the core imported GUI modules: {result['loaded']}"


def test_data_modules_do_not_import_torch() -> None:
    # Readers, metrics and the sample clip load fast in napari: torch is for model/ only.
    result = _probe(TORCH_FREE, ("torch", "open_clip"))
    assert result["loaded"] == [], f"{TORCH_FREE} imported {result['loaded']}"
