"""Fusion samples as tensors: what the head and the agent train on.

For each :class:`~napari_cliprl.fusion.samples.FusionSample` (a reviewed frame seen through a
context built without it) and the decoder's outputs on that frame from a decoder that never
saw it (:mod:`~napari_cliprl.training.fusion_heldout`):

- on the grid (h x w): decoder logits ``L`` (K), pixel features ``F`` (C), context channels
  (:func:`~napari_cliprl.fusion.grid.context_channels`) and the majority target;
- at the *fusion resolution* (``res``: H' x W', a few pixels per full-size pixel block, where
  the head's loss is computed): both sides' labels (255 = none) and bonus weights
  ``(beta + c) [valid]``, the target and a per-pixel loss weight (corrected pixels more).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from napari_cliprl.fusion.context import IGNORE, FrameContext
from napari_cliprl.fusion.grid import cell_index, context_channels
from napari_cliprl.fusion.samples import FusionSample
from napari_cliprl.model.fusion_head import BETA


@dataclass
class FusionData:
    """N fusion samples as tensors (CPU). Shapes: N x K x h x w logits, N x C x h x w
    features, N x C' x h x w context, N x 2 x H' x W' side labels (long) and weights,
    N x H' x W' target (long) and pixel weight, N x h x w grid target, N gaps."""

    logits: torch.Tensor
    features: torch.Tensor
    context: torch.Tensor
    side_labels: torch.Tensor
    side_weight: torch.Tensor
    target: torch.Tensor
    pixel_weight: torch.Tensor
    grid_target: torch.Tensor
    gap: torch.Tensor
    index: list[int]  # target frame of each sample
    kind: list[str]

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def select(self, rows: Sequence[int] | torch.Tensor) -> FusionData:
        rows = torch.as_tensor(rows, dtype=torch.long)
        picked = [int(r) for r in rows]
        return FusionData(
            *(getattr(self, name)[rows] for name in _TENSORS),
            index=[self.index[r] for r in picked],
            kind=[self.kind[r] for r in picked],
        )


_TENSORS = (
    "logits",
    "features",
    "context",
    "side_labels",
    "side_weight",
    "target",
    "pixel_weight",
    "grid_target",
    "gap",
)


def _down_labels(labels: np.ndarray, res: tuple[int, int]) -> np.ndarray:
    return cv2.resize(labels, (res[1], res[0]), interpolation=cv2.INTER_NEAREST)


def _side_maps(
    context: FrameContext, res: tuple[int, int], beta: float
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full((2, *res), IGNORE, np.int64)
    weight = np.zeros((2, *res), np.float32)
    for s, side in enumerate(context.sides):
        if side is None:
            continue
        lab = _down_labels(side.labels, res)
        conf = cv2.resize(side.conf, (res[1], res[0]), interpolation=cv2.INTER_AREA)
        labels[s] = lab
        weight[s] = np.where(lab != IGNORE, beta + conf, 0.0)
    return labels, weight


def grid_majority(labels: np.ndarray, grid: tuple[int, int], num_classes: int) -> np.ndarray:
    """h x w long: each cell's most frequent label (255 if most of the cell is ignore)."""
    rows, cols = cell_index(labels.shape, grid)
    ids = rows[:, None] * grid[1] + cols[None, :]
    lab = labels.astype(np.int64)
    valid = lab != IGNORE
    key = ids * num_classes + np.where(valid, lab, 0)
    votes = np.bincount(key[valid], minlength=grid[0] * grid[1] * num_classes)
    votes = votes.reshape(-1, num_classes)
    total = np.bincount(ids.ravel(), minlength=grid[0] * grid[1])
    out = votes.argmax(1)
    out[votes.sum(1) < 0.5 * total] = IGNORE
    return out.reshape(grid)


def build_fusion_data(
    samples: Sequence[FusionSample],
    outputs: Mapping[int, tuple[torch.Tensor, torch.Tensor]],
    targets: Mapping[int, np.ndarray],
    *,
    num_classes: int,
    changed: Mapping[int, np.ndarray] | None = None,
    changed_weight: float = 2.0,
    beta: float = BETA,
    res_scale: int = 4,
) -> FusionData:
    """Tensors of ``samples``: ``outputs[i]`` = (L K x h x w, F C x h x w) of frame i from a
    decoder that never saw it; ``targets[i]`` its H x W uint8 correction; ``changed[i]`` an
    optional H x W bool "the annotator changed this pixel" (weighs ``changed_weight``).
    The fusion resolution is ``res_scale`` times the grid."""
    if not samples:
        raise ValueError("no fusion samples")
    K = num_classes
    grid = tuple(outputs[samples[0].index][0].shape[-2:])
    res = (res_scale * grid[0], res_scale * grid[1])
    cols: dict[str, list] = {name: [] for name in _TENSORS}
    for s in samples:
        L, feats = outputs[s.index]
        side_labels, side_weight = _side_maps(s.context, res, beta)
        target = targets[s.index]
        weight = np.ones(res, np.float32)
        if changed is not None and s.index in changed:
            moved = _down_labels(changed[s.index].astype(np.uint8), res) > 0
            weight[moved] = changed_weight
        cols["logits"].append(L.float())
        cols["features"].append(feats.float())
        cols["context"].append(context_channels(s.context, K, grid, beta))
        cols["side_labels"].append(torch.from_numpy(side_labels))
        cols["side_weight"].append(torch.from_numpy(side_weight))
        cols["target"].append(torch.from_numpy(_down_labels(target, res).astype(np.int64)))
        cols["pixel_weight"].append(torch.from_numpy(weight))
        cols["grid_target"].append(torch.from_numpy(grid_majority(target, grid, K)))
        cols["gap"].append(torch.tensor(s.gap))
    return FusionData(
        *(torch.stack(cols[name]) for name in _TENSORS),
        index=[s.index for s in samples],
        kind=[s.kind for s in samples],
    )


def fused_scores_at(
    logits: torch.Tensor, gains: torch.Tensor, side_labels: torch.Tensor, side_weight: torch.Tensor
) -> torch.Tensor:
    """Batched, differentiable fused scores at the fusion resolution (grid.fused_scores):
    logits B x K x h x w, gains B x 2 x h x w, side_labels/side_weight B x 2 x H' x W' ->
    B x K x H' x W'."""
    B, K, h, w = logits.shape
    res = tuple(side_labels.shape[-2:])
    scores = F.interpolate(logits, size=res, mode="bilinear", align_corners=False)
    rows, cols = cell_index(res, (h, w))
    up = gains[:, :, torch.from_numpy(rows)][:, :, :, torch.from_numpy(cols)]
    bonus = up * side_weight  # B x 2 x H' x W'
    index = side_labels.clamp(max=K - 1)
    for s in range(2):
        scores = scores.scatter_add(1, index[:, s : s + 1], bonus[:, s : s + 1])
    return scores
