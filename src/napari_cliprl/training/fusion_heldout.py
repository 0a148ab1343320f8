"""Decoder outputs on reviewed frames from decoders that never saw them (cross-fitting).

The fusion learns when to trust the propagated labels and when the image: it must see the
decoder's outputs as they are on an *unreviewed* frame. On the frames it was trained on, the
fine-tuned decoder is nearly perfect, and a fusion trained on that would trust it far too
much. So the training frames are split into interleaved folds; for each fold, a decoder
trained on the other folds (from the starting weights, ``steps`` optimiser steps with the
phase A recipe) decodes the held-out frames. With a single training frame there is no other
frame to learn from: the starting model's decoder stands in (an untrained one teaches the
fusion to trust the flow, the safe direction).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from napari_cliprl.training.config import SupervisedConfig
from napari_cliprl.training.dataset import EpochView, FrameDataset
from napari_cliprl.training.distributed import DistContext
from napari_cliprl.training.losses import class_weights
from napari_cliprl.training.supervised import Segmenter, make_optimizer, train_one_epoch

Outputs = dict[int, tuple[torch.Tensor, torch.Tensor]]  # position -> (L K x h x w, F C x h x w)


@torch.no_grad()
def decoder_outputs(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """images N x 3 x H x W float [0, 1] at the input size -> (L0 N x K x h x w,
    F N x C x h x w), float32 on the CPU (the decoder without any prior)."""
    model.eval()
    logits, feats = [], []
    for start in range(0, images.shape[0], batch_size):
        x = model.normalize(images[start : start + batch_size])
        _, L0, F = model.decode(model.encode(x))
        logits.append(L0.float().cpu())
        feats.append(F.float().cpu())
    return torch.cat(logits), torch.cat(feats)


def heldout_outputs(
    model: torch.nn.Module,
    dataset: FrameDataset,
    config: SupervisedConfig,
    steps: int,
    device: torch.device,
    *,
    folds: int = 2,
    seed: int = 0,
) -> Outputs:
    """Decoder outputs of every item of ``dataset`` (positions 0..n-1) from a decoder that was
    not trained on it (module doc); the model's weights are restored afterwards."""
    n = len(dataset)
    if n < 2 or steps <= 0 or folds < 2:
        return _outputs(model, dataset, range(n))
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out: Outputs = {}
    try:
        for fold in range(min(folds, n)):
            held = [i for i in range(n) if i % folds == fold]
            train = [i for i in range(n) if i % folds != fold]
            _train_fold(model, dataset, train, config, steps, device, seed + fold)
            out.update(_outputs(model, dataset, held))
            model.load_state_dict(snapshot)
    finally:
        model.load_state_dict(snapshot)
    return out


def _outputs(model: torch.nn.Module, dataset: FrameDataset, positions: Sequence[int]) -> Outputs:
    positions = list(positions)
    if not positions:
        return {}
    images = torch.stack([dataset.load(i)[0] for i in positions])
    L, F = decoder_outputs(model, images)
    return {i: (L[j], F[j]) for j, i in enumerate(positions)}


def _train_fold(
    model: torch.nn.Module,
    dataset: FrameDataset,
    train: list[int],
    config: SupervisedConfig,
    steps: int,
    device: torch.device,
    seed: int,
) -> None:
    """``steps`` phase A steps on the items ``train`` (augmented, repeated to fill)."""
    labels = torch.stack([dataset.load(i)[1] for i in train])
    weight = class_weights(labels, model.num_classes)
    view = EpochView(dataset, train, steps * config.batch_size)
    loader = DataLoader(
        view,
        batch_size=config.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    train_one_epoch(
        Segmenter(model),
        loader,
        make_optimizer(model, config),
        weight,
        config,
        DistContext(device=device),
        total_steps=steps,
    )
