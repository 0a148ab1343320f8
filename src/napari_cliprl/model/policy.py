"""Refinement agent (PixelRL-style actor-critic, one agent per stride-4 cell) and its actions.

Action ids per cell, with K classes (A = K + 3, or K + 6 with the side actions):

====================  ==========================================================================
``KEEP`` = 0          logits unchanged
``1 + k``             push class k: ``L[k] += delta``
``K + 1`` (smooth)    the cell's logits become the 3x3 mean of the logits (border: valid cells)
``K + 2`` (majority)  m = most frequent argmax label in the 3x3 neighbourhood (ties: lowest id);
                      ``L[m] = max(L[m], max_{j != m} L[j] + delta)`` so m wins by >= delta
``K + 3`` (forward)   take the forward-propagated label: the forward side's gain wins the cell,
                      the backward side's is 0 (``model.fusion_head.apply_side_actions``)
``K + 4`` (backward)  take the backward-propagated label (the same, sides swapped)
``K + 5`` (image)     take the image's label: both side gains 0, the model's logits decide
====================  ==========================================================================

The side actions exist in a model trained for video fusion (``side_actions=True``); they act on
the side gains ``G`` of a frame with a propagation context (``model.fusion_head``) and leave the
logits alone, so on a frame without one they are no-ops.

The transition ``apply_actions`` is deterministic and has no parameters.

:func:`run_episode` is the agent's one episode loop: inference (``CLIPRL.refine``, greedy),
training rollouts (sampled, mixed with the oracle) and the replay that recomputes the policy
with gradients (fixed actions) differ only in how actions are chosen, a ``select`` callback.
Whatever the agent sees or may do (state, transition) is wired in that one loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from napari_cliprl.config import check_steps
from napari_cliprl.model.fusion_head import apply_side_actions, fused_grid_logits, side_areas

KEEP = 0


def num_actions(num_classes: int, side_actions: bool = False) -> int:
    """A = K + 3, or K + 6 with the side actions."""
    return num_classes + (6 if side_actions else 3)


def action_names(class_names: list[str], side_actions: bool = False) -> list[str]:
    """Display names of the A actions, in id order."""
    sides = ["take forward", "take backward", "take image"] if side_actions else []
    return ["keep", *(f"push {n}" for n in class_names), "smooth", "majority", *sides]


def smooth_action(num_classes: int) -> int:
    return num_classes + 1


def majority_action(num_classes: int) -> int:
    return num_classes + 2


def forward_action(num_classes: int) -> int:
    """Id of "take the forward-propagated label" (side actions only)."""
    return num_classes + 3


def backward_action(num_classes: int) -> int:
    """Id of "take the backward-propagated label" (side actions only)."""
    return num_classes + 4


def image_action(num_classes: int) -> int:
    """Id of "take the image's label": no side bonus in the cell (side actions only)."""
    return num_classes + 5


def apply_actions(
    logits: torch.Tensor, actions: torch.Tensor, delta: float = 2.0, side_actions: bool = False
) -> torch.Tensor:
    """One transition of the logits: logits B x K x h x w, actions B x h x w (long, 0..A-1)
    -> new logits (the side actions leave a cell's logits alone).

    Deterministic; returns a new tensor (the input is not modified).
    """
    B, K, h, w = logits.shape
    if actions.shape != (B, h, w):
        raise ValueError(f"actions must be {(B, h, w)}, got {tuple(actions.shape)}")
    A = num_actions(K, side_actions)
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= A):
        raise ValueError(f"action ids must be in 0..{A - 1} for {K} classes")
    act = actions.unsqueeze(1)  # B x 1 x h x w
    is_push = ((act >= 1) & (act <= K)).to(logits.dtype)
    out = logits.scatter_add(1, (act - 1).clamp(0, K - 1), delta * is_push)
    smooth_id, major_id = K + 1, K + 2
    if bool((actions == smooth_id).any()):
        mean = F.avg_pool2d(logits, 3, stride=1, padding=1, count_include_pad=False)
        out = torch.where(act == smooth_id, mean, out)
    if bool((actions == major_id).any()):
        out = torch.where(act == major_id, _majority(logits, delta), out)
    return out


def _majority(logits: torch.Tensor, delta: float) -> torch.Tensor:
    """Logits where every cell's 3x3 majority class leads by at least ``delta``."""
    K = logits.shape[1]
    labels = logits.argmax(1)
    onehot = F.one_hot(labels, K).permute(0, 3, 1, 2).to(logits.dtype)
    counts = F.avg_pool2d(onehot, 3, stride=1, padding=1, count_include_pad=True) * 9
    winner = counts.round().argmax(1, keepdim=True)  # first max = lowest id on ties
    mask = F.one_hot(winner[:, 0], K).permute(0, 3, 1, 2).bool()
    others = logits.masked_fill(mask, float("-inf")).amax(1, keepdim=True)
    current = logits.gather(1, winner)
    target = torch.maximum(current, others + delta)
    return logits.scatter(1, winner, target)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-cell entropy (nats) of softmax(logits): B x K x h x w -> B x 1 x h x w."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1, keepdim=True)


def select_actions(
    action_logits: torch.Tensor, greedy: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """B x A x h x w action logits -> B x h x w long actions (argmax, or sampled)."""
    if greedy:
        return action_logits.argmax(1)
    probs = F.softmax(action_logits.float(), dim=1)
    B, A, h, w = probs.shape
    flat = probs.permute(0, 2, 3, 1).reshape(-1, A)
    return torch.multinomial(flat, 1, generator=generator).view(B, h, w)


def action_log_probs(
    action_logits: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log pi(a), policy entropy), both B x h x w, for the A2C/PPO losses."""
    logp = F.log_softmax(action_logits.float(), dim=1)
    chosen = logp.gather(1, actions.unsqueeze(1)).squeeze(1)
    ent = -(logp.exp() * logp).sum(1)
    return chosen, ent


class ConvGRU(nn.Module):
    """Convolutional GRU cell: x B x C_in x h x w, hidden B x C x h x w -> new hidden.

    The update/reset gates are 1x1 convolutions, the candidate a ``kernel`` x ``kernel`` one
    (the spatial context; 2.5x cheaper than 3x3 gates as well).
    """

    def __init__(self, *, in_channels: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        self.gates = nn.Conv2d(in_channels + hidden, 2 * hidden, 1)
        self.candidate = nn.Conv2d(in_channels + hidden, hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * n


class RefinementAgent(nn.Module):
    """Actor-critic over per-cell actions with a ConvGRU memory.

    Arguments (keyword-only):
        feature_dim: C of the decoder's pixel features F.
        num_classes: K.
        hidden: channels of the encoder, the ConvGRU memory and the heads.
        delta: the logit step of ``apply_actions``.
        context_channels: C' of a propagation context (``model.fusion_head``); 0: none.
        side_actions: "take the forward / backward / image's label" (A = K + 6).

    State (``build_state``): F (detached), softmax(L_t), softmax(L0), entropy(L_t), t/T;
    B x (C + 2K + 2) x h x w; with ``context_channels``, the context (zeros without one) and
    the squashed side gains G / (1 + G) follow (C' + 2 channels). With a context, L_t are the
    fused grid logits. A per-cell 1x1 encoder sees the state at stride 4; the memory (a 3x3
    ConvGRU) runs at stride 8 for context, B x hidden x ceil(h/2) x ceil(w/2), and is
    upsampled back to the cells, where 1x1 policy and value heads read it with the encoding.
    """

    def __init__(
        self,
        *,
        feature_dim: int,
        num_classes: int,
        hidden: int = 64,
        delta: float = 2.0,
        context_channels: int = 0,
        side_actions: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.side_actions = bool(side_actions)
        self.num_actions = num_actions(num_classes, self.side_actions)
        self.hidden = hidden
        self.delta = float(delta)
        self.context_channels = int(context_channels)
        extra = self.context_channels + 2 if self.context_channels else 0
        self.state_channels = feature_dim + 2 * num_classes + 2 + extra
        self.encoder = nn.Sequential(nn.Conv2d(self.state_channels, hidden, 1), nn.GELU())
        self.memory = ConvGRU(in_channels=hidden, hidden=hidden)
        self.trunk = nn.Sequential(nn.Conv2d(2 * hidden, hidden, 1), nn.GELU())
        self.policy = nn.Conv2d(hidden, self.num_actions, 1)
        self.value = nn.Conv2d(hidden, 1, 1)
        nn.init.normal_(self.policy.weight, std=0.01)
        nn.init.zeros_(self.policy.bias)
        with torch.no_grad():
            self.policy.bias[KEEP] = 1.0  # an untrained agent mostly keeps

    def initial_hidden(self, features: torch.Tensor) -> torch.Tensor:
        """Zero memory B x hidden x ceil(h/2) x ceil(w/2) for features B x C x h x w."""
        B, _, h, w = features.shape
        return features.new_zeros(B, self.hidden, (h + 1) // 2, (w + 1) // 2)

    def build_state(
        self,
        features: torch.Tensor,
        logits: torch.Tensor,
        logits0: torch.Tensor,
        step: int,
        total_steps: int,
        context: torch.Tensor | None = None,
        gains: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """State B x S x h x w at step t = ``step`` of ``total_steps`` (T >= 1); ``context``
        B x C' x h x w and ``gains`` B x 2 x h x w only for an agent with context channels
        (None: zeros)."""
        B, _, h, w = logits.shape
        progress = logits.new_full((B, 1, h, w), step / max(total_steps, 1))
        logp = F.log_softmax(logits, 1)
        probs = logp.exp()
        ent = -(probs * logp).sum(1, keepdim=True)
        parts = [features.detach(), probs, F.softmax(logits0, 1), ent, progress]
        if self.context_channels:
            if context is None:
                context = logits.new_zeros(B, self.context_channels, h, w)
            squashed = logits.new_zeros(B, 2, h, w) if gains is None else gains / (1 + gains)
            parts += [context.to(logits.dtype), squashed.to(logits.dtype)]
        elif context is not None:
            raise ValueError("this agent has no context channels (a model without fusion)")
        return torch.cat(parts, dim=1)

    def act(
        self, state: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """state B x S x h x w, hidden B x H x ceil(h/2) x ceil(w/2) ->
        (action logits B x A x h x w, value B x 1 x h x w, new hidden)."""
        if state.shape[1] != self.state_channels:
            raise ValueError(
                f"state has {state.shape[1]} channels, expected {self.state_channels}; "
                "build it with agent.build_state(...)"
            )
        cells = self.encoder(state)
        coarse = F.avg_pool2d(cells, 2, ceil_mode=True)
        if coarse.shape[-2:] != hidden.shape[-2:]:
            raise ValueError(
                f"hidden is {tuple(hidden.shape[-2:])}, expected {tuple(coarse.shape[-2:])}; "
                "create it with agent.initial_hidden(F)"
            )
        hidden = self.memory(coarse, hidden)
        context = F.interpolate(hidden, size=cells.shape[-2:], mode="nearest")
        x = self.trunk(torch.cat([cells, context], 1))
        return self.policy(x), self.value(x), hidden

    def forward(
        self, state: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.act(state, hidden)

    def transition(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``apply_actions`` with this agent's delta: L_{t+1} = apply(L_t, a_t)."""
        return apply_actions(logits, actions, delta=self.delta, side_actions=self.side_actions)

    def transition_gains(
        self, logits: torch.Tensor, gains: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        """G_{t+1}: the side actions' effect on the side gains (B x 2 x h x w)."""
        if not self.side_actions:
            return gains
        K = self.num_classes
        fwd, bwd = actions == forward_action(K), actions == backward_action(K)
        image = actions == image_action(K)
        return apply_side_actions(logits, gains, fwd, bwd, self.delta, take_image=image)


@dataclass
class AgentStep:
    """One step t of an episode (all B x ... tensors of one batch of episodes).

    logits: L_t, B x K x h x w (before the action; with a context, the fused grid logits);
    action_logits: B x A x h x w; value: B x 1 x h x w; actions: a_t, B x h x w long;
    next_logits: L_{t+1} after a_t (fused with a context). ``raw``/``next_raw`` (logits
    without the side bonus) and ``gains``/``next_gains`` (B x 2 x h x w) are the model's state
    before and after; without a context ``raw`` is ``logits`` and the gains are None.
    """

    t: int
    logits: torch.Tensor
    action_logits: torch.Tensor
    value: torch.Tensor
    actions: torch.Tensor
    next_logits: torch.Tensor
    raw: torch.Tensor | None = None
    next_raw: torch.Tensor | None = None
    gains: torch.Tensor | None = None
    next_gains: torch.Tensor | None = None


Select = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""select(t, action_logits B x A x h x w, logits L_t B x K x h x w) -> actions B x h x w long."""


def greedy(t: int, action_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The ``select`` of inference: the most probable action per cell."""
    return select_actions(action_logits, greedy=True)


def sampled(generator: torch.Generator | None = None) -> Select:
    """A ``select`` drawing each cell's action from the policy (with ``generator``)."""

    def select(t: int, action_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return select_actions(action_logits, greedy=False, generator=generator)

    return select


def replayed(actions: torch.Tensor) -> Select:
    """A ``select`` taking fixed actions (T x B x h x w): the replay of a recorded episode."""
    return lambda t, action_logits, logits: actions[t]


def run_episode(
    agent: RefinementAgent,
    L0: torch.Tensor,
    features: torch.Tensor,
    steps: int,
    select: Select = greedy,
    *,
    gains: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
) -> Iterator[AgentStep]:
    """Play ``steps`` agent steps from step 0's logits, yielding each :class:`AgentStep`.

    L0: B x K x h x w logits; features: F, B x C x h x w pixel features; steps: T, at most
    limits.MAX_STEPS; gains (B x 2 x h x w, from ``FusionHead``) and context (B x C' x h x w)
    for frames with a propagation context (``model.fusion_head``): the agent then sees and
    ``select`` gets the fused grid logits. Gradients flow as the caller's mode allows
    (``torch.no_grad()`` for inference and rollouts, not for the replay).
    """
    steps = check_steps(steps, "episode length")
    areas = None if context is None else side_areas(context, L0.shape[1])
    if gains is None and areas is not None:
        gains = L0.new_zeros(L0.shape[0], 2, *L0.shape[-2:])

    def fused(raw: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        return raw if areas is None or g is None else fused_grid_logits(raw, g, areas)

    hidden = agent.initial_hidden(features)
    raw, first = L0, fused(L0, gains)
    current = first
    for t in range(steps):
        state = agent.build_state(features, current, first, t, steps, context, gains)
        action_logits, value, hidden = agent.act(state, hidden)
        actions = select(t, action_logits, current)
        nxt_raw = agent.transition(raw, actions)
        nxt_gains = None if gains is None else agent.transition_gains(nxt_raw, gains, actions)
        nxt = fused(nxt_raw, nxt_gains)
        yield AgentStep(
            t, current, action_logits, value, actions, nxt, raw, nxt_raw, gains, nxt_gains
        )
        raw, gains, current = nxt_raw, nxt_gains, nxt
