"""The greedy one-step oracle of phase B: the immediate reward of every action in every cell.

Used by the imitation warm start (``rl.imitation_loss``) and logged in every rollout. Exact,
because a cell's next logits depend only on its own action and its neighbours' current logits,
never on the neighbours' actions.

Fused episodes (a frame with a propagation context) are rewarded on what the user is shown:
the full-resolution fused map (``fusion.grid``), sampled at the fusion resolution (a few
pixels per cell, ``training.fusion_data``), its per-pixel Brier gain averaged over each cell's
pixels (:func:`fused_reward`). On the grid, "take image" can look right where the cell's
majority class matches the decoder's argmax while the carried labels were right at the pixels
(a boundary through the cell); at the pixels it is rewarded only where it fixes them. There the
oracle of a non-side action is approximate (its logits also move the neighbours' pixels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_cliprl.model.fusion_head import fused_grid_logits
from napari_cliprl.model.policy import KEEP, AgentStep, apply_actions
from napari_cliprl.training.fusion_data import fused_scores_at
from napari_cliprl.training.losses import IGNORE_INDEX, brier_gain_reward

State = tuple[torch.Tensor, torch.Tensor]
"""The model's state of a fused episode: (raw logits B x K x h x w, side gains B x 2 x h x w)."""


@torch.no_grad()
def action_gains(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, delta: float
) -> torch.Tensor:
    """Immediate reward of every action in every cell: A x B x h x w (A = K + 3).

    logits B x K x h x w, target B x h x w. Exact, because a cell's next logits depend only on
    its own action (and its neighbours' current logits), never on the neighbours' actions.
    """
    B, K, h, w = logits.shape
    probs = logits.softmax(1)
    gains = torch.empty(K + 3, B, h, w, device=logits.device)
    for a in range(K + 3):
        nxt = apply_actions(logits, torch.full((B, h, w), a, device=logits.device), delta)
        gains[a] = brier_gain_reward(probs, nxt.softmax(1), target, weight)
    return gains


@torch.no_grad()
def fused_action_gains(
    agent: nn.Module,
    raw: torch.Tensor,
    gains: torch.Tensor,
    areas: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    pixels: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``action_gains`` of a state with side gains: A x B x h x w (:func:`fused_reward`).

    raw: logits B x K x h x w (without the side bonus), gains B x 2 x h x w, areas
    B x 2 x K x h x w (``model.fusion_head.side_areas``), pixels: see :func:`fused_reward`.
    """
    B, K, h, w = raw.shape
    out = torch.empty(agent.num_actions, B, h, w, device=raw.device)
    for a in range(agent.num_actions):
        act = torch.full((B, h, w), a, device=raw.device)
        nxt = agent.transition(raw, act)
        after = (nxt, agent.transition_gains(nxt, gains, act))
        out[a] = fused_reward((raw, gains), after, areas, target, weight, pixels)
    return out


def fused_reward(
    before: State,
    after: State,
    areas: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    pixels: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Reward per cell (B x h x w) of a fused step from ``before`` to ``after`` (raw, gains).

    With ``pixels`` (``side_labels``/``side_weight`` B x 2 x H' x W' and ``target``
    B x H' x W' at the fusion resolution, a whole number of pixels per cell): in rows whose
    pixel target is not all ignored, the class-weighted Brier gain of the full-resolution
    fused map averaged over each cell's pixels (:func:`pixel_reward`); elsewhere (and without
    ``pixels``) the Brier gain of the fused grid logits against the grid ``target``.
    """
    probs = [fused_grid_logits(raw, g, areas).softmax(1) for raw, g in (before, after)]
    reward = brier_gain_reward(probs[0], probs[1], target, weight)
    if pixels is None:
        return reward
    rows = (pixels["target"] != IGNORE_INDEX).flatten(1).any(1)
    if not bool(rows.any()):
        return reward
    pick = [(raw[rows], g[rows]) for raw, g in (before, after)]
    sub = {k: v[rows] for k, v in pixels.items()}
    reward = reward.clone()
    reward[rows] = pixel_reward(pick[0], pick[1], sub, weight)
    return reward


def step_reward(
    step: AgentStep,
    areas: torch.Tensor | None,
    target: torch.Tensor,
    weight: torch.Tensor,
    pixels: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The reward per cell (B x h x w) of one step of an episode: the Brier gain of its logits,
    or with a context (``areas``) :func:`fused_reward`."""
    if areas is None:
        probs = step.logits.softmax(1), step.next_logits.softmax(1)
        return brier_gain_reward(*probs, target, weight)
    before, after = (step.raw, step.gains), (step.next_raw, step.next_gains)
    return fused_reward(before, after, areas, target, weight, pixels)


def pixel_reward(
    before: State, after: State, pixels: dict[str, torch.Tensor], weight: torch.Tensor
) -> torch.Tensor:
    """B x h x w: mean over each cell's pixels of the class-weighted Brier gain of the fused
    full-resolution probabilities (``fusion_data.fused_scores_at``); ignored pixels count 0."""
    labels, bonus, target = pixels["side_labels"], pixels["side_weight"], pixels["target"]
    probs = [fused_scores_at(raw, g, labels, bonus).softmax(1) for raw, g in (before, after)]
    gain = brier_gain_reward(probs[0], probs[1], target, weight)
    scale = target.shape[-1] // before[0].shape[-1]
    return F.avg_pool2d(gain[:, None], scale)[:, 0]


def oracle_actions(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, delta: float, margin: float
) -> torch.Tensor:
    """Greedy one-step oracle: per cell, the action with the largest Brier-gain reward.

    logits B x K x h x w, target B x h x w -> B x h x w long. "keep" unless the best action
    gains more than ``margin``; ignored cells keep.
    """
    return best_actions(action_gains(logits, target, weight, delta), margin)


def best_actions(gains: torch.Tensor, margin: float) -> torch.Tensor:
    """A x B x h x w gains -> B x h x w argmax actions ("keep" unless > ``margin``)."""
    best_gain, best = gains.max(0)
    return torch.where(best_gain > margin, best, torch.full_like(best, KEEP))
