"""Evaluating a session's proposals against ground truth: the table the widget's Evaluate
section shows (metrics of every proposal layer over the frames with predictions and ground
truth)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cliprl.metrics import evaluate_frames
from napari_cliprl.steps import proposal_labels

if TYPE_CHECKING:
    from napari_cliprl.annotation.session import Session

METRIC_COLUMNS = ("challenge_iou", "iou", "mciou", "miou")


@dataclass
class EvaluationTable:
    """``evaluate_frames`` of every proposal layer over the frames with predictions and
    ground truth (what the widget's Evaluate section shows)."""

    layers: list[str]  # "zero-shot", "step 0", ..., "step T"
    frames: list[int]  # frames evaluated
    class_names: list[str]  # K names, background first
    metrics: dict[str, dict[str, Any]]  # layer -> evaluate_frames(...) dict

    def rows(self) -> list[tuple[str, list[float]]]:
        """(layer, [challenge_iou, iou, mciou, miou]) per layer."""
        return [(n, [float(self.metrics[n][c]) for c in METRIC_COLUMNS]) for n in self.layers]

    def per_class_iou(self) -> dict[str, list[float]]:
        """layer -> K per-class IoU values (NaN where a class never occurs)."""
        return {n: list(self.metrics[n]["per_class_iou"]) for n in self.layers}


def has_ground_truth(labels: np.ndarray, ignore_index: int = 255) -> bool:
    """Whether a ground-truth frame holds any label (a frame without one is all ignore)."""
    return bool(np.any(np.asarray(labels) != ignore_index))


def evaluate_session(session: Session, ground_truth: Any) -> EvaluationTable:
    """Evaluate zero-shot and every step of ``session`` against ``ground_truth`` (T x H x W
    ids, indexed one frame at a time) over the predicted frames that have ground truth.

    ValueError when the shapes differ or no frame has both.
    """
    schema = session.schema
    if tuple(ground_truth.shape[:3]) != session.shape:
        raise ValueError(
            f"ground truth has shape {tuple(ground_truth.shape)}, the session's labels "
            f"{session.shape}"
        )
    gts: dict[int, np.ndarray] = {}
    for i in session.predicted:
        gt = np.asarray(ground_truth[i])
        if has_ground_truth(gt, schema.ignore_index):
            gts[i] = gt
    if not gts:
        raise ValueError("No frame has both predictions and ground truth; run the model first.")
    frames = sorted(gts)
    layers = proposal_labels(session.steps)
    metrics = {}
    for name in layers:
        array = session.array(name)
        preds = [np.asarray(array[i]) for i in frames]
        metrics[name] = evaluate_frames(
            preds, [gts[i] for i in frames], schema.num_classes, schema.ignore_index
        )
    return EvaluationTable(layers, frames, list(schema.names), metrics)
