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
    With video fusion (:func:`with_fusion_states`), ``gains`` (N x 2 x h x w) and ``context``
    (N x C' x h x w) hold step 0's side gains and the propagation context of each state (zeros
    for a frame without one); ``order`` then lists the per-frame states only, ``fusion_order``
    the fusion states from short gaps to long, and ``fusion_share`` of every batch of episodes
    comes from them.
    """

    L0: torch.Tensor
    features: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    order: np.ndarray
    gains: torch.Tensor | None = None
    context: torch.Tensor | None = None
    fusion_order: np.ndarray | None = None
    fusion_share: float = 0.0


def with_fusion_states(data: RLData, fused: dict[str, torch.Tensor], share: float) -> RLData:
    """``data``'s per-frame states followed by the fusion states ``fused`` (tensors L0, gains,
    features, context, target, gap of ``training.fusion_phase.fusion_states``)."""
    n, (h, w) = data.L0.shape[0], data.L0.shape[-2:]
    context = torch.cat([fused["context"].new_zeros(n, fused["context"].shape[1], h, w),
                         fused["context"]])  # fmt: skip
    gains = torch.cat([fused["gains"].new_zeros(n, 2, h, w), fused["gains"]])
    order = n + np.argsort(fused["gap"].numpy(), kind="stable")
    return RLData(
        torch.cat([data.L0, fused["L0"].to(data.L0.dtype)]),
        torch.cat([data.features, fused["features"].to(data.features.dtype)]),
        torch.cat([data.target, fused["target"].to(data.target.dtype)]),
        data.weight,
        data.order,
        gains=gains,
        context=context,
        fusion_order=order,
        fusion_share=float(share),
    )


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
