"""Curriculum (DESIGN 2.7): frame difficulty, root pacing, and the RL episode length.

Difficulty per frame = (1 - mIoU of a cross-fitted warm-up decoder) plus small image terms
(specular highlights, brightness deviation, blur, class count, occlusion). Frames are sorted
easiest first; at training progress p in [0, 1] the easiest ``competence(p)`` fraction is
available (root pacing, Platanios et al. 2019), and the RL episode length grows with it
(T = 1, then 2, then 3). Everything here is a pure function of numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np

from napari_cliprl.training.config import CurriculumConfig

IGNORE_INDEX = 255


def image_terms(image: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """Small difficulty terms of one frame, each in [0, 1].

    image H x W x 3 uint8, labels H x W uint8 ids (255 = ignore). ``occlusion`` is the fraction
    of labelled pixels on a class boundary: many small fragments = things in front of things.
    """
    rgb = image.astype(np.float32) / 255.0
    gray = rgb.mean(axis=2)
    specular = float((rgb.min(axis=2) > 0.92).mean())
    brightness = float(min(1.0, abs(gray.mean() - 0.45) / 0.45))
    lap = (
        -4 * gray[1:-1, 1:-1] + gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
    )
    sharpness = float(np.tanh(lap.var() / 1e-3)) if lap.size else 0.0
    valid = labels != IGNORE_INDEX
    present = np.unique(labels[valid])
    edge_h = (labels[:, 1:] != labels[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    edge_v = (labels[1:, :] != labels[:-1, :]) & valid[1:, :] & valid[:-1, :]
    occlusion = float(min(1.0, 10.0 * (edge_h.mean() + edge_v.mean()) / 2))
    return {
        "specular": specular,
        "brightness": brightness,
        "blur": 1.0 - sharpness,
        "classes": len(present) / max(1, num_classes),
        "occlusion": occlusion,
    }


def frame_difficulty(
    warmup_miou: float, terms: dict[str, float], config: CurriculumConfig
) -> float:
    """1 - mIoU of the cross-fitted warm-up decoder + the weighted image terms."""
    miou = 0.0 if not math.isfinite(warmup_miou) else warmup_miou
    return (
        (1.0 - miou)
        + config.w_specular * terms["specular"]
        + config.w_brightness * terms["brightness"]
        + config.w_blur * terms["blur"]
        + config.w_classes * terms["classes"]
        + config.w_occlusion * terms["occlusion"]
    )


def competence(progress: float, c0: float = 0.34, power: float = 2.0) -> float:
    """Root pacing: the fraction of sorted frames available at ``progress`` in [0, 1].

    c(p) = min(1, (p (1 - c0^k) + c0^k)^(1/k)) with k = ``power``; c(0) = c0, c(1) = 1.
    """
    p = min(max(progress, 0.0), 1.0)
    return min(1.0, (p * (1.0 - c0**power) + c0**power) ** (1.0 / power))


def curriculum_order(difficulty: np.ndarray) -> np.ndarray:
    """Frame positions sorted easiest first (stable: ties keep their original order)."""
    return np.argsort(np.asarray(difficulty, dtype=np.float64), kind="stable")


def available_frames(order: np.ndarray, progress: float, config: CurriculumConfig) -> np.ndarray:
    """The positions usable at ``progress``: the easiest competence(p) fraction (at least 1)."""
    if not config.enabled:
        return np.sort(order)
    n = max(1, math.ceil(competence(progress, config.c0, config.power) * len(order)))
    return np.sort(order[:n])


def episode_length(progress: float, max_steps: int, enabled: bool = True) -> int:
    """RL episode length T at ``progress``: grows 1, 2, ..., ``max_steps`` in equal stages.

    Without a curriculum every episode has ``max_steps`` steps.
    """
    if not enabled or max_steps <= 1:
        return max(1, max_steps)
    p = min(max(progress, 0.0), 1.0)
    return min(max_steps, 1 + int(p * max_steps))
