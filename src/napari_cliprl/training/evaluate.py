"""Evaluation (no grad): the metrics of ``evaluate_frames`` for the zero-shot map and every step.

``evaluate_model`` is what ``cliprl evaluate`` and the benchmarks call: frames at their own size,
predictions upsampled from the model's input size like the predictor does. ``validate`` is the
cheap in-training version on frames already resized to the input size (early stop, T*).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_cliprl.metrics import evaluate_frames, pixels_to_change
from napari_cliprl.training.config import ProgressFn


def step_names(steps: int) -> list[str]:
    """["zero_shot", "step_0", "step_1", ..., "step_T"]."""
    return ["zero_shot", *(f"step_{t}" for t in range(steps + 1))]


@torch.no_grad()
def predict_steps(
    model: torch.nn.Module,
    images: torch.Tensor,
    steps: int,
    out_size: tuple[int, int] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Label maps of the zero-shot map and of steps 0..T, plus the entropy map of each step.

    images: B x 3 x H x W float [0, 1] at the model's input size. Logits are bilinearly
    upsampled to ``out_size`` (default: the input size) before the argmax.
    Returns (labels: T + 2 tensors B x h x w uint8, entropy: T + 1 tensors B x h x w float).
    """
    model.eval()
    x = (images.to(model.device) - model.image_mean) / model.image_std
    out = model(x, steps=steps)
    size = out_size or tuple(images.shape[-2:])
    labels, entropies = [], []
    for k, logits in enumerate([out.zero_shot, *out.logits]):
        up = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        labels.append(up.argmax(1).to(torch.uint8).cpu())
        if k > 0:
            logp = F.log_softmax(up, dim=1)
            entropies.append(-(logp.exp() * logp).sum(1).cpu())
    return labels, entropies


def metrics_per_step(
    preds: dict[str, list[np.ndarray]], gts: Sequence[np.ndarray], num_classes: int
) -> dict[str, Any]:
    """``evaluate_frames`` for every entry of ``preds`` (name -> label maps)."""
    return {name: evaluate_frames(p, list(gts), num_classes) for name, p in preds.items()}


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    batch_size: int = 8,
) -> dict[str, dict[str, Any]]:
    """Metrics per step on frames at the input size: images N x 3 x H x W, labels N x H x W."""
    names = step_names(steps)
    preds: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, images.shape[0], batch_size):
        maps, _ = predict_steps(model, images[start : start + batch_size], steps)
        for name, m in zip(names, maps):
            preds[name].extend(m.numpy())
    gts = [lab.numpy().astype(np.uint8) for lab in labels]
    return metrics_per_step(preds, gts, model.num_classes)


def choose_steps(
    per_step: dict[str, dict[str, Any]], metric: str = "miou", tol: float = 0.0
) -> int:
    """T* = the number of agent steps with the best ``metric``; ties go to fewer steps.

    A step must beat every smaller T by more than ``tol`` to be chosen, so T* = 0 unless the
    agent measurably helps: refinement is never shown as better than it measured.
    """
    best_t, best = 0, -math.inf
    t = 0
    while f"step_{t}" in per_step:
        value = per_step[f"step_{t}"][metric]
        if value is not None and math.isfinite(value) and value > best + (tol if t else 0.0):
            best_t, best = t, value
        t += 1
    return best_t


@torch.no_grad()
def evaluate_model(
    model: torch.nn.Module,
    sequences: Sequence[Any],
    steps: int | None = None,
    *,
    frames: Sequence[tuple[int, int]] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Metrics of ``evaluate_frames`` for ``zero_shot``, ``step_0`` ... ``step_T`` on labelled
    sequences at full frame size, plus ``pixels_to_change`` per step, ``seconds_per_frame`` and
    ``frames``. steps: T (default: the model's T*, ``model.config.steps``); frames: (sequence,
    frame) positions to use (default: all).
    """
    from napari_cliprl.training.dataset import all_frames, resize_pair

    T = model.config.steps if steps is None else int(steps)
    names = step_names(T)
    items = list(frames) if frames is not None else all_frames(sequences)
    preds: dict[str, list[np.ndarray]] = {n: [] for n in names}
    gts: list[np.ndarray] = []
    seconds = 0.0
    for done, (s, f) in enumerate(items):
        image, gt = sequences[s][f]
        img, _ = resize_pair(image, gt, model.input_size)
        start = time.perf_counter()
        maps, _ = predict_steps(model, img[None], T, out_size=gt.shape)
        seconds += time.perf_counter() - start
        for name, m in zip(names, maps):
            preds[name].append(m[0].numpy())
        gts.append(gt)
        if progress is not None:
            progress(done + 1, len(items), "evaluating")
    result: dict[str, Any] = metrics_per_step(preds, gts, model.num_classes)
    result["pixels_to_change"] = {n: pixels_to_change(preds[n], gts) for n in names}
    result["steps"] = T
    result["frames"] = len(items)
    result["seconds_per_frame"] = seconds / max(1, len(items))
    return result
