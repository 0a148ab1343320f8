"""Training: phase A (supervised), phase B (RL refinement agent), curriculum, evaluation.

The entry point is ``napari_cliprl.training.finetune.finetune`` (``cliprl finetune``, the napari
widget, the benchmarks), configured by :class:`FinetuneConfig` (``training.config``, the single
source of truth); :func:`evaluate_model` scores a model on labelled sequences for every
refinement step. See ``docs/training.md``. Names are imported on first use, so that importing
``napari_cliprl.training.config`` (the command line's options) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FinetuneConfig": "napari_cliprl.training.config",
    "FinetuneResult": "napari_cliprl.training.config",
    "evaluate_model": "napari_cliprl.training.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
