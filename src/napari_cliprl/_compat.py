"""Environment fixes that must run before ``open_clip`` is imported.

open_clip imports torchvision, and the torchvision wheel a registry serves is often built for
another torch (a CUDA build beside a CPU torch).  Its compiled ops then fail to register and
``import torchvision`` dies with "operator torchvision::nms does not exist".  open_clip needs none
of those ops, so when the library cannot be loaded we declare the two operator schemas that
torchvision's Python side looks up at import time.  The library object must live as long as the
process, hence the module-level reference.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

_TORCHVISION_FRAGMENT = None  # keeps the fallback torch.library.Library alive


def ensure_torchvision_ops() -> None:
    """Make ``import torchvision`` work with this torch, loading or declaring its ops."""
    global _TORCHVISION_FRAGMENT
    if _TORCHVISION_FRAGMENT is not None:
        return
    import torch

    if _has_op("nms"):
        _TORCHVISION_FRAGMENT = True
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            for name in sorted(os.listdir(folder)):
                if name.startswith("_C") and name.endswith((".so", ".pyd")):
                    try:
                        torch.ops.load_library(os.path.join(folder, name))
                    except (OSError, RuntimeError):
                        pass
    if _has_op("nms"):
        _TORCHVISION_FRAGMENT = True
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_FRAGMENT = lib


def _has_op(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def import_open_clip() -> ModuleType:
    """Import and return ``open_clip`` after the torchvision fix."""
    ensure_torchvision_ops()
    import open_clip

    return open_clip
