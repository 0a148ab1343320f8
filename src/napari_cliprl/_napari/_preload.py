"""Loading torch's shared libraries without freezing the window.

Python holds the GIL while an extension module's library is loaded (``dlopen``), so importing
torch in a worker thread still stops the main thread for as long as the 400 MB
``libtorch_cpu`` takes to load and initialise (0.5-2 s). Calling the C library's ``dlopen``
through ctypes releases the GIL for the call: once the libraries are in the process, the
import that follows only runs Python code and small extensions, in short slices.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path

PACKAGES = ("torch", "torchvision")  # heavy native code the model imports
SUFFIXES = (".so", ".dylib")
# the libraries torch itself loads (not its test libraries, which register test operators)
LIBRARIES = ("libgomp", "libc10", "libtorch_cpu", "libtorch_cuda", "libtorch.", "libtorch_python")


def native_libraries(package: str) -> list[Path]:
    """The shared libraries of an installed ``package`` (its lib/ folder, then its top-level
    extension modules), without importing it; empty when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return []
    root = Path(spec.origin).parent
    libs = [p for p in (root / "lib").glob("lib*") if SUFFIXES[0] in p.name or p.suffix in SUFFIXES]
    found = sorted(p for p in libs if p.name.startswith(LIBRARIES))
    found += sorted(p for p in root.glob("_C.*") if p.suffix in SUFFIXES)
    return found


def preload(packages: tuple[str, ...] = PACKAGES) -> int:
    """``dlopen`` the native libraries of ``packages`` with the GIL released; returns how
    many loaded (0 where the platform has no ``dlopen``). Failures are left to the import."""
    if sys.platform.startswith("win"):
        return 0
    try:
        libc = ctypes.CDLL(None)  # a foreign call through CDLL releases the GIL
        dlopen = libc.dlopen
    except (OSError, AttributeError):
        return 0
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    mode = getattr(os, "RTLD_NOW", 2) | getattr(os, "RTLD_LOCAL", 0)
    loaded = 0
    for package in packages:
        for path in native_libraries(package):
            loaded += bool(dlopen(os.fsencode(path), mode))
    return loaded
