"""The propagation context on the model's stride-4 grid, and the fused label maps.

The model's logits ``L`` live on a grid of h x w cells (stride 4 of the network input); the
propagated label maps are exact at full frame size H x W. Fusion happens at full resolution::

    score_k(x) = up(L)_k(x) + sum over sides s of G_s[cell(x)] * (beta + c_s(x)) * [P_s(x) = k]

``up`` is bilinear (align_corners=False, as the per-frame label maps); ``G`` (2 x h x w,
non-negative: forward, backward) is constant per cell (``cell(x)`` = the cell whose block of
pixels holds x, :func:`cell_index`), ``P_s``/``c_s`` are a side's labels and confidence
(:class:`~napari_cliprl.fusion.context.SideMaps`; 255 = no opinion, no bonus) and ``beta`` a
floor, so that a side filled where flow left the frame still has a (small) say. With large
gains the fused map equals the propagated labels exactly; the model decides where to deviate.

On the grid the same sum is averaged per cell (:func:`context_channels` holds the areas
``A_s[k]`` = mean over the cell's pixels of ``(beta + c_s) [P_s = k]``), and the fused grid
logits are ``L + G_f A_f + G_b A_b`` (``model.fusion_head.fused_grid_logits``): what the
agent's state and reward see.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from napari_cliprl.fusion.context import IGNORE, FrameContext, SideMaps
from napari_cliprl.model.fusion_head import (
    BETA,
    DISTANCE_SCALES,
    SIDE_EXTRA,
    context_channels_count,
)
from napari_cliprl.model.inference import upsample_labels


def cell_index(size: tuple[int, int], grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols): the cell of every pixel row / column of a frame of ``size`` (H, W) on a
    ``grid`` (h, w): ``floor(y * h / H)``, i.e. nearest-neighbour upsampling of the grid."""
    (H, W), (h, w) = size, grid
    return np.arange(H) * h // H, np.arange(W) * w // W


def _cells(size: tuple[int, int], grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat cell id per pixel (H x W int64) and pixels per cell (h * w)."""
    rows, cols = cell_index(size, grid)
    ids = rows[:, None] * grid[1] + cols[None, :]
    return ids, np.bincount(ids.ravel(), minlength=grid[0] * grid[1])


def pool_side(
    side: SideMaps, num_classes: int, grid: tuple[int, int], beta: float = BETA
) -> np.ndarray:
    """(K + 2) x h x w float32 of one side: K areas ``mean((beta + c) [P = k])``, the mean
    confidence and the carried fraction (confidence > 0) of each cell."""
    K, (h, w) = num_classes, grid
    ids, counts = _cells(side.labels.shape, grid)
    labels = side.labels.astype(np.int64)
    valid = labels != IGNORE
    weight = np.where(valid, beta + side.conf, 0.0)
    key = ids * K + np.where(valid, labels, 0)
    areas = np.bincount(key.ravel(), weights=weight.ravel(), minlength=h * w * K)
    areas = areas.reshape(h * w, K).T / np.maximum(counts, 1)
    conf = np.bincount(ids.ravel(), weights=side.conf.ravel(), minlength=h * w) / counts
    carried = np.bincount(ids.ravel(), weights=(side.conf > 0).ravel(), minlength=h * w)
    out = np.concatenate([areas, conf[None], (carried / counts)[None]])
    return out.reshape(K + 2, h, w).astype(np.float32)


def context_channels(
    context: FrameContext | None, num_classes: int, grid: tuple[int, int], beta: float = BETA
) -> torch.Tensor:
    """C x h x w float32 (C = :func:`context_channels_count`); zeros without a context.

    Per side (forward, then backward): K areas, mean confidence, carried fraction, present
    (1), ``exp(-distance / s)`` for s in DISTANCE_SCALES; last, the fraction of each cell where
    both sides exist and disagree.
    """
    K, (h, w) = num_classes, grid
    out = np.zeros((context_channels_count(K), h, w), np.float32)
    if context is None:
        return torch.from_numpy(out)
    block = K + SIDE_EXTRA
    for s, side in enumerate(context.sides):
        if side is None:
            continue
        base = s * block
        out[base : base + K + 2] = pool_side(side, K, grid, beta)
        out[base + K + 2] = 1.0
        for j, scale in enumerate(DISTANCE_SCALES):
            out[base + K + 3 + j] = math.exp(-side.distance / scale)
    fwd, bwd = context.sides
    if fwd is not None and bwd is not None:
        ids, counts = _cells(fwd.labels.shape, grid)
        differ = (fwd.labels != bwd.labels) & (fwd.labels != IGNORE) & (bwd.labels != IGNORE)
        votes = np.bincount(ids.ravel(), weights=differ.ravel(), minlength=h * w)
        out[-1] = (votes / counts).reshape(h, w)
    return torch.from_numpy(out)


def fused_scores(
    logits: torch.Tensor,
    gains: torch.Tensor | None,
    context: FrameContext | None,
    size: tuple[int, int] | None = None,
    beta: float = BETA,
) -> torch.Tensor:
    """K x H x W float32 full-resolution scores (module doc) of one frame.

    logits: K x h x w; gains: 2 x h x w (forward, backward) or None (no bonus); size: (H, W),
    default the context's frame size. Without a context this is ``up(L)``.
    """
    if size is None:
        if context is None:
            raise ValueError("fused_scores needs a size or a context")
        size = context.size
    logits = logits.detach().float().cpu()
    scores = F.interpolate(logits[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
    if context is None or gains is None:
        return scores
    rows, cols = cell_index(tuple(size), tuple(logits.shape[-2:]))
    gains = gains.detach().float().cpu()
    for g, side in zip(gains, context.sides):
        if side is None:
            continue
        labels = torch.from_numpy(side.labels.astype(np.int64))
        valid = labels != IGNORE
        bonus = g[rows][:, cols] * (beta + torch.from_numpy(side.conf)) * valid
        scores.scatter_add_(0, labels.clamp(max=scores.shape[0] - 1)[None], bonus[None])
    return scores


def fused_labels(
    logits: torch.Tensor,
    gains: torch.Tensor | None,
    context: FrameContext | None,
    size: tuple[int, int] | None = None,
    beta: float = BETA,
) -> np.ndarray:
    """H x W uint8: the argmax of :func:`fused_scores` (without a context or gains: the
    model's own labels, ``model.inference.upsample_labels``)."""
    if context is None or gains is None:
        if size is None:
            raise ValueError("fused_labels needs a size or a context")
        return upsample_labels(logits, tuple(size))
    return fused_scores(logits, gains, context, size, beta).argmax(0).to(torch.uint8).numpy()
