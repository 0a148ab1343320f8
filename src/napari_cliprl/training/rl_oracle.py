"""The greedy one-step oracle of phase B: the immediate reward of every action in every cell.

Used by the imitation warm start (``rl.imitation_loss``) and logged in every rollout. Exact,
because a cell's next logits depend only on its own action and its neighbours' current logits,
never on the neighbours' actions.
"""

from __future__ import annotations

import torch
from torch import nn

from napari_cliprl.model.fusion_head import fused_grid_logits
from napari_cliprl.model.policy import KEEP, apply_actions
from napari_cliprl.training.losses import brier_gain_reward


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
) -> torch.Tensor:
    """``action_gains`` of a state with side gains: A x B x h x w, on the fused grid logits.

    raw: logits B x K x h x w (without the side bonus), gains B x 2 x h x w, areas
    B x 2 x K x h x w (``model.fusion_head.side_areas``). Exact as ``action_gains``: a cell's
    next fused logits depend only on its own action and its neighbours' current logits.
    """
    B, K, h, w = raw.shape
    probs = fused_grid_logits(raw, gains, areas).softmax(1)
    out = torch.empty(agent.num_actions, B, h, w, device=raw.device)
    for a in range(agent.num_actions):
        act = torch.full((B, h, w), a, device=raw.device)
        nxt = agent.transition(raw, act)
        nxt_fused = fused_grid_logits(nxt, agent.transition_gains(nxt, gains, act), areas)
        out[a] = brier_gain_reward(probs, nxt_fused.softmax(1), target, weight)
    return out


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
