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
