"""Losses and the RL reward: pure functions on tensors, each unit-tested on its own.

Shapes: B = batch, K = classes, H x W = label resolution. Targets are long class ids with
``ignore_index`` (255) marking pixels that are not ground truth; those pixels never contribute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


def class_frequencies(
    labels: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Fraction of annotated pixels per class: K float, sums to 1 (all zeros if none)."""
    valid = labels[labels != ignore_index].long()
    counts = torch.bincount(valid.flatten(), minlength=num_classes)[:num_classes].float()
    return counts / counts.sum().clamp_min(1.0)


def class_weights(
    labels: torch.Tensor,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    power: float = 0.5,
    max_weight: float = 10.0,
) -> torch.Tensor:
    """Per-class weights w_y ~ 1 / freq_y ** power (1/sqrt by default): K float.

    Normalised so that the pixel-weighted mean is 1 (the loss scale does not depend on the
    class mix); clipped at ``max_weight`` times that. Absent classes get the maximum weight,
    so a class first seen in a later batch still counts.
    """
    freq = class_frequencies(labels, num_classes, ignore_index)
    present = freq > 0
    w = torch.zeros(num_classes)
    if not present.any():
        return torch.ones(num_classes)
    w[present] = freq[present].pow(-power)
    mean = (w * freq).sum()  # expected weight of an annotated pixel
    w = (w / mean).clamp(max=max_weight)
    w[~present] = max_weight
    return w


def weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    pixel_weight: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Class- and pixel-weighted cross-entropy, averaged over the weights of valid pixels.

    logits B x K x H x W, target B x H x W long, weight K, pixel_weight B x H x W (e.g. larger
    where the annotator changed the proposal). Returns a scalar (0 if no pixel is valid).
    """
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    nll = F.cross_entropy(logits.float(), safe, reduction="none")  # B x H x W
    w = valid.float()
    if weight is not None:
        w = w * weight.to(logits.device)[safe]
    if pixel_weight is not None:
        w = w * pixel_weight
    return (nll * w).sum() / w.sum().clamp_min(1e-6)


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    eps: float = 1.0,
) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in ``target`` (ignored pixels excluded).

    logits B x K x H x W, target B x H x W long. Classes absent from the batch are left out of
    the mean (their Dice is undefined and would only reward predicting nothing).
    """
    K = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1).float()  # B x 1 x H x W
    probs = logits.float().softmax(dim=1) * valid
    safe = torch.where(target != ignore_index, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, K).permute(0, 3, 1, 2).float() * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    present = onehot.sum(dims) > 0
    if not present.any():
        return logits.sum() * 0.0
    dice = (2 * inter + eps) / (denom + eps)
    return 1.0 - dice[present].mean()


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    pixel_weight: torch.Tensor | None = None,
    dice_coef: float = 1.0,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Phase A loss: class-weighted CE + ``dice_coef`` * soft Dice, at the target's size.

    logits B x K x h x w (any stride; bilinearly upsampled to the target), target B x H x W.
    """
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(
            logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False
        )
    ce = weighted_cross_entropy(logits, target, weight, pixel_weight, ignore_index)
    if dice_coef == 0:
        return ce
    return ce + dice_coef * soft_dice_loss(logits, target, ignore_index)


def brier_error(
    probs: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Per-cell Brier error ||P - e_y||^2: probs B x K x h x w, target B x h x w -> B x h x w.

    Ignored cells get 0.
    """
    K = probs.shape[1]
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, K).permute(0, 3, 1, 2).to(probs.dtype)
    err = (probs - onehot).pow(2).sum(dim=1)
    return err * valid.to(probs.dtype)


def brier_gain_reward(
    probs_t: torch.Tensor,
    probs_next: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """DESIGN 2.5 reward per cell: w_y * (||P_t - e_y||^2 - ||P_{t+1} - e_y||^2).

    probs_t, probs_next B x K x h x w (softmax of L_t and L_{t+1}), target B x h x w long,
    weight K (w_y ~ 1/sqrt(freq)). Returns B x h x w; ignored cells get 0. Summed over an
    episode the rewards telescope to the weighted Brier improvement of the whole episode.
    """
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    w = weight.to(probs_t.device, probs_t.dtype)[safe] * valid.to(probs_t.dtype)
    gain = brier_error(probs_t, target, ignore_index) - brier_error(
        probs_next, target, ignore_index
    )
    return w * gain
