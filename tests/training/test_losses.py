"""Losses, class weights and the Brier-gain reward (DESIGN 2.5) as pure functions."""

import torch

from napari_cliprl.training.losses import (
    brier_error,
    brier_gain_reward,
    class_weights,
    segmentation_loss,
    soft_dice_loss,
    weighted_cross_entropy,
)


def test_class_weights_inverse_sqrt_frequency_and_ignore():
    labels = torch.tensor([[0] * 16 + [1] * 4 + [255] * 10])
    w = class_weights(labels, num_classes=3)
    # 1/sqrt(freq): freq 0.8 vs 0.2 -> ratio 2; the absent class gets the maximum weight
    assert torch.isclose(w[1] / w[0], torch.tensor(2.0))
    assert w[2] == w.max()
    # pixel-weighted mean over annotated pixels is 1
    assert torch.isclose(0.8 * w[0] + 0.2 * w[1], torch.tensor(1.0))


def test_ignored_pixels_never_contribute():
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 4, 4))
    loss = weighted_cross_entropy(logits, target)
    garbage = target.clone()
    garbage[0, 0] = 255
    logits2 = logits.clone()
    logits2[0, :, 0] = 100 * torch.randn(3, 4)  # wild logits under the ignored row
    expected = weighted_cross_entropy(logits[..., 1:, :], target[:, 1:])
    assert torch.isclose(weighted_cross_entropy(logits2, garbage), expected)
    assert torch.isfinite(loss)
    all_ignored = torch.full((1, 4, 4), 255)
    assert segmentation_loss(logits, all_ignored) == 0


def test_perfect_prediction_has_near_zero_loss():
    target = torch.randint(0, 3, (2, 8, 8))
    logits = 50 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    assert segmentation_loss(logits, target) < 1e-3
    assert soft_dice_loss(logits, target) < 1e-3


def test_pixel_weights_emphasise_changed_pixels():
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 1, 0, 0] = 3.0  # pixel 0 confidently wrong (target 0), pixel 1 uncertain
    target = torch.tensor([[[0, 0]]])
    base = weighted_cross_entropy(logits, target)
    heavy = weighted_cross_entropy(logits, target, pixel_weight=torch.tensor([[[5.0, 1.0]]]))
    assert heavy > base


def test_upsampling_logits_to_the_target_size():
    logits = torch.randn(1, 4, 4, 5, requires_grad=True)
    loss = segmentation_loss(logits, torch.randint(0, 4, (1, 16, 20)))
    loss.backward()
    assert logits.grad is not None and torch.isfinite(loss)


def test_brier_gain_reward_signs_weights_and_telescoping():
    target = torch.tensor([[[0, 1, 255]]])
    weight = torch.tensor([1.0, 3.0])
    bad = torch.tensor([[[[0.5, 0.5, 0.5]], [[0.5, 0.5, 0.5]]]])  # B x K x h x w
    good = torch.tensor([[[[0.9, 0.1, 0.0]], [[0.1, 0.9, 1.0]]]])
    r = brier_gain_reward(bad, good, target, weight)
    assert r.shape == (1, 1, 3)
    assert r[0, 0, 0] > 0 and r[0, 0, 1] > 0
    assert torch.isclose(r[0, 0, 1], 3 * r[0, 0, 0])  # same gain, class weight 3
    assert r[0, 0, 2] == 0  # ignore -> 0
    assert (brier_gain_reward(good, bad, target, weight) == -r).all()
    mid = (bad + good) / 2
    total = brier_gain_reward(bad, mid, target, weight) + brier_gain_reward(
        mid, good, target, weight
    )
    assert torch.allclose(total, r)  # sums over an episode telescope
    assert torch.allclose(brier_error(good, target)[0, 0, :2], torch.tensor([0.02, 0.02]))
