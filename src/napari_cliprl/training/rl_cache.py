"""Phase B's training data: the frozen decoder's outputs, cached once per (frame, copy).

Copy 0 of every frame is plain, the others augmented (new lighting, scale, flips), so that the
agent sees the decoder's mistakes and not only frames it fits perfectly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_cliprl.training.distributed import autocast
from napari_cliprl.training.losses import IGNORE_INDEX


@dataclass
class RLData:
    """Cached decoder outputs of the training frames (what phase B trains on).

    L0: N x K x h x w logits, features: N x C x h x w pixel features F, target: N x h x w long
    (255 = ignore), weight: K reward class weights, order: frame positions easiest first.
    """

    L0: torch.Tensor
    features: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    order: np.ndarray


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B x H x W labels -> B x h x w: the majority class of each block; 255 if mostly ignored."""
    valid = labels != IGNORE_INDEX
    K = int(labels[valid].max()) + 1 if bool(valid.any()) else 1
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    onehot = F.one_hot(safe, K).permute(0, 3, 1, 2).float() * valid[:, None].float()
    votes = F.adaptive_avg_pool2d(onehot, size)
    out = votes.argmax(1)
    return torch.where(votes.sum(1) >= 0.5, out, torch.full_like(out, IGNORE_INDEX))


@torch.no_grad()
def cache_decoder_outputs(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    copies: int,
    device: torch.device,
    batch_size: int = 8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the frozen decoder once per (frame, copy): copy 0 plain, the others augmented.

    Returns (L0 N x K x h x w, features N x C x h x w, target N x h x w), on the CPU, where
    N = len(dataset) * copies and target is the majority label of each stride-4 cell.
    """
    model.eval()
    out_L0, out_F, out_t = [], [], []
    for copy in range(max(1, copies)):
        dataset.set_epoch(10_000 + copy)
        items = [dataset.load(i) if copy == 0 else dataset[i] for i in range(len(dataset))]
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            images = torch.stack([c[0] for c in chunk]).to(device)
            labels = torch.stack([c[1] for c in chunk])
            with autocast(device):
                _, L0, feats = model.decode(model.encode(model.normalize(images)))
            out_L0.append(L0.float().cpu())
            out_F.append(feats.float().cpu())
            out_t.append(downsample_labels(labels, tuple(L0.shape[-2:])))
    return torch.cat(out_L0), torch.cat(out_F), torch.cat(out_t)
