"""Phase A, supervised: decoder + text residual (+ optionally backbone blocks) on labelled frames.

Loss: class-weighted cross-entropy + soft Dice (ignore label respected, optional per-pixel
weights). The CLIP backbone stays frozen unless ``train_backbone`` (the whole tower: only sensible
for ``tiny-test``, whose backbone is random) or ``train_backbone_blocks`` (the last ViT blocks of
a pretrained tower) says otherwise. Reads like a nanoGPT training script: config,
``train_one_epoch``, and the caller's (``finetune``) loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from napari_cliprl.training.config import SupervisedConfig
from napari_cliprl.training.distributed import DistContext, autocast, unwrap
from napari_cliprl.training.losses import segmentation_loss


class Segmenter(nn.Module):
    """What DistributedDataParallel wraps in phase A: images -> (L0, zero-shot) of a CLIPRL.

    Registers only the backbone, text bank and decoder (the agent is not trained here); images
    in [0, 1] are normalised by the model (``CLIPRL.normalize``).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.text_bank = model.text_bank
        self.decoder = model.decoder
        object.__setattr__(self, "_model", model)  # not a submodule: no agent parameters

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images B x 3 x H x W in [0, 1] -> (L0 B x K x H/4 x W/4, zero-shot B x K x h x w)."""
        model = self._model
        zero_shot, L0, _ = model.decode(model.encode(model.normalize(images)))
        return L0, zero_shot


def mark_trainable(model: nn.Module, config: SupervisedConfig) -> list[nn.Parameter]:
    """Set ``requires_grad`` for phase A; returns the backbone parameters being trained.

    The decoder and text residual always train; the text bank's buffers never do. The backbone
    follows ``train_backbone`` / ``train_backbone_blocks`` (recorded in the model config so that
    checkpoints store those weights).
    """
    from napari_cliprl.model.build import set_backbone_trainable

    set_backbone_trainable(model, config.train_backbone_blocks)
    if config.train_backbone:
        model.backbone.requires_grad_(True)
    model.decoder.requires_grad_(True)
    model.text_bank.requires_grad_(True)
    return [p for p in model.backbone.parameters() if p.requires_grad]


def drop_unused(segmenter: Segmenter, images: torch.Tensor) -> None:
    """Freeze trainable parameters that get no gradient (DDP needs every one to be used)."""
    params = [p for p in segmenter.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    L0, _ = segmenter(images)
    L0.float().square().mean().backward()
    for p in params:
        if p.grad is None:
            p.requires_grad_(False)
        p.grad = None


def make_optimizer(model: nn.Module, config: SupervisedConfig) -> torch.optim.AdamW:
    """AdamW with two learning rates (head vs backbone) and no decay on 1-D parameters."""
    groups: list[dict] = []
    for lr, params in (
        (config.learning_rate, [*model.decoder.parameters(), *model.text_bank.parameters()]),
        (config.backbone_lr, list(model.backbone.parameters())),
    ):
        trainable = [p for p in params if p.requires_grad]
        decay = [p for p in trainable if p.ndim >= 2]
        no_decay = [p for p in trainable if p.ndim < 2]
        groups += [
            {"params": decay, "lr": lr, "base_lr": lr, "weight_decay": config.weight_decay},
            {"params": no_decay, "lr": lr, "base_lr": lr, "weight_decay": 0.0},
        ]
    return torch.optim.AdamW([g for g in groups if g["params"]])


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the base learning rate."""
    import math

    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_one_epoch(
    segmenter: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    class_weight: torch.Tensor,
    config: SupervisedConfig,
    ctx: DistContext,
    *,
    step: int = 0,
    total_steps: int = 1,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, float]:
    """One pass over ``loader`` (this rank's shard). Returns {"loss", "steps"} (mean loss)."""
    unwrap(segmenter).train()
    total, count = 0.0, 0
    for images, labels, weights in loader:
        if should_stop is not None and should_stop():
            break
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(step, total_steps, config.warmup_steps)
        images = images.to(ctx.device, non_blocking=True)
        labels = labels.to(ctx.device, non_blocking=True)
        weights = weights.to(ctx.device, non_blocking=True)
        with autocast(ctx.device):
            L0, _ = segmenter(images)
        loss = segmentation_loss(
            L0.float(), labels, class_weight.to(ctx.device), weights, config.dice_coef
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        total += float(loss.detach())
        count += 1
        step += 1
    return {"loss": total / max(count, 1), "steps": float(step)}


def frame_score(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> float:
    """Per-frame IoU (background excluded); 1.0 when neither has any foreground class."""
    from napari_cliprl.metrics import evaluate_frames

    value = evaluate_frames([pred], [gt], num_classes)["iou"]
    return 1.0 if not np.isfinite(value) else float(value)


def crossfit_scores(
    model: nn.Module,
    dataset: Dataset,
    config: SupervisedConfig,
    epochs: int,
    device: torch.device,
    folds: int = 2,
) -> np.ndarray:
    """Per-frame IoU of warm-up decoders that never saw the frame (cross-fitting, DESIGN 2.7).

    The frames are split into ``folds`` interleaved folds; for each, the model is trained for
    ``epochs`` epochs on the others and scores the held-out ones; then its weights are put back.
    Returns len(dataset) floats (NaN for everything when there are fewer than 2 frames).
    """
    from napari_cliprl.training.evaluate import predict_steps

    n = len(dataset)
    scores = np.full(n, np.nan)
    if n < 2 or epochs <= 0:
        return scores
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    segmenter = Segmenter(model)
    for fold in range(min(folds, n)):
        held = [i for i in range(n) if i % folds == fold]
        train = [i for i in range(n) if i % folds != fold]
        weight = torch.ones(model.num_classes)
        optimizer = make_optimizer(model, config)
        loader = DataLoader(
            Subset(dataset, train),
            batch_size=config.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(fold),
        )
        quiet = SupervisedConfig(**{**config.__dict__, "warmup_steps": 1})
        for _ in range(epochs):
            train_one_epoch(
                segmenter,
                loader,
                optimizer,
                weight,
                quiet,
                _local(device),
                total_steps=epochs * len(loader),
            )
        for i in held:
            image, labels, _ = dataset.load(i)
            maps, _ = predict_steps(model, image[None], steps=0)
            scores[i] = frame_score(maps[1][0].numpy(), labels.numpy(), model.num_classes)
        model.load_state_dict(snapshot)
    return scores


def _local(device: torch.device) -> DistContext:
    return DistContext(device=device)
