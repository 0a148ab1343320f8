"""Fused episodes are rewarded on the full-resolution fused map (rl_oracle.fused_reward)."""

import torch
import torch.nn.functional as F

from napari_cliprl.model.policy import RefinementAgent, image_action
from napari_cliprl.training.losses import brier_gain_reward
from napari_cliprl.training.rl_oracle import fused_action_gains, fused_reward

K, GRID, SCALE = 2, (3, 3), 4
RES = (GRID[0] * SCALE, GRID[1] * SCALE)


def _state(carried: torch.Tensor, truth: torch.Tensor, image_class: int) -> tuple:
    """A frame whose forward side carries ``carried`` (H' x W') with full confidence, gains
    1000 forward and 0 backward, and a decoder sure of ``image_class`` everywhere."""
    side_labels = torch.stack([carried, torch.full(RES, 255)])[None]
    side_weight = torch.stack([torch.ones(RES), torch.zeros(RES)])[None]
    onehot = F.one_hot(carried, K).permute(2, 0, 1).float()
    areas = torch.stack([F.avg_pool2d(onehot[None], SCALE)[0], torch.zeros(K, *GRID)])[None]
    raw = torch.zeros(1, K, *GRID)
    raw[:, image_class] = 6.0
    gains = torch.stack([torch.full(GRID, 1000.0), torch.zeros(GRID)])[None]
    pixels = {"side_labels": side_labels, "side_weight": side_weight, "target": truth[None]}
    grid_target = torch.full((1, *GRID), 0, dtype=torch.long)
    return raw, gains, areas, pixels, grid_target


def _take_image_gain(carried: torch.Tensor, truth: torch.Tensor, image_class: int) -> tuple:
    torch.manual_seed(0)
    agent = RefinementAgent(feature_dim=4, num_classes=K, side_actions=True)
    raw, gains, areas, pixels, grid_target = _state(carried, truth, image_class)
    weight = torch.ones(K)
    on_pixels = fused_action_gains(agent, raw, gains, areas, grid_target, weight, pixels)
    on_grid = fused_action_gains(agent, raw, gains, areas, grid_target, weight)
    a = image_action(K)
    return float(on_pixels[a, 0, 1, 1]), float(on_grid[a, 0, 1, 1])


def test_take_image_is_penalised_where_it_breaks_carried_labels_the_grid_cannot_see():
    truth = torch.zeros(RES, dtype=torch.long)
    truth[4:8, 6:8] = 1  # a boundary through the centre cell: 8 of its 16 pixels are class 1
    pixels, grid = _take_image_gain(truth.clone(), truth, image_class=0)
    assert pixels < -0.5  # half the cell's pixels turn wrong (Brier 2 each, averaged)
    assert abs(grid) < 0.05  # the grid's majority (class 0) agrees with the image


def test_take_image_is_rewarded_where_it_fixes_pixels():
    truth = torch.zeros(RES, dtype=torch.long)
    carried = truth.clone()
    carried[4:8, 4:8] = 1  # the flow carried the wrong class into the centre cell
    pixels, _ = _take_image_gain(carried, truth, image_class=0)
    assert pixels > 1.5


def test_frames_without_pixel_targets_keep_the_grid_reward():
    truth = torch.zeros(RES, dtype=torch.long)
    raw, gains, areas, pixels, grid_target = _state(truth.clone(), truth, image_class=1)
    pixels["target"] = torch.full_like(pixels["target"], 255)
    after = (raw, torch.zeros_like(gains))
    weight = torch.ones(K)
    got = fused_reward((raw, gains), after, areas, grid_target, weight, pixels)
    probs = [(raw + (g[:, :, None] * areas).sum(1)).softmax(1) for g in (gains, after[1])]
    assert torch.allclose(got, brier_gain_reward(probs[0], probs[1], grid_target, weight))
