"""The refinement agent's transition and action selection, on hand-built logits."""

from __future__ import annotations

import pytest
import torch

from napari_cliprl.model.policy import (
    KEEP,
    RefinementAgent,
    action_log_probs,
    action_names,
    apply_actions,
    entropy,
    majority_action,
    num_actions,
    select_actions,
    smooth_action,
)

K = 3


def _logits() -> torch.Tensor:
    """1 x 3 x 3 x 3 logits; argmax labels
    [[0, 0, 1],
     [0, 2, 1],
     [1, 1, 1]]"""
    labels = torch.tensor([[0, 0, 1], [0, 2, 1], [1, 1, 1]])
    L = torch.zeros(1, K, 3, 3)
    L[0].scatter_(0, labels[None], 1.0)
    L[0, :, 1, 1] = torch.tensor([0.5, 0.2, 1.5])  # centre: class 2 leads class 0 by 1.0
    return L


def _actions(value: int, at: tuple[int, int] = (1, 1)) -> torch.Tensor:
    a = torch.zeros(1, 3, 3, dtype=torch.long)
    a[0, at[0], at[1]] = value
    return a


def test_action_ids_and_names():
    assert num_actions(K) == K + 3
    assert smooth_action(K) == K + 1 and majority_action(K) == K + 2
    assert action_names(["a", "b", "c"]) == [
        "keep", "push a", "push b", "push c", "smooth", "majority",
    ]  # fmt: skip


def test_keep_changes_nothing():
    L = _logits()
    out = apply_actions(L, torch.full((1, 3, 3), KEEP), delta=2.0)
    assert torch.equal(out, L)
    assert out is not L


def test_push_adds_delta_to_one_class_at_one_cell():
    L = _logits()
    out = apply_actions(L, _actions(1 + 1), delta=2.0)  # push class 1 at the centre
    expected = L.clone()
    expected[0, 1, 1, 1] += 2.0
    assert torch.equal(out, expected)
    assert out[0, :, 1, 1].argmax() == 1


def test_smooth_is_the_3x3_mean_of_logits():
    L = _logits()
    out = apply_actions(L, _actions(smooth_action(K)), delta=2.0)
    expected = L.clone()
    expected[0, :, 1, 1] = L[0].mean(dim=(1, 2))
    torch.testing.assert_close(out, expected)
    corner = apply_actions(L, _actions(smooth_action(K), at=(0, 0)))
    torch.testing.assert_close(corner[0, :, 0, 0], L[0, :, :2, :2].mean(dim=(1, 2)))


def test_majority_makes_the_neighbourhood_majority_win_by_delta():
    L = _logits()
    # centre neighbourhood: 3 x class 0, 5 x class 1, 1 x class 2 -> class 1
    out = apply_actions(L, _actions(majority_action(K)), delta=2.0)
    centre = out[0, :, 1, 1]
    assert centre.argmax() == 1
    assert centre[1] == pytest.approx(1.5 + 2.0)  # max of the others + delta
    assert torch.equal(centre[[0, 2]], L[0, [0, 2], 1, 1])
    others = out.clone()
    others[0, :, 1, 1] = L[0, :, 1, 1]
    assert torch.equal(others, L)


def test_majority_keeps_a_cell_that_already_leads_by_delta():
    L = _logits() * 10  # corner (0, 0): class 0 with margin 10, its neighbourhood is mostly 0
    out = apply_actions(L, _actions(majority_action(K), at=(0, 0)), delta=2.0)
    assert torch.equal(out, L)


def test_majority_ties_go_to_the_lowest_class_id():
    L = torch.zeros(1, 2, 1, 2)
    L[0, 0, 0, 0] = 1.0  # labels [[0, 1]]: one vote each in the 1 x 2 image
    L[0, 1, 0, 1] = 1.0
    out = apply_actions(L, torch.tensor([[[0, 2 + 2]]]), delta=0.5)  # majority at (0, 1)
    assert out[0, :, 0, 1].argmax() == 0
    assert out[0, 0, 0, 1] == pytest.approx(1.5)


def test_apply_actions_is_deterministic_and_validates():
    g = torch.Generator().manual_seed(0)
    L = torch.randn(2, K, 5, 6, generator=g)
    a = torch.randint(0, K + 3, (2, 5, 6), generator=g)
    assert torch.equal(apply_actions(L, a), apply_actions(L.clone(), a.clone()))
    with pytest.raises(ValueError, match="action ids"):
        apply_actions(L, torch.full((2, 5, 6), K + 3))
    with pytest.raises(ValueError, match="actions must be"):
        apply_actions(L, a[:, :4])


def test_select_actions_greedy_and_sampled():
    logits = torch.zeros(1, 4, 2, 2)
    logits[0, 2] = 5.0
    assert torch.equal(select_actions(logits), torch.full((1, 2, 2), 2))
    g = torch.Generator().manual_seed(1)
    sampled = select_actions(torch.zeros(1, 4, 8, 8), greedy=False, generator=g)
    assert sampled.shape == (1, 8, 8) and len(sampled.unique()) > 1
    logp, ent = action_log_probs(torch.zeros(1, 4, 2, 2), sampled[:, :2, :2])
    torch.testing.assert_close(logp, torch.full((1, 2, 2), -torch.log(torch.tensor(4.0))))
    torch.testing.assert_close(ent, torch.full((1, 2, 2), torch.log(torch.tensor(4.0))))


def test_agent_act_shapes_and_gradients():
    torch.manual_seed(0)
    agent = RefinementAgent(feature_dim=8, num_classes=K, hidden=16)
    F = torch.randn(2, 8, 6, 7, requires_grad=True)
    L0 = torch.randn(2, K, 6, 7)
    hidden = agent.initial_hidden(F)
    state = agent.build_state(F, L0, L0, 0, 3)
    assert state.shape == (2, 8 + 2 * K + 2, 6, 7)
    assert not state.requires_grad  # F is detached
    logits, value, hidden2 = agent.act(state, hidden)
    assert logits.shape == (2, K + 3, 6, 7)
    assert value.shape == (2, 1, 6, 7)
    assert hidden2.shape == hidden.shape == (2, 16, 3, 4)  # memory at half resolution
    (logits.sum() + value.sum()).backward()
    assert all(p.grad is not None for p in agent.parameters())
    with pytest.raises(ValueError, match="build_state"):
        agent.act(state[:, :-1], hidden)
    with pytest.raises(ValueError, match="initial_hidden"):
        agent.act(state, hidden[..., :2])


def test_entropy_of_uniform_logits():
    e = entropy(torch.zeros(1, 4, 2, 3))
    torch.testing.assert_close(e, torch.full((1, 1, 2, 3), float(torch.log(torch.tensor(4.0)))))
