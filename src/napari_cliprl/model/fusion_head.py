"""Video fusion in the model: the fusion head (the decoder's prior from propagated labels), the
layout of the propagation context on the grid, the fused grid logits and the side actions.

A frame with reviewed frames around it has a *propagation context*
(``napari_cliprl.fusion.context``): the reviewed label maps carried to it by optical flow from
the nearest reviewed frame before it (forward side) and after it (backward side). On the
stride-4 grid the context is ``C = 2 (K + 5) + 1`` channels (``napari_cliprl.fusion.grid``):

====================  ======================================================================
per side (fwd, bwd)   K class areas ``A_s[k] = mean over the cell of (beta + c_s) [P_s = k]``,
                      mean confidence, carried fraction, present (1/0),
                      ``exp(-d / 4)``, ``exp(-d / 16)`` of the side's distance d in frames
last                  fraction of the cell where both sides exist and disagree
====================  ======================================================================

The model's state of a frame with a context is ``(L, G)``: logits ``L`` (K x h x w) and
non-negative side gains ``G`` (2 x h x w). Its *fused grid logits* are
``L + G_f A_f + G_b A_b`` (what the agent sees and is rewarded on); its full-resolution labels
add ``G_s (beta + c_s(x))`` to the class each side carries to pixel x
(``napari_cliprl.fusion.grid.fused_labels``). :class:`FusionHead` makes step 0's ``(L, G)``
from the decoder's logits; the agent's side actions (:func:`apply_side_actions`) set ``G``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BETA = 0.25  # confidence floor of a side's bonus: a side filled where flow left the frame
DISTANCE_SCALES = (4.0, 16.0)  # distance encodings exp(-d / s) of a side
SIDE_EXTRA = 3 + len(DISTANCE_SCALES)  # mean conf, carried fraction, present, distances


def context_channels_count(num_classes: int) -> int:
    """C of the propagation context: per side K areas + 5 scalars, plus disagreement."""
    return 2 * (num_classes + SIDE_EXTRA) + 1


def side_areas(context: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Both sides' class areas from a context: B x C x h x w -> B x 2 x K x h x w."""
    K, block = num_classes, num_classes + SIDE_EXTRA
    return torch.stack([context[:, :K], context[:, block : block + K]], 1)


def fused_grid_logits(
    logits: torch.Tensor, gains: torch.Tensor, areas: torch.Tensor
) -> torch.Tensor:
    """``L + G_f A_f + G_b A_b``: logits B x K x h x w, gains B x 2 x h x w, areas
    B x 2 x K x h x w -> B x K x h x w."""
    return logits + (gains.unsqueeze(2).to(logits.dtype) * areas.to(logits.dtype)).sum(1)


def side_action_gain(logits: torch.Tensor, delta: float, beta: float = BETA) -> torch.Tensor:
    """B x 1 x h x w: the gain that makes a side win every pixel of a cell by ``delta``.

    A pixel's upsampled logits are a convex mix of the logits of cells in the 3x3
    neighbourhood of its cell, so no two classes there differ by more than that
    neighbourhood's largest logit range R; a side bonus of at least ``gain * beta`` beats it
    when ``gain = (R + delta) / beta``.
    """
    spread = logits.amax(1, keepdim=True) - logits.amin(1, keepdim=True)
    reach = F.max_pool2d(spread, 3, stride=1, padding=1)
    return (reach + delta) / beta


def apply_side_actions(
    logits: torch.Tensor,
    gains: torch.Tensor,
    take_forward: torch.Tensor,
    take_backward: torch.Tensor,
    delta: float,
    beta: float = BETA,
    take_image: torch.Tensor | None = None,
) -> torch.Tensor:
    """New gains after "take the forward / backward label" (or "take the image's label") in
    the masked cells.

    logits B x K x h x w (the logits the gains compete with), gains B x 2 x h x w, masks
    B x h x w bool. In a cell that takes side s: ``G_s = max(G_s, side_action_gain)`` and the
    other side's gain is 0, so the cell's full-resolution labels are side s's wherever it has
    an opinion; a cell that takes the image sets both gains to 0 (its labels are the model's).
    Deterministic, no parameters; without a context the gains have no effect.
    """
    need = side_action_gain(logits, delta, beta)[:, 0]
    out = gains.clone()
    for s, mask in enumerate((take_forward, take_backward)):
        if bool(mask.any()):
            out[:, s] = torch.where(mask, torch.maximum(gains[:, s], need), out[:, s])
            out[:, 1 - s] = torch.where(mask, torch.zeros_like(out[:, 1 - s]), out[:, 1 - s])
    if take_image is not None and bool(take_image.any()):
        out = torch.where(take_image[:, None], torch.zeros_like(out), out)
    return out


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class FusionHead(nn.Module):
    """Decoder logits + propagation context -> step 0's ``(L, G)`` of a frame with a context.

    Arguments (keyword-only):
        num_classes: K.
        hidden: channels of the two hidden layers (1x1, then 3x3 for neighbourhood context).
        initial_gain: both sides' gain before training. Large: the untrained head gives each
            pixel the more confident side's label (the decoder only breaks ties), which
            measured better than smaller gains on the tuning clips (docs/benchmarks.md).

    Per cell it sees the decoder's log-probabilities and the context and outputs a logit
    correction dL (K) and the gains (softplus, >= 0). Small on purpose (~10 k parameters for
    K = 13): it learns from a handful of reviewed frames. An untrained head leaves the logits
    alone and gives every cell ``initial_gain``.
    """

    def __init__(self, *, num_classes: int, hidden: int = 32, initial_gain: float = 1000.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.context_channels = context_channels_count(num_classes)
        self.inp = nn.Conv2d(num_classes + self.context_channels, hidden, 1)
        self.mix = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, num_classes + 2, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        with torch.no_grad():
            self.out.bias[num_classes:] = _inverse_softplus(initial_gain)

    def forward(
        self, logits: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """logits B x K x h x w (decoder), context B x C x h x w ->
        (L0 = logits + dL, B x K x h x w; gains B x 2 x h x w >= 0)."""
        if context.shape[1] != self.context_channels:
            raise ValueError(
                f"context has {context.shape[1]} channels, expected {self.context_channels}"
            )
        x = torch.cat([F.log_softmax(logits.float(), 1), context.float()], 1)
        x = F.gelu(self.mix(F.gelu(self.inp(x))))
        out = self.out(x)
        K = self.num_classes
        return logits + out[:, :K].to(logits.dtype), F.softplus(out[:, K:]).to(logits.dtype)
