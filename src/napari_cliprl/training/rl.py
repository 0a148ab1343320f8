"""Phase B, RL: the refinement agent on cached decoder outputs (decoder frozen).

Every stride-4 cell is an agent (PixelRL); an episode starts from the decoder's logits L0 and
runs T steps of ``L_{t+1} = apply_actions(L_t, a_t)``. Reward per cell: the class-weighted Brier
gain of DESIGN 2.5 (``losses.brier_gain_reward``). Training:

1. imitation warm start on the greedy one-step oracle, which knows the immediate reward of
   every action in every cell: by default the action logits regress those rewards, so the
   greedy action is the oracle's choice *in expectation* given what the agent sees
   (``imitation_loss``); states are visited by a mix of oracle and policy (DAgger-style);
2. synchronous A2C with n-step returns and an entropy bonus, or PPO (``algo="ppo"``).

Reads like cleanrl's ppo.py: config dataclass, buffers allocated up front, names from the
papers (gamma, gae_lambda, clip_coef, ent_coef, b_ prefixes). The return/advantage maths lives
in :mod:`returns` and is unit-tested on its own.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from napari_cliprl.config import check_steps
from napari_cliprl.model.fusion_head import side_areas
from napari_cliprl.model.policy import (
    KEEP,
    action_log_probs,
    replayed,
    run_episode,
    select_actions,
)
from napari_cliprl.training.config import CurriculumConfig, RLConfig
from napari_cliprl.training.curriculum import available_frames, episode_length
from napari_cliprl.training.distributed import DistContext, unwrap
from napari_cliprl.training.losses import IGNORE_INDEX, brier_gain_reward
from napari_cliprl.training.returns import (
    generalized_advantages,
    normalize_advantages,
    ppo_policy_loss,
)
from napari_cliprl.training.rl_cache import RLData
from napari_cliprl.training.rl_oracle import (
    action_gains,
    best_actions,
    fused_action_gains,
    oracle_actions,
)

__all__ = [
    "AgentReplay",
    "action_gains",
    "best_actions",
    "fused_action_gains",
    "imitation_loss",
    "oracle_actions",
    "rollout",
    "train_rl",
    "update",
]


class AgentReplay(nn.Module):
    """What DistributedDataParallel wraps in phase B: replays fixed actions through the agent.

    Because transitions are deterministic, the logits an episode visits depend only on L0 and
    the actions; one forward replays all T steps (``run_episode``, the loop inference and
    rollouts use) and returns what the losses need.
    """

    def __init__(self, agent: nn.Module) -> None:
        super().__init__()
        self.agent = agent

    def forward(
        self,
        L0: torch.Tensor,
        features: torch.Tensor,
        actions: torch.Tensor,
        gains: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L0 B x K x h x w, features B x C x h x w, actions T x B x h x w (gains
        B x 2 x h x w and context B x C' x h x w with video fusion) ->
        (action logits T x B x A x h x w, values T x B x h x w)."""
        T, select = actions.shape[0], replayed(actions)
        episode = list(
            run_episode(self.agent, L0, features, T, select, gains=gains, context=context)
        )
        return (
            torch.stack([step.action_logits for step in episode]),
            torch.stack([step.value[:, 0] for step in episode]),
        )


def sample_envs(
    data: RLData, progress: float, curriculum: CurriculumConfig, n: int, gen: torch.Generator
) -> torch.Tensor:
    """Indices of ``n`` cached states allowed at ``progress`` (curriculum), drawn uniformly;
    with fusion states, ``data.fusion_share`` of them from those (short gaps first)."""
    fused = 0
    if data.fusion_order is not None and len(data.fusion_order):
        fused = n if not len(data.order) else round(n * data.fusion_share)
    picks = []
    for order, count in ((data.order, n - fused), (data.fusion_order, fused)):
        if count:
            pool = torch.from_numpy(available_frames(order, progress, curriculum))
            picks.append(pool[torch.randint(0, len(pool), (count,), generator=gen)])
    return torch.cat(picks)


@torch.no_grad()
def rollout(
    agent: nn.Module,
    L0: torch.Tensor,
    features: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    T: int,
    config: RLConfig,
    gen: torch.Generator,
    oracle_beta: float = 0.0,
    *,
    gains0: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Play T steps (actions sampled from the policy, or the oracle's with prob ``oracle_beta``).

    L0 B x K x h x w, features B x C x h x w, target B x h x w (gains0 B x 2 x h x w and
    context B x C' x h x w with video fusion: rewards are then on the fused grid logits).
    Returns buffers allocated up front: actions, logprobs, rewards, values, oracle
    (T x B x h x w) and gains (T x B x A x h x w: the scaled reward every action would have had).
    """
    T = check_steps(T, "episode length")  # before the buffers are allocated
    B, K, h, w = L0.shape
    A = agent.num_actions
    buf = _buffers(T, B, A, (h, w), L0.device)
    gains, actions, oracle = buf["gains"], buf["actions"], buf["oracle"]
    areas = None if context is None else side_areas(context, K)
    if areas is not None and gains0 is None:
        gains0 = L0.new_zeros(B, 2, h, w)
    state = {"raw": L0, "gains": gains0}  # the model's (L_t, G_t), updated after each step

    def select(t: int, action_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if areas is None:
            g = action_gains(logits, target, weight, agent.delta)
            if A > g.shape[0]:  # side actions without a context: no-ops, no reward
                g = torch.cat([g, g.new_zeros(A - g.shape[0], *g.shape[1:])])
        else:
            g = fused_action_gains(agent, state["raw"], state["gains"], areas, target, weight)
        gains[t] = config.reward_scale * g.transpose(0, 1)
        oracle[t] = best_actions(g, config.oracle_margin)
        chosen = select_actions(action_logits.cpu(), greedy=False, generator=gen).to(L0.device)
        if oracle_beta > 0:
            coin = torch.rand((B, h, w), generator=gen).to(L0.device) < oracle_beta
            chosen = torch.where(coin, oracle[t], chosen)
        return chosen

    episode = run_episode(agent, L0, features, T, select, gains=gains0, context=context)
    for step in episode:
        t = step.t
        state.update(raw=step.next_raw, gains=step.next_gains)
        actions[t] = step.actions
        buf["logprobs"][t], _ = action_log_probs(step.action_logits, step.actions)
        buf["values"][t] = step.value[:, 0]
        buf["rewards"][t] = config.reward_scale * brier_gain_reward(
            step.logits.softmax(1), step.next_logits.softmax(1), target, weight
        )
    return buf


def _buffers(
    T: int, B: int, A: int, grid: tuple[int, int], device: torch.device
) -> dict[str, torch.Tensor]:
    """A rollout's buffers: actions, logprobs, rewards, values, oracle (T x B x h x w) and
    gains (T x B x A x h x w)."""
    cells = (T, B, *grid)
    return {
        "actions": torch.zeros(cells, dtype=torch.long, device=device),
        "logprobs": torch.zeros(cells, device=device),
        "rewards": torch.zeros(cells, device=device),
        "values": torch.zeros(cells, device=device),
        "oracle": torch.zeros(cells, dtype=torch.long, device=device),
        "gains": torch.zeros((T, B, A, *grid), device=device),
    }


def imitation_loss(
    action_logits: torch.Tensor,
    mb: dict[str, torch.Tensor],
    mask: torch.Tensor,
    kind: str = "q",
    margin: float = 0.0,
) -> torch.Tensor:
    """Warm-start loss on the greedy one-step oracle, per valid cell (T x B x A x h x w logits).

    The oracle knows the reward r(a) of every action in every cell (``action_gains``):

    - "q": the action logits regress r(a) for all actions (MSE), so the greedy action
      argmax_a logits is the action with the best *expected* one-step reward given what the
      agent sees: it pushes a class only where that pays on average, keeps where unsure;
    - "expected": minus sum_a pi(a|s) r(a) (exact policy gradient of the one-step problem);
      collapses onto "keep" early, since most pushes cost on average;
    - "ce": cross-entropy to the oracle's argmax action; imitates pushes the agent cannot
      predict, so it pushes frequent classes and loses rare ones (mIoU drops).
    """
    T, B, A, h, w = action_logits.shape
    n = mask.sum().clamp_min(1.0)
    if kind == "expected":
        probs = action_logits.float().softmax(2)
        return -((probs * mb["gains"]).sum(2) * mask).sum() / n
    if kind == "q":
        target = mb["gains"].clone()
        target[:, :, KEEP + 1 :] -= margin  # act only where an action pays more than this
        err = (action_logits.float() - target).pow(2).mean(2)
        return (err * mask).sum() / n
    ce = F.cross_entropy(
        action_logits.reshape(T * B, A, h, w).float(),
        mb["oracle"].reshape(T * B, h, w),
        reduction="none",
    ).reshape(T, B, h, w)
    return (ce * mask).sum() / n


def update(
    replay: nn.Module,
    optimizer: torch.optim.Optimizer,
    L0: torch.Tensor,
    features: torch.Tensor,
    target: torch.Tensor,
    buf: dict[str, torch.Tensor],
    config: RLConfig,
    imitation: bool,
    *,
    gains0: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
) -> dict[str, float]:
    """One A2C update, PPO epochs, or an imitation step on a rollout; returns loss statistics.

    gains0/context: the episodes' side gains and propagation context (video fusion)."""
    T = buf["actions"].shape[0]
    mask = (target != IGNORE_INDEX).float()[None].expand(T, -1, -1, -1)
    b_advantages, b_returns = generalized_advantages(
        buf["rewards"], buf["values"], config.gamma, config.gae_lambda
    )
    if config.norm_adv and not imitation:
        valid = mask > 0
        b_advantages = torch.where(valid, b_advantages, torch.zeros_like(b_advantages))
        b_advantages[valid] = normalize_advantages(b_advantages[valid])
    epochs = config.update_epochs if config.algo == "ppo" and not imitation else 1
    chunks = config.num_minibatches if config.algo == "ppo" and not imitation else 1
    B = L0.shape[0]
    stats: dict[str, float] = {}
    for _ in range(epochs):
        for mb_inds in torch.arange(B).chunk(max(1, min(chunks, B))):
            stats = _minibatch_step(
                replay,
                optimizer,
                L0[mb_inds],
                features[mb_inds],
                {k: v[:, mb_inds] for k, v in buf.items()},
                b_advantages[:, mb_inds],
                b_returns[:, mb_inds],
                mask[:, mb_inds],
                config,
                imitation,
                starts=(
                    None if gains0 is None else gains0[mb_inds],
                    None if context is None else context[mb_inds],
                ),
            )
    return stats


def _minibatch_step(
    replay: nn.Module,
    optimizer: torch.optim.Optimizer,
    L0: torch.Tensor,
    features: torch.Tensor,
    mb: dict[str, torch.Tensor],
    mb_advantages: torch.Tensor,
    mb_returns: torch.Tensor,
    mask: torch.Tensor,
    config: RLConfig,
    imitation: bool,
    starts: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
) -> dict[str, float]:
    action_logits, newvalue = replay(L0, features, mb["actions"], *starts)
    T, B, A, h, w = action_logits.shape
    newlogprob, entropy = action_log_probs(
        action_logits.reshape(T * B, A, h, w), mb["actions"].reshape(T * B, h, w)
    )
    newlogprob, entropy = newlogprob.view(T, B, h, w), entropy.view(T, B, h, w)
    n = mask.sum().clamp_min(1.0)
    bc_loss = imitation_loss(
        action_logits, mb, mask, config.imitation, config.reward_scale * config.oracle_margin
    )
    v_loss = 0.5 * ((newvalue - mb_returns).pow(2) * mask).sum() / n  # also warms the critic up
    if imitation:
        pg_loss = approx_kl = torch.zeros(())
        loss = bc_loss + config.vf_coef * v_loss
    else:
        if config.algo == "ppo":
            valid = mask > 0
            pg_loss, approx_kl = ppo_policy_loss(
                newlogprob[valid], mb["logprobs"][valid], mb_advantages[valid], config.clip_coef
            )
        else:
            pg_loss = -(mb_advantages * newlogprob * mask).sum() / n
            approx_kl = ((mb["logprobs"] - newlogprob) * mask).sum().detach() / n
        ent = (entropy * mask).sum() / n
        loss = pg_loss - config.ent_coef * ent + config.vf_coef * v_loss + config.bc_coef * bc_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(replay.parameters(), config.max_grad_norm)
    optimizer.step()
    return {
        "loss": float(loss.detach()),
        "pg_loss": float(pg_loss.detach()),
        "v_loss": float(v_loss.detach()),
        "bc_loss": float(bc_loss.detach()),
        "entropy": float((entropy * mask).sum().detach() / n),
        "approx_kl": float(approx_kl.detach()),
    }


def _batch(data: RLData, idx: torch.Tensor, device: torch.device) -> tuple:
    """(L0, features, target, {gains0, context}) of the cached states ``idx`` on ``device``."""
    starts = {
        "gains0": None if data.gains is None else data.gains[idx].to(device),
        "context": None if data.context is None else data.context[idx].to(device),
    }
    return (
        data.L0[idx].to(device),
        data.features[idx].to(device),
        data.target[idx].to(device),
        starts,
    )


def train_rl(
    replay: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: RLData,
    config: RLConfig,
    curriculum: CurriculumConfig,
    ctx: DistContext,
    *,
    start: int = 0,
    seed: int = 0,
    on_iteration: Callable[[int, dict[str, float]], bool] | None = None,
) -> int:
    """Warm start + RL from iteration ``start``; returns the iteration reached.

    ``on_iteration(it, stats)`` runs after every update (logging, checkpoints); returning True
    stops training (cancel). The curriculum's progress runs over both stages together.
    """
    agent = unwrap(replay).agent
    total = config.imitation_iters + config.iterations
    it = start
    for it in range(start, total):
        progress = it / max(1, total - 1)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + it * 7919 + ctx.rank)
        T = episode_length(progress, config.max_steps, curriculum.enabled)
        idx = sample_envs(data, progress, curriculum, config.num_envs, gen)
        L0, feats, target, starts = _batch(data, idx, ctx.device)
        imitation = it < config.imitation_iters
        agent.eval()
        beta = config.imitation_beta if imitation else 0.0
        weight = data.weight.to(ctx.device)
        buf = rollout(agent, L0, feats, target, weight, T, config, gen, beta, **starts)
        agent.train()
        stats = update(replay, optimizer, L0, feats, target, buf, config, imitation, **starts)
        stats.update(
            T=float(T), reward=float(buf["rewards"].sum((0,)).mean()), imitation=float(imitation)
        )
        if on_iteration is not None and on_iteration(it, stats):
            return it + 1
    return max(it + 1, start)
