"""``finetune``: phase A (supervised) then phase B (RL), curriculum, T* on held-out frames.

The one entry point of training, used by ``cliprl finetune`` (also under ``torchrun``), the napari
widget (in a worker thread: ``progress``, ``should_stop`` and ``on_metrics`` callbacks, no Qt) and
the benchmarks. Reads top to bottom: config, data, phase A epochs, phase B iterations, T*, save.
Rank 0 writes the checkpoint (atomically, every epoch and every ``checkpoint_every`` RL
iterations) and calls the callbacks; ``resume=True`` continues from the last checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_cliprl.training import phases
from napari_cliprl.training.config import (
    Callbacks,
    FinetuneConfig,
    FinetuneResult,
    MetricsFn,
    ProgressFn,
    StopFn,
    config_to_dict,
)
from napari_cliprl.training.distributed import cleanup_distributed, init_distributed
from napari_cliprl.training.setup import setup_run
from napari_cliprl.training.state import Phase

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "config_to_dict",
    "finetune",
    "format_metrics",
]


def finetune(
    config: FinetuneConfig,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    on_metrics: MetricsFn | None = None,
) -> FinetuneResult:
    """Fine-tune a CLIP-RL model on labelled frames and write the checkpoint ``config.out``.

    progress(done, total, message) after every epoch / RL iteration; should_stop() is polled
    between batches (a stop writes a resumable checkpoint and returns ``stopped=True``);
    on_metrics(dict) receives every epoch's and logged iteration's metrics (a live loss curve).
    Callbacks run on rank 0 only. Raises ValueError for bad data, schemas or folders, before
    anything is trained or written.
    """
    ctx = init_distributed(config.device)
    try:
        run = setup_run(config, ctx, Callbacks(progress, should_stop, on_metrics))
        if run.state.phase is Phase.SUPERVISED:
            phases.run_supervised(run)
        if run.state.phase is Phase.FUSION and not run.stopped:
            phases.run_fusion(run)
        if run.state.phase is Phase.RL and not run.stopped:
            phases.run_rl(run)
        if run.state.phase is Phase.TSTAR and not run.stopped:
            phases.finish(run)
        return FinetuneResult(
            checkpoint=Path(config.out),
            history=list(run.state.history),
            tstar=int(run.model.config.steps),
            stopped=run.stopped,
        )
    finally:
        cleanup_distributed(ctx)


def format_metrics(m: dict[str, Any]) -> str:
    """One log line: phase, epoch/iteration, loss, validation metric per step, seconds."""
    if m.get("phase") == "supervised":
        head = f"epoch {m['epoch']}/{m['epochs']}"
    elif m.get("phase") == "fusion":
        head = f"fusion head: {m.get('samples', 0)} samples"
    elif m.get("phase") == "rl":
        head = f"rl {m['iteration']}/{m['iterations']}"
        if "T" in m:
            head += f" T={int(m['T'])}"
    else:
        head = str(m.get("phase", ""))
    parts = [head]
    if "loss" in m:
        parts.append(f"loss {m['loss']:.4f}")
    if "reward" in m:
        parts.append(f"reward {m['reward']:+.4f}")
    if m.get("val"):
        metric = m.get("metric", "miou")
        steps = " ".join(f"{k.replace('step_', 's')} {_fmt(v)}" for k, v in m["val"].items())
        parts.append(f"val {metric}: {steps}")
    if "tstar" in m:
        parts.append(f"T*={m['tstar']}")
    if "seconds" in m:
        parts.append(f"{m['seconds']:.1f} s")
    return "  ".join(parts)


def _fmt(v: float | None) -> str:
    return "nan" if v is None or not np.isfinite(v) else f"{v:.3f}"
