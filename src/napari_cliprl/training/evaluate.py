"""Evaluation (no grad): the metrics of ``evaluate_frames`` for the zero-shot map and every step.

``evaluate_model`` is what ``cliprl evaluate`` and the benchmarks call: frames at their own size
through the :class:`~napari_cliprl.predictor.Predictor`, so the label maps measured are exactly
the ones a user is shown. ``validate`` is the cheap in-training version on frames already
resized to the input size (early stop, T*); it runs the same ``model.inference`` functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from napari_cliprl.config import check_steps
from napari_cliprl.metrics import evaluate_frames, pixels_to_change
from napari_cliprl.model.inference import predict_logits, upsample_labels
from napari_cliprl.model.policy import entropy as entropy_map
from napari_cliprl.predictor import Predictor
from napari_cliprl.steps import proposal_keys, step_key
from napari_cliprl.training.config import ProgressFn
from napari_cliprl.training.dataset import all_frames


def predict_steps(
    model: torch.nn.Module,
    images: torch.Tensor,
    steps: int,
    out_size: tuple[int, int] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Label maps of the zero-shot map and of steps 0..T, plus the entropy map of each step.

    images: B x 3 x h x w float [0, 1] at the model's input size. Labels are the argmax of the
    logits bilinearly upsampled to ``out_size`` (default: the input size), as the Predictor's.
    Returns (labels: T + 2 tensors B x H x W uint8, entropy: T + 1 tensors B x h/4 x w/4 float,
    per stride-4 cell of the logits: the Predictor's ``entropy`` is their mean).
    """
    out = predict_logits(model, model.normalize(images), steps=steps)
    size = out_size or tuple(images.shape[-2:])
    labels = [
        torch.from_numpy(np.stack([upsample_labels(lg[i], size) for i in range(lg.shape[0])]))
        for lg in [out.zero_shot, *out.logits]
    ]
    entropies = [entropy_map(lg.float())[:, 0].cpu() for lg in out.logits]
    return labels, entropies


def metrics_per_step(
    preds: dict[str, list[np.ndarray]], gts: Sequence[np.ndarray], num_classes: int
) -> dict[str, Any]:
    """``evaluate_frames`` for every entry of ``preds`` (name -> label maps)."""
    return {name: evaluate_frames(p, list(gts), num_classes) for name, p in preds.items()}


def validate(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    batch_size: int = 8,
) -> dict[str, dict[str, Any]]:
    """Metrics per step on frames at the input size: images N x 3 x H x W, labels N x H x W."""
    names = proposal_keys(steps)
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
    while step_key(t) in per_step:
        value = per_step[step_key(t)][metric]
        if value is not None and math.isfinite(value) and value > best + (tol if t else 0.0):
            best_t, best = t, value
        t += 1
    return best_t


def predict_labelled(
    model: torch.nn.Module,
    sequences: Sequence[Any],
    items: Sequence[tuple[int, int]],
    steps: int,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, float]]:
    """Per (sequence, frame) of ``items``: (label maps by ``proposal_keys(steps)``, the
    ground truth H x W, seconds of the prediction), through the Predictor a user runs.

    ``sequences[s][f]`` -> (frame H x W x 3 uint8, ground truth H x W uint8).
    """
    predictor = Predictor(model, cache_size=0, device=model.device)
    keys = proposal_keys(steps)
    for s, f in items:
        image, gt = sequences[s][f]
        pred = predictor.predict(image, steps=steps, key=(s, f))
        maps = dict(zip(keys, [pred.zero_shot, *pred.steps]))
        yield maps, gt, sum(pred.seconds.values())


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
    T = check_steps(model.config.steps if steps is None else steps)
    names = proposal_keys(T)
    items = list(frames) if frames is not None else all_frames(sequences)
    preds: dict[str, list[np.ndarray]] = {n: [] for n in names}
    gts: list[np.ndarray] = []
    seconds = 0.0
    for done, (maps, gt, took) in enumerate(predict_labelled(model, sequences, items, T)):
        for name in names:
            preds[name].append(maps[name])
        gts.append(gt)
        seconds += took
        if progress is not None:
            progress(done + 1, len(items), "evaluating")
    result: dict[str, Any] = metrics_per_step(preds, gts, model.num_classes)
    result["pixels_to_change"] = {n: pixels_to_change(preds[n], gts) for n in names}
    result["steps"] = T
    result["frames"] = len(items)
    result["seconds_per_frame"] = seconds / max(1, len(items))
    return result
