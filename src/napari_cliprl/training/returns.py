"""Return and advantage maths of the RL phase: pure functions, unit-tested on their own.

Buffers are T x N (T steps of an episode, N = batch x cells: every stride-4 cell is an agent).
Episodes in this project all start at t = 0 and end after T steps, so the value after the last
step is 0 unless ``next_value`` says otherwise (a truncated rollout).
"""

from __future__ import annotations

import torch


def discounted_returns(
    rewards: torch.Tensor, gamma: float, next_value: torch.Tensor | None = None
) -> torch.Tensor:
    """n-step returns G_t = r_t + gamma r_{t+1} + ... + gamma^(T-t) V(s_T): T x N -> T x N."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0]) if next_value is None else next_value.clone()
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def generalized_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    gamma: float,
    gae_lambda: float,
    next_value: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016): (advantages, returns = advantages + values), both T x N.

    delta_t = r_t + gamma V(s_{t+1}) - V(s_t);  A_t = delta_t + gamma lambda A_{t+1}.
    gae_lambda = 1 gives n-step returns minus values (A2C); 0 gives one-step TD errors.
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        if t == T - 1:
            nextvalues = torch.zeros_like(values[t]) if next_value is None else next_value
        else:
            nextvalues = values[t + 1]
        delta = rewards[t] + gamma * nextvalues - values[t]
        lastgaelam = delta + gamma * gae_lambda * lastgaelam
        advantages[t] = lastgaelam
    return advantages, advantages + values


def normalize_advantages(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit std (per batch), as in cleanrl's ``norm_adv``."""
    return (advantages - advantages.mean()) / (advantages.std() + eps)


def ppo_policy_loss(
    newlogprob: torch.Tensor, oldlogprob: torch.Tensor, advantages: torch.Tensor, clip_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate of PPO: (loss, approx_kl). All inputs of equal shape."""
    logratio = newlogprob - oldlogprob
    ratio = logratio.exp()
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    approx_kl = ((ratio - 1) - logratio).mean()
    return torch.max(pg_loss1, pg_loss2).mean(), approx_kl
