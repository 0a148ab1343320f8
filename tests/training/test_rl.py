"""Phase B: oracle, replay, and one tiny A2C / PPO / imitation update on cached decoder outputs."""

import numpy as np
import pytest
import torch

from napari_cliprl.model.policy import KEEP, action_log_probs
from napari_cliprl.training.curriculum import CurriculumConfig
from napari_cliprl.training.distributed import DistContext
from napari_cliprl.training.losses import brier_gain_reward
from napari_cliprl.training.rl import (
    AgentReplay,
    RLConfig,
    oracle_actions,
    rollout,
    train_rl,
)
from napari_cliprl.training.rl_cache import RLData, downsample_labels

K = 4


def test_oracle_pushes_the_true_class_on_wrong_cells_and_keeps_confident_ones():
    logits = torch.zeros(3, K, 1, 1)  # three isolated cells (smoothing cannot borrow)
    logits[0, 2] = 3.0  # cell 0: says class 2, truth 1
    logits[1, 1] = 20.0  # cell 1: confidently right (class 1)
    target = torch.tensor([1, 1, 255]).view(3, 1, 1)
    a = oracle_actions(logits, target, torch.ones(K), delta=2.0, margin=0.02).flatten()
    assert a[0] == 1 + 1  # "push class 1"
    assert a[1] == KEEP and a[2] == KEEP  # nothing to gain / ignored


def test_downsample_labels_takes_the_block_majority():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :4, :4] = 3
    labels[0, :3, 4:] = 255  # top-right block mostly ignored
    out = downsample_labels(labels, (2, 2))
    assert out.tolist() == [[[3, 255], [0, 0]]]


def _agent():
    from napari_cliprl.model.policy import RefinementAgent

    torch.manual_seed(0)
    return RefinementAgent(feature_dim=8, num_classes=K, hidden=8, delta=2.0)


def _data(n: int = 4, h: int = 6, w: int = 8) -> RLData:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, K, (n, h, w), generator=g)
    L0 = 2 * torch.nn.functional.one_hot(target, K).permute(0, 3, 1, 2).float()
    L0 = L0 + 1.5 * torch.randn(n, K, h, w, generator=g)  # a noisy decoder
    features = torch.randn(n, 8, h, w, generator=g)
    features[:, :K] += 2 * torch.nn.functional.one_hot(target, K).permute(0, 3, 1, 2)  # informative
    return RLData(L0, features, target, torch.ones(K), np.arange(n))


def test_replay_reproduces_the_rollout_and_rewards_telescope():
    agent, data = _agent(), _data()
    config = RLConfig(num_envs=4)
    buf = rollout(
        agent,
        data.L0,
        data.features,
        data.target,
        data.weight,
        3,
        config,
        torch.Generator().manual_seed(1),
    )
    action_logits, values = AgentReplay(agent)(data.L0, data.features, buf["actions"])
    T, B, A, h, w = action_logits.shape
    logp, _ = action_log_probs(
        action_logits.reshape(T * B, A, h, w), buf["actions"].reshape(T * B, h, w)
    )
    assert torch.allclose(logp.view(T, B, h, w), buf["logprobs"], atol=1e-5)
    assert torch.allclose(values, buf["values"], atol=1e-5)
    L = data.L0
    for t in range(T):
        L = agent.transition(L, buf["actions"][t])
    total = brier_gain_reward(data.L0.softmax(1), L.softmax(1), data.target, data.weight)
    assert torch.allclose(buf["rewards"].sum(0), config.reward_scale * total, atol=1e-4)


@pytest.mark.parametrize("algo,imitation", [("a2c", 0), ("ppo", 0), ("a2c", 1)])
def test_one_rl_update_changes_the_agent(algo, imitation):
    agent, data = _agent(), _data()
    config = RLConfig(
        algo=algo,
        iterations=1 - imitation,
        imitation_iters=imitation,
        num_envs=2,
        update_epochs=2,
        num_minibatches=2,
    )
    before = [p.detach().clone() for p in agent.parameters()]
    stats = []
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-3)
    reached = train_rl(
        AgentReplay(agent),
        optimizer,
        data,
        config,
        CurriculumConfig(),
        DistContext(),
        on_iteration=lambda it, s: stats.append(s) and False,
    )
    assert reached == 1 and len(stats) == 1
    assert all(np.isfinite(v) for v in stats[0].values())
    assert stats[0]["imitation"] == imitation
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.parameters()))


def test_imitation_learns_the_oracle():
    agent, data = _agent(), _data()
    config = RLConfig(iterations=0, imitation_iters=100, num_envs=4, max_steps=1, imitation="ce")
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-2)
    losses = []
    train_rl(
        AgentReplay(agent),
        optimizer,
        data,
        config,
        CurriculumConfig(enabled=False),
        DistContext(),
        on_iteration=lambda it, s: losses.append(s["bc_loss"]) and False,
    )
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])


def test_q_warm_start_takes_actions_that_pay_on_average():
    from napari_cliprl.training.rl import action_gains

    agent, data = _agent(), _data()
    config = RLConfig(
        iterations=0, imitation_iters=100, num_envs=4, max_steps=1, imitation="q", oracle_margin=0
    )
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-2)
    train_rl(
        AgentReplay(agent), optimizer, data, config, CurriculumConfig(enabled=False), DistContext()
    )
    with torch.no_grad():
        state = agent.build_state(data.features, data.L0, data.L0, 0, 1)
        action_logits, _, _ = agent.act(state, agent.initial_hidden(data.features))
    greedy = action_logits.argmax(1)
    gains = action_gains(data.L0, data.target, data.weight, agent.delta)
    assert (greedy != KEEP).float().mean() > 0.2  # it acts ...
    assert gains.gather(0, greedy[None]).mean() > 0.02  # ... and its actions pay (keep = 0)


def test_an_episode_longer_than_the_step_limit_is_refused_before_it_runs():
    from napari_cliprl.limits import LimitError
    from napari_cliprl.model.policy import run_episode

    agent, data = _agent(), _data()
    with pytest.raises(LimitError, match="episode length.*over the limit of 10"):
        next(run_episode(agent, data.L0, data.features, 10**6))
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(LimitError, match="over the limit of 10"):  # before any buffer exists
        rollout(agent, data.L0, data.features, data.target, data.weight, 10**6, RLConfig(), gen)
