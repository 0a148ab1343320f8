"""Return/advantage maths of the RL phase, checked against hand computations."""

import torch

from napari_cliprl.training.returns import (
    discounted_returns,
    generalized_advantages,
    normalize_advantages,
    ppo_policy_loss,
)


def test_discounted_returns_by_hand():
    rewards = torch.tensor([[1.0], [2.0], [4.0]])
    g = discounted_returns(rewards, gamma=0.5)
    assert torch.allclose(g[:, 0], torch.tensor([1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4.0]))
    boot = discounted_returns(rewards, gamma=0.5, next_value=torch.tensor([8.0]))
    assert torch.isclose(boot[2, 0], torch.tensor(4.0 + 0.5 * 8))


def test_gae_lambda_one_is_returns_minus_values_and_zero_is_td():
    torch.manual_seed(0)
    rewards, values = torch.randn(3, 5), torch.randn(3, 5)
    adv, ret = generalized_advantages(rewards, values, gamma=0.9, gae_lambda=1.0)
    assert torch.allclose(ret, discounted_returns(rewards, 0.9), atol=1e-6)
    assert torch.allclose(adv, ret - values)
    adv0, _ = generalized_advantages(rewards, values, gamma=0.9, gae_lambda=0.0)
    next_values = torch.cat([values[1:], torch.zeros(1, 5)])
    assert torch.allclose(adv0, rewards + 0.9 * next_values - values)


def test_gamma_one_returns_telescope_to_remaining_improvement():
    rewards = torch.tensor([[0.3], [-0.1], [0.2]])
    g = discounted_returns(rewards, gamma=1.0)
    assert torch.allclose(g[:, 0], torch.tensor([0.4, 0.1, 0.2]))


def test_normalized_advantages_and_ppo_clip():
    adv = normalize_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert abs(float(adv.mean())) < 1e-6 and abs(float(adv.std()) - 1) < 1e-5
    old = torch.zeros(2)
    new = torch.log(torch.tensor([2.0, 2.0]))  # ratio 2, clipped to 1.2
    loss, kl = ppo_policy_loss(new, old, torch.tensor([1.0, 1.0]), clip_coef=0.2)
    assert torch.isclose(loss, torch.tensor(-1.2))
    assert kl > 0
    same, kl0 = ppo_policy_loss(old, old, torch.tensor([1.0, -1.0]), clip_coef=0.2)
    assert same == 0 and kl0 == 0
