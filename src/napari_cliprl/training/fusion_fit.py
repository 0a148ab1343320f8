"""Training the fusion head on fusion samples (supervised, at the fusion resolution).

Loss: class- and pixel-weighted cross-entropy of the fused scores
(:func:`~napari_cliprl.training.fusion_data.fused_scores_at`) against the reviewed labels, so
the head learns per cell how far to trust each propagated side against the decoder. With a
curriculum the samples enter from short gaps to long (root pacing over the gap-sorted
samples).

Model selection never trusts the training samples: with held-out samples, the head with the
fewest wrong pixels on them is kept, the untrained head (iteration 0: "trust the flow")
included; without, :func:`fit_head` cross-validates over the reviewed frames and keeps the
untrained head unless training beats it on frames it did not train on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from napari_cliprl.model.fusion_head import FusionHead
from napari_cliprl.training.config import CurriculumConfig
from napari_cliprl.training.curriculum import available_frames
from napari_cliprl.training.fusion_data import FusionData, fused_scores_at
from napari_cliprl.training.losses import weighted_cross_entropy


@dataclass(frozen=True)
class HeadSchedule:
    """How long and how fast the head trains."""

    iterations: int = 200  # Adam updates
    learning_rate: float = 3e-3
    anchor_decay: float = 1e-2  # L2 pull of the weights towards their initial values (L2-SP):
    # with few reviewed frames the head stays near "trust the flow"
    batch_size: int = 4  # samples per update
    eval_every: int = 25  # updates between held-out evaluations (early stop)
    seed: int = 0


def head_loss(head: FusionHead, batch: FusionData, class_weight: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy of the fused scores of ``batch`` (scalar)."""
    L0, gains = head(batch.logits, batch.context)
    scores = fused_scores_at(L0, gains, batch.side_labels, batch.side_weight)
    return weighted_cross_entropy(scores, batch.target, class_weight, batch.pixel_weight)


@torch.no_grad()
def evaluate_head(
    head: FusionHead, data: FusionData, class_weight: torch.Tensor, batch_size: int = 8
) -> dict[str, float]:
    """Mean loss and the fraction of wrong pixels (fusion resolution) over ``data``."""
    head.eval()
    losses, wrong, valid = [], 0, 0
    for start in range(0, len(data), batch_size):
        batch = data.select(range(start, min(len(data), start + batch_size)))
        L0, gains = head(batch.logits, batch.context)
        scores = fused_scores_at(L0, gains, batch.side_labels, batch.side_weight)
        losses.append(
            float(weighted_cross_entropy(scores, batch.target, class_weight, batch.pixel_weight))
            * len(batch)
        )
        ok = batch.target != 255
        wrong += int(((scores.argmax(1) != batch.target) & ok).sum())
        valid += int(ok.sum())
    return {"loss": sum(losses) / max(1, len(data)), "wrong": wrong / max(1, valid)}


def train_head(
    head: FusionHead,
    data: FusionData,
    class_weight: torch.Tensor,
    schedule: HeadSchedule,
    *,
    val: FusionData | None = None,
    curriculum: CurriculumConfig | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_metrics: Callable[[dict], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``head`` in place; returns the history of held-out evaluations."""
    curriculum = curriculum or CurriculumConfig(enabled=False)
    order = np.argsort(data.gap.numpy(), kind="stable")  # short gaps first
    opt = torch.optim.Adam(head.parameters(), lr=schedule.learning_rate)
    start = [p.detach().clone() for p in head.parameters()]
    gen = torch.Generator().manual_seed(schedule.seed)
    judged = val if val is not None and len(val) else None
    best, history = copy.deepcopy(head.state_dict()), []
    best_wrong = evaluate_head(head, judged, class_weight)["wrong"] if judged else float("inf")
    total = max(1, schedule.iterations)
    for it in range(schedule.iterations):
        if should_stop is not None and should_stop():
            break
        pool = torch.from_numpy(available_frames(order, it / max(1, total - 1), curriculum))
        rows = pool[torch.randint(0, len(pool), (schedule.batch_size,), generator=gen)]
        head.train()
        loss = head_loss(head, data.select(rows), class_weight)
        pull = sum(((p - p0) ** 2).sum() for p, p0 in zip(head.parameters(), start))
        loss = loss + schedule.anchor_decay * pull
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        opt.step()
        last = it + 1 == schedule.iterations
        if (it + 1) % max(1, schedule.eval_every) == 0 or last:
            metrics = evaluate_head(head, judged, class_weight) if judged else {}
            metrics = {"iteration": it + 1, "train_loss": float(loss.detach()), **metrics}
            history.append(metrics)
            if on_metrics is not None:
                on_metrics(dict(metrics))
            if judged is not None and metrics["wrong"] < best_wrong:
                best, best_wrong = copy.deepcopy(head.state_dict()), metrics["wrong"]
    if judged is not None:
        head.load_state_dict(best)
    head.eval()
    return history


def fit_head(
    head: FusionHead,
    data: FusionData,
    class_weight: torch.Tensor,
    schedule: HeadSchedule,
    *,
    val: FusionData | None = None,
    curriculum: CurriculumConfig | None = None,
    folds: int = 2,
) -> dict[str, float]:
    """Train ``head`` only where it measurably helps (module doc); returns what was decided:
    ``trained`` (1 or 0), and the held-out or cross-validated wrong-pixel fractions."""
    if val is not None and len(val):
        prior = evaluate_head(head, val, class_weight)["wrong"]
        train_head(head, data, class_weight, schedule, val=val, curriculum=curriculum)
        after = evaluate_head(head, val, class_weight)["wrong"]
        return {"trained": float(after < prior), "prior_wrong": prior, "wrong": after}
    frames = sorted(set(data.index))
    if len(frames) < 2:
        return {"trained": 0.0}  # one reviewed frame: nothing to check a trained head on
    start = copy.deepcopy(head.state_dict())
    prior = trained = 0.0
    for fold in range(min(folds, len(frames))):
        held = {f for j, f in enumerate(frames) if j % folds == fold}
        rows = [r for r, f in enumerate(data.index) if f in held]
        other = [r for r, f in enumerate(data.index) if f not in held]
        head.load_state_dict(start)
        prior += evaluate_head(head, data.select(rows), class_weight)["wrong"] * len(rows)
        train_head(head, data.select(other), class_weight, schedule, curriculum=curriculum)
        trained += evaluate_head(head, data.select(rows), class_weight)["wrong"] * len(rows)
    head.load_state_dict(start)
    prior, trained = prior / len(data), trained / len(data)
    if trained < prior:
        train_head(head, data, class_weight, schedule, curriculum=curriculum)
    head.eval()
    return {"trained": float(trained < prior), "cv_prior_wrong": prior, "cv_wrong": trained}
