"""``finetune``: phase A (supervised) then phase B (RL), curriculum, T* on held-out frames.

The one entry point of training, used by ``cliprl finetune`` (also under ``torchrun``), the napari
widget (in a worker thread: ``progress``, ``should_stop`` and ``on_metrics`` callbacks, no Qt) and
the benchmarks. Reads top to bottom: config, data, phase A epochs, phase B iterations, T*, save.
Rank 0 writes the checkpoint (atomically, every epoch and every ``checkpoint_every`` RL
iterations) and calls the callbacks; ``resume=True`` continues from the last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cliprl.training import phases
from napari_cliprl.training.curriculum import CurriculumConfig
from napari_cliprl.training.dataset import AugmentConfig
from napari_cliprl.training.distributed import cleanup_distributed, init_distributed
from napari_cliprl.training.rl import RLConfig
from napari_cliprl.training.setup import setup_run
from napari_cliprl.training.supervised import SupervisedConfig

ProgressFn = Callable[..., None]  # progress(done, total, message="")
StopFn = Callable[[], bool]
MetricsFn = Callable[[dict[str, Any]], None]


@dataclass
class FinetuneConfig:
    data: list[str] = field(default_factory=list)  # labelled folders (or folders of them)
    out: str = "cliprl-checkpoint"  # checkpoint folder written (replaced atomically)
    from_checkpoint: str | None = None  # start from this checkpoint; None: a new model
    arch: str = "ViT-B-16"  # architecture of a new model (ignored with from_checkpoint)
    clip_weights: str | None = None  # tag / hf-hub: id / file; None: "openai" for a new CLIP
    # architecture (nothing for tiny-test), the checkpoint's own with from_checkpoint
    schema: str | None = None  # label schema; None: the data's (must match the checkpoint's)
    input_size: tuple[int, int] | None = None  # (h, w); None: the architecture's default
    device: str = "auto"  # auto / cpu / cuda / cuda:N / mps (torchrun: this rank's GPU)
    supervised: SupervisedConfig = field(default_factory=SupervisedConfig)  # phase A
    rl: RLConfig = field(default_factory=RLConfig)  # phase B
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    difficulty: str = "crossfit"  # "crossfit": warm-up decoders on 2 folds; "image": terms only
    warmup_epochs: int = 2  # epochs of each cross-fitted warm-up decoder
    val_fraction: float = 0.2  # held-out frames (evenly spaced) for validation and T*
    min_epoch_frames: int = 0  # an epoch draws at least this many samples (repeats, new
    # augmentation): a few corrected frames still make a useful epoch
    tstar_metric: str = "miou"  # metric T* maximises on the held-out frames
    tstar_tol: float = 0.005  # a step must beat fewer steps by more than this to be chosen
    changed_weight: float = 2.0  # loss weight of pixels the annotator changed (changed/ masks)
    checkpoint_every: int = 50  # RL iterations between checkpoints
    log_every: int = 10  # RL iterations between on_metrics reports
    resume: bool = False  # continue from the checkpoint in ``out`` (after a kill)
    overwrite: bool = False  # replace an existing ``out`` checkpoint instead of refusing
    seed: int = 0  # seeds data order, augmentation and RL sampling


@dataclass
class FinetuneResult:
    checkpoint: Path  # the checkpoint folder (loadable by build_model / cliprl predict)
    history: list[dict[str, Any]]  # one dict per epoch / logged RL iteration / final T*
    tstar: int = 0  # agent steps chosen on the held-out frames (0: refinement did not help)
    stopped: bool = False  # should_stop() ended training early (the checkpoint can resume)


def config_to_dict(config: FinetuneConfig) -> dict[str, Any]:
    """JSON-ready dict of a config (stored in checkpoints)."""
    return asdict(config)


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
    Callbacks run on rank 0 only. Raises ValueError for bad data, schemas or folders.
    """
    ctx = init_distributed(config.device)
    try:
        run = setup_run(config, ctx, progress, should_stop, on_metrics)
        if run.state["phase"] == "supervised":
            phases.run_supervised(run)
        if run.state["phase"] == "rl" and not run.stopped:
            phases.run_rl(run)
        if run.state["phase"] == "tstar" and not run.stopped:
            phases.finish(run)
        return FinetuneResult(
            checkpoint=Path(config.out),
            history=list(run.state["history"]),
            tstar=int(run.model.config.steps),
            stopped=run.stopped,
        )
    finally:
        cleanup_distributed(ctx)


def format_metrics(m: dict[str, Any]) -> str:
    """One log line: phase, epoch/iteration, loss, validation metric per step, seconds."""
    if m.get("phase") == "supervised":
        head = f"epoch {m['epoch']}/{m['epochs']}"
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


def seconds_since(start: float) -> float:
    return time.perf_counter() - start


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
