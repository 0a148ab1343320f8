"""Set-up of a ``finetune`` run: data, model, optimizers, resume state, curriculum difficulty.

:class:`Run` carries everything the phases (:mod:`phases`) share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cliprl.training.config import Callbacks, FinetuneConfig, SupervisedConfig
from napari_cliprl.training.curriculum import frame_difficulty, image_terms
from napari_cliprl.training.dataset import (
    FrameDataset,
    all_frames,
    open_sequences,
    split_frames,
)
from napari_cliprl.training.distributed import DistContext, barrier, broadcast_object
from napari_cliprl.training.folders import check_out_contents, check_out_target
from napari_cliprl.training.fusion_source import FusionRun, fusion_videos
from napari_cliprl.training.losses import class_weights
from napari_cliprl.training.state import (
    Phase,
    TrainState,
    load_training_state,
    recover_checkpoint,
    saved_model_config,
)
from napari_cliprl.training.supervised import (
    Segmenter,
    crossfit_scores,
    drop_unused,
    make_optimizer,
    mark_trainable,
)


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
    state: TrainState  # phase, counters, history, difficulty (saved in every checkpoint)
    callbacks: Callbacks
    stopped: bool = False
    fusion: FusionRun | None = None  # video fusion's data (None: no readable video)

    @property
    def total_work(self) -> int:
        rl = self.config.rl
        return self.config.supervised.epochs + rl.imitation_iters + rl.iterations + 2


# -- set-up --
def setup_run(config: FinetuneConfig, ctx: DistContext, callbacks: Callbacks) -> Run:
    """Data, model, optimizers and (with ``resume``) the saved state of ``config.out``."""
    resume = prepare_out(config, ctx)
    sequences = open_sequences(config.data, config.schema, ground_truth=config.ground_truth)
    model = build_for_training(config, sequences[0].schema, ctx.device)
    videos = fusion_videos(sequences, config.fusion)
    if any(v is not None for v in videos) or (resume and _saved_fusion(config)):
        from napari_cliprl.model.build import add_fusion

        add_fusion(model, config.fusion.side_actions)
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
    state = _load_resume(Path(config.out), model, optimizers) if resume else TrainState()
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
        callbacks,
        fusion=FusionRun(videos) if any(v is not None for v in videos) else None,
    )
    if state.difficulty is None:
        state.difficulty = broadcast_object(_difficulty(run) if ctx.is_main else None, ctx)
    if config.supervised.epochs <= 0 and state.phase is Phase.SUPERVISED:
        state.phase = Phase.FUSION
    return run


def _saved_fusion(config: FinetuneConfig) -> bool:
    """Whether the run saved in ``config.out`` (being resumed) has a fusion head."""
    model = saved_model_config(Path(config.out)).get("model")
    return isinstance(model, dict) and bool(model.get("fusion"))


def prepare_out(config: FinetuneConfig, ctx: DistContext) -> bool:
    """Check ``config.out`` before anything is read or written; True: resume from it.

    Refuses (one line) a folder that is not our checkpoint, an output overlapping an input,
    ``resume`` without a saved state and an existing checkpoint without ``overwrite``.
    """
    check_out_target(config)
    if config.resume:
        if ctx.is_main:
            recover_checkpoint(config.out)
        barrier(ctx)
    check_out_contents(config)
    return config.resume


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


def supervised_config(config: FinetuneConfig, model: Any) -> SupervisedConfig:
    """Phase A config with ``train_backbone`` resolved (None: only for random-weight archs)."""
    from napari_cliprl.model.build import get_architecture

    sup = config.supervised
    if sup.train_backbone is None:
        auto = get_architecture(model.config.arch).self_contained
        sup = replace(sup, train_backbone=auto)
    return sup


def _load_resume(folder: Path, model: Any, optimizers: dict) -> TrainState:
    from napari_cliprl.model.checkpoint import load_weights_into, read_checkpoint_weights

    load_weights_into(model, read_checkpoint_weights(folder), folder)
    model.config.steps = int(saved_model_config(folder).get("steps", 0))
    return TrainState.from_dict(load_training_state(folder, optimizers), folder)


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
