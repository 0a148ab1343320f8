"""The flow core stays numpy + OpenCV: importing it pulls in neither torch nor a GUI stack."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("torch", "open_clip", "qtpy", "napari", "magicgui", "PyQt6", "PyQt5", "PySide6")


def test_importing_the_flow_core_loads_no_torch_and_no_gui() -> None:
    probe = (
        "import json, sys; import napari_cliprl.flow, napari_cliprl.flow.cache; "
        f"print(json.dumps(sorted(m for m in {list(FORBIDDEN)!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
