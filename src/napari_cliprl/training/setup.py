"""Set-up of a ``finetune`` run: data, model, optimizers, resume state, curriculum difficulty.

:class:`Run` carries everything the phases (:mod:`phases`) share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from napari_cliprl.training.curriculum import frame_difficulty, image_terms
from napari_cliprl.training.dataset import (
    FrameDataset,
    all_frames,
    open_sequences,
    split_frames,
)
from napari_cliprl.training.distributed import DistContext, barrier, broadcast_object
from napari_cliprl.training.losses import class_weights
from napari_cliprl.training.state import load_training_state, recover_checkpoint
from napari_cliprl.training.supervised import (
    Segmenter,
    crossfit_scores,
    drop_unused,
    make_optimizer,
    mark_trainable,
)

if TYPE_CHECKING:
    from napari_cliprl.training.finetune import FinetuneConfig


@dataclass
class Run:
    """Everything the phases share."""

    config: FinetuneConfig
    ctx: DistContext
    model: Any  # CLIPRL
    train_ds: FrameDataset  # training frames (augmented)
    val_images: torch.Tensor  # N x 3 x H x W float [0, 1], held-out frames at the input size
    val_labels: torch.Tensor  # N x H x W long
    class_weight: torch.Tensor  # K, 1/sqrt(frequency) over the training labels
    optimizers: dict[str, torch.optim.Optimizer]
    state: dict[str, Any]  # phase, epoch, step, rl_iter, history, difficulty (saved)
    callbacks: dict[str, Any] = field(default_factory=dict)  # progress, should_stop, on_metrics
    stopped: bool = False

    @property
    def total_work(self) -> int:
        rl = self.config.rl
        return self.config.supervised.epochs + rl.imitation_iters + rl.iterations + 1


# -- set-up --
def setup_run(
    config: FinetuneConfig,
    ctx: DistContext,
    progress: Callable[..., None] | None,
    should_stop: Callable[[], bool] | None,
    on_metrics: Callable[[dict[str, Any]], None] | None,
) -> Run:
    """Data, model, optimizers and (with ``resume``) the saved state of ``config.out``."""
    out = Path(config.out)
    resume_from = _prepare_out(out, config, ctx)
    sequences = open_sequences(config.data, config.schema)
    model = build_for_training(config, sequences[0].schema, ctx.device)
    train_items, val_items = split_frames(all_frames(sequences), config.val_fraction)
    train_ds = FrameDataset(
        sequences,
        model.input_size,
        config.augment,
        frames=train_items,
        changed_weight=config.changed_weight,
        seed=config.seed,
    )
    val_ds = FrameDataset(sequences, model.input_size, None, frames=val_items)
    val = [val_ds.load(i) for i in range(len(val_ds))]
    labels = torch.stack([train_ds.load(i)[1] for i in range(len(train_ds))])
    mark_trainable(model, supervised_config(config, model))
    model.train()
    drop_unused(Segmenter(model), train_ds.load(0)[0][None].to(ctx.device))
    optimizers = {
        "supervised": make_optimizer(model, supervised_config(config, model)),
        "rl": torch.optim.Adam(model.agent.parameters(), lr=config.rl.learning_rate, eps=1e-5),
    }
    state: dict[str, Any] = {
        "phase": "supervised",
        "epoch": 0,
        "step": 0,
        "rl_iter": 0,
        "history": [],
        "difficulty": None,
    }
    if resume_from is not None:
        state = _load_resume(resume_from, model, optimizers)
    run = Run(
        config,
        ctx,
        model,
        train_ds,
        torch.stack([v[0] for v in val]),
        torch.stack([v[1] for v in val]),
        class_weights(labels, model.num_classes),
        optimizers,
        state,
        {"progress": progress, "should_stop": should_stop, "on_metrics": on_metrics},
    )
    if state["difficulty"] is None:
        state["difficulty"] = broadcast_object(_difficulty(run) if ctx.is_main else None, ctx)
    if config.supervised.epochs <= 0 and state["phase"] == "supervised":
        state["phase"] = "rl"
    return run


def _prepare_out(out: Path, config: FinetuneConfig, ctx: DistContext) -> Path | None:
    """The checkpoint to resume from (None: a fresh run); refuses to clobber a checkpoint."""
    found = None
    if config.resume:
        found = recover_checkpoint(out) if ctx.is_main else None
        barrier(ctx)
        found = out if (out / "train_state.json").is_file() else None
    elif out.exists() and any(out.iterdir()) and not config.overwrite:
        raise ValueError(
            f"{out}: folder exists and is not empty; pass --resume to continue the run saved "
            "there, --overwrite to replace it, or choose another --out"
        )
    return found


def build_for_training(config: FinetuneConfig, schema: Any, device: torch.device) -> Any:
    """A new model or ``from_checkpoint``'s, on ``device``; its schema must be the data's."""
    from napari_cliprl.model.build import build_model, get_architecture

    if config.from_checkpoint:
        model = build_model(
            checkpoint=config.from_checkpoint, device=device, clip_weights=config.clip_weights
        )
        if model.schema.name != schema.name or model.num_classes != schema.num_classes:
            raise ValueError(
                f"{config.from_checkpoint}: checkpoint schema {model.schema.name!r} "
                f"({model.num_classes} classes) does not match the data's schema {schema.name!r} "
                f"({schema.num_classes} classes)"
            )
        return model
    weights = config.clip_weights
    if weights is None and not get_architecture(config.arch).self_contained:
        weights = "openai"  # a CLIP architecture without CLIP weights segments nothing
    return build_model(
        config.arch,
        clip_weights=weights,
        schema=schema,
        device=device,
        input_size=config.input_size,
    )


def supervised_config(config: FinetuneConfig, model: Any) -> Any:
    """Phase A config with ``train_backbone`` resolved (None: only for random-weight archs)."""
    from dataclasses import replace

    from napari_cliprl.model.build import get_architecture

    sup = config.supervised
    if sup.train_backbone is None:
        auto = get_architecture(model.config.arch).self_contained
        sup = replace(sup, train_backbone=auto)
    return sup


def _load_resume(folder: Path, model: Any, optimizers: dict) -> dict[str, Any]:
    from napari_cliprl.model.checkpoint import (
        load_weights_into,
        read_checkpoint_config,
        read_checkpoint_weights,
    )

    load_weights_into(model, read_checkpoint_weights(folder), folder)
    model.config.steps = int(read_checkpoint_config(folder).get("steps", 0))
    return load_training_state(folder, optimizers)


def _difficulty(run: Run) -> list[float]:
    """Per training frame (DESIGN 2.7); zeros when the curriculum is off."""
    cfg, ds, K = run.config, run.train_ds, run.model.num_classes
    if not cfg.curriculum.enabled:
        return [0.0] * len(ds)
    scores = np.full(len(ds), np.nan)
    if cfg.difficulty == "crossfit":
        scores = crossfit_scores(
            run.model, ds, supervised_config(cfg, run.model), cfg.warmup_epochs, run.ctx.device
        )
    out = []
    for i in range(len(ds)):
        image, labels, _ = ds.load(i)
        rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        terms = image_terms(rgb, labels.numpy().astype(np.uint8), K)
        out.append(frame_difficulty(float(scores[i]), terms, cfg.curriculum))
    return out
