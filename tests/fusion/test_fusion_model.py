"""Video fusion in the model: the fused full-resolution labels, the side actions, and a model
without a context behaving as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fusion_data import SIZE, K, context, fusion_model, side, stripes

from napari_cliprl.fusion.grid import cell_index, context_channels, fused_labels
from napari_cliprl.model.fusion_head import apply_side_actions, side_areas
from napari_cliprl.model.policy import (
    KEEP,
    RefinementAgent,
    backward_action,
    forward_action,
    replayed,
    run_episode,
)

GRID = (12, 20)  # a 4 x 4 pixel block per cell of a 48 x 80 frame


def _logits(seed: int = 0, scale: float = 5.0) -> torch.Tensor:
    return scale * torch.randn(1, K, *GRID, generator=torch.Generator().manual_seed(seed))


def _two_sides(seed: int = 1):
    rng = np.random.default_rng(seed)
    fwd = rng.integers(0, 6, SIZE).astype(np.uint8)
    bwd = rng.integers(0, 6, SIZE).astype(np.uint8)
    fwd[:5, :7] = 255  # no opinion here
    return context(side(fwd, rng.random(SIZE), 2, 3), side(bwd, rng.random(SIZE), 4, 9), index=5)


def test_with_large_gains_the_fused_labels_are_the_propagated_labels_exactly():
    ctx = _two_sides()
    gains = torch.full((2, *GRID), 1e6)
    fused = fused_labels(_logits()[0], gains, ctx)
    # every pixel: the more confident side (the backward one where forward has no opinion)
    expected = np.where(
        ctx.backward.conf > ctx.forward.conf, ctx.backward.labels, ctx.forward.labels
    )
    expected[:5, :7] = ctx.backward.labels[:5, :7]
    np.testing.assert_array_equal(fused, expected)
    one_sided = context(ctx.forward)
    fused = fused_labels(_logits(3)[0], gains, one_sided)
    has = ctx.forward.labels != 255
    np.testing.assert_array_equal(fused[has], ctx.forward.labels[has])


def test_without_gains_or_context_the_labels_are_the_models():
    logits = _logits(2)[0]
    plain = fused_labels(logits, None, None, SIZE)
    assert np.array_equal(fused_labels(logits, torch.zeros(2, *GRID), _two_sides(), SIZE), plain)
    up = torch.nn.functional.interpolate(logits[None], SIZE, mode="bilinear")[0]
    np.testing.assert_array_equal(plain, up.argmax(0).numpy())


@pytest.mark.parametrize("which", ["forward", "backward"])
def test_taking_a_side_in_a_cell_makes_that_cells_labels_the_sides_labels(which):
    ctx = _two_sides(seed=4)
    logits = _logits(5, scale=8.0)
    gains = torch.rand(1, 2, *GRID)  # small: the model decides almost everywhere
    cell = (6, 11)
    mask = torch.zeros(1, *GRID, dtype=torch.bool)
    mask[0, cell[0], cell[1]] = True
    none = torch.zeros_like(mask)
    take = (mask, none) if which == "forward" else (none, mask)
    new = apply_side_actions(logits, gains, *take, delta=2.0)
    fused = fused_labels(logits[0], new[0], ctx)
    rows, cols = cell_index(SIZE, GRID)
    inside = (rows[:, None] == cell[0]) & (cols[None, :] == cell[1])
    chosen = getattr(ctx, which)
    has = inside & (chosen.labels != 255)
    assert has.sum() == 16
    np.testing.assert_array_equal(fused[has], chosen.labels[has])
    before = fused_labels(logits[0], gains[0], ctx)
    assert not np.array_equal(before[has], chosen.labels[has])  # the action changed them
    outside = (
        ~np.isin(rows, [cell[0] - 1, cell[0], cell[0] + 1])[:, None]
        | ~np.isin(cols, [cell[1] - 1, cell[1], cell[1] + 1])[None, :]
    )
    np.testing.assert_array_equal(fused[outside], before[outside])  # other cells untouched


def test_the_agents_side_actions_work_through_the_episode_loop_and_are_no_ops_without_context():
    agent = RefinementAgent(
        feature_dim=8, num_classes=K, hidden=8, context_channels=2 * (K + 5) + 1, side_actions=True
    )
    ctx = _two_sides(seed=6)
    channels = context_channels(ctx, K, GRID)[None]
    logits, feats = _logits(7), torch.randn(1, 8, *GRID)
    actions = torch.full((1, 1, *GRID), KEEP)
    actions[0, 0, 2, 3] = forward_action(K)
    actions[0, 0, 8, 15] = backward_action(K)
    gains0 = torch.zeros(1, 2, *GRID)
    (step,) = run_episode(
        agent, logits, feats, 1, replayed(actions), gains=gains0, context=channels
    )
    fused = fused_labels(step.next_raw[0], step.next_gains[0], ctx)
    rows, cols = cell_index(SIZE, GRID)
    for (r, c), chosen in (((2, 3), ctx.forward), ((8, 15), ctx.backward)):
        cell = (rows[:, None] == r) & (cols[None, :] == c) & (chosen.labels != 255)
        np.testing.assert_array_equal(fused[cell], chosen.labels[cell])
    assert torch.equal(step.next_raw, logits)  # side actions leave the logits alone
    # without a context: the same actions change nothing the agent or a user sees
    (plain,) = run_episode(agent, logits, feats, 1, replayed(actions))
    assert torch.equal(plain.next_logits, logits) and plain.next_gains is None
    assert torch.equal(side_areas(torch.zeros_like(channels), K), torch.zeros(1, 2, K, *GRID))


def test_a_model_given_fusion_predicts_as_before_on_frames_without_a_context():
    from napari_cliprl.model.build import add_fusion, build_model
    from napari_cliprl.predictor import Predictor

    model = build_model("tiny-test", schema="cholecseg8k", input_size=(64, 96))
    frame = (np.random.default_rng(0).random((*SIZE, 3)) * 255).astype(np.uint8)
    before = Predictor(model, device="cpu").predict(frame, steps=2)
    add_fusion(model)
    after = Predictor(model, device="cpu").predict(frame, steps=2)
    assert model.config.fusion and model.fusion_head is not None
    for a, b in zip(before.steps, after.steps):
        np.testing.assert_array_equal(a, b)
    assert after.propagated is None


def test_the_predictor_fuses_a_context_and_reports_the_propagated_labels():
    from napari_cliprl.predictor import Predictor

    model = fusion_model()
    labels = stripes()
    ctx = context(side(labels, 0.9, 2, 3))
    frame = (np.random.default_rng(1).random((*SIZE, 3)) * 255).astype(np.uint8)
    pred = Predictor(model, device="cpu").predict(frame, steps=1, context=ctx)
    np.testing.assert_array_equal(pred.propagated, labels)
    # an untrained head trusts the flow: before edge snapping, step 0 is the carried labels
    pred._snap = (0, 1e-3)
    pred._maps.clear()
    np.testing.assert_array_equal(pred.steps[0], labels)
    with pytest.raises(ValueError, match="context of size"):
        Predictor(model, device="cpu").predict(frame[:40], context=ctx)
