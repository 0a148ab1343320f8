"""Training: phase A (supervised), phase B (RL refinement agent), curriculum, evaluation.

The entry point is :func:`finetune` (``cliprl finetune``, the napari widget, the benchmarks);
:func:`evaluate_model` scores a model on labelled sequences for every refinement step.
See ``docs/training.md``.
"""

from napari_cliprl.training.evaluate import evaluate_model
from napari_cliprl.training.finetune import FinetuneConfig, FinetuneResult, finetune

__all__ = ["FinetuneConfig", "FinetuneResult", "evaluate_model", "finetune"]
