"""Segmentation metrics on label arrays, as reported in the surgical-segmentation literature.

Pure numpy functions. Label arrays are H x W integer class ids (0 = background) with
``ignore_index`` (default 255) marking pixels without ground truth. Conventions
(``../shared/DESIGN.md`` section 4):

- background (class 0) is excluded from every mean (it still has its entry in the per-class
  lists);
- pixels whose *ground truth* is ``ignore_index`` are excluded from every count, whatever was
  predicted there;
- a mean with nothing to average (no frame with foreground, no class ever seen) is ``NaN``.

Metrics of :func:`evaluate_frames`:

``challenge_iou``
    Challenge IoU (ISINet, the canonical EndoVis figure): per frame, mean IoU over the
    foreground classes present in the ground truth; then mean over frames. Frames without
    foreground ground truth are skipped; an empty prediction on a non-empty ground truth
    scores 0.
``iou``
    As ``challenge_iou`` but per frame over the classes present in the ground truth *or* the
    prediction (frames with neither are skipped), so false-positive classes count.
``mciou``
    Mean class IoU: per class, the mean of its per-frame IoU over the frames where it is in
    the ground truth or the prediction; then mean over classes.
``miou``
    Dataset mIoU: one confusion matrix over all frames, IoU per class, mean over classes.
``per_class_iou``, ``per_class_dice``
    From that confusion matrix; length K; ``NaN`` where a class occurs in neither ground
    truth nor prediction.

Results are JSON-friendly: python floats and lists of floats (``json.dumps`` writes ``NaN``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypedDict

import numpy as np

IGNORE_INDEX = 255

LabelFrames = np.ndarray | Sequence[np.ndarray]


class FrameMetrics(TypedDict):
    """The result of :func:`evaluate_frames` (a plain dict at runtime)."""

    challenge_iou: float
    iou: float
    mciou: float
    miou: float
    per_class_iou: list[float]
    per_class_dice: list[float]


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Pixel confusion matrix of one frame (or any stack of frames of equal shape).

    Args:
        pred: H x W (or T x H x W) integer predicted class ids in ``[0, num_classes)``.
        gt: ground-truth class ids, same shape; ``ignore_index`` pixels are not counted.
        num_classes: K.
        ignore_index: ground-truth value meaning "not annotated".

    Returns:
        K x K int64, rows = ground truth, columns = prediction.

    Raises:
        ValueError: shapes differ, or a (non-ignored) id is outside ``[0, K)``.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    valid = gt != ignore_index
    g = gt[valid].astype(np.int64, copy=False)
    p = pred[valid].astype(np.int64, copy=False)
    for what, ids in (("ground truth", g), ("prediction", p)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            bad = ids[(ids < 0) | (ids >= num_classes)]
            raise ValueError(
                f"{what} has class ids outside 0..{num_classes - 1} "
                f"(ignore_index={ignore_index}): {np.unique(bad)[:10].tolist()}"
            )
    counts = np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def evaluate_frames(
    preds: LabelFrames, gts: LabelFrames, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> FrameMetrics:
    """All metrics of the module docstring over a set of frames.

    Args:
        preds: predictions, a sequence of H x W integer arrays or a T x H x W array (a single
            H x W array counts as one frame).
        gts: ground truth in the same form; frame i of ``preds`` is compared with frame i of
            ``gts`` (frames may differ in size from each other, not from their partner).
        num_classes: K, including background (class 0).
        ignore_index: ground-truth value excluded from every count.

    Returns:
        dict with ``challenge_iou``, ``iou``, ``mciou``, ``miou`` (floats in [0, 1], NaN when
        nothing qualifies) and ``per_class_iou``, ``per_class_dice`` (K floats, NaN for classes
        never in ground truth nor prediction).
    """
    cms = _frame_confusions(preds, gts, num_classes, ignore_index)
    frame_iou, in_gt, in_any = _frame_class_iou(cms)
    total = cms.sum(axis=0)
    inter = np.diag(total).astype(np.float64)
    gt_px = total.sum(axis=1).astype(np.float64)
    pred_px = total.sum(axis=0).astype(np.float64)
    union = gt_px + pred_px - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        class_iou = np.where(union > 0, inter / union, np.nan)
        class_dice = np.where(union > 0, 2 * inter / (gt_px + pred_px), np.nan)
    per_class_mc = _masked_mean(frame_iou, in_any, axis=0)
    return {
        "challenge_iou": _nanmean(_masked_mean(frame_iou, in_gt, axis=1)),
        "iou": _nanmean(_masked_mean(frame_iou, in_any, axis=1)),
        "mciou": _nanmean(per_class_mc),
        "miou": _nanmean(class_iou[1:]),
        "per_class_iou": [float(v) for v in class_iou],
        "per_class_dice": [float(v) for v in class_dice],
    }


def pixels_to_change(
    preds: LabelFrames, gts: LabelFrames, ignore_index: int = IGNORE_INDEX
) -> float:
    """Fraction of annotated pixels where the prediction differs from the ground truth.

    What an annotator would still have to repaint. Pixels whose ground truth is
    ``ignore_index`` are not counted; ``NaN`` when no pixel is annotated.

    Args:
        preds: a sequence of H x W integer arrays or a T x H x W array.
        gts: ground truth in the same form.
        ignore_index: ground-truth value meaning "not annotated".
    """
    wrong = 0
    valid = 0
    for pred, gt in _paired_frames(preds, gts):
        mask = gt != ignore_index
        valid += int(mask.sum())
        wrong += int(np.count_nonzero((pred != gt) & mask))
    return float(wrong / valid) if valid else float("nan")


# -- helpers -------------------------------------------------------------------------------
def _frames(x: LabelFrames) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            return [x]
        if x.ndim != 3:
            raise ValueError(f"expected H x W or T x H x W label arrays, got shape {x.shape}")
        return list(x)
    return [np.asarray(f) for f in x]


def _paired_frames(preds: LabelFrames, gts: LabelFrames) -> Iterator[tuple[np.ndarray, ...]]:
    p, g = _frames(preds), _frames(gts)
    if len(p) != len(g):
        raise ValueError(f"{len(p)} predicted frames but {len(g)} ground-truth frames")
    for i, (pred, gt) in enumerate(zip(p, g)):
        if pred.shape != gt.shape:
            raise ValueError(
                f"frame {i}: prediction shape {pred.shape} differs from ground truth {gt.shape}"
            )
        yield pred, gt


def _frame_confusions(
    preds: LabelFrames, gts: LabelFrames, num_classes: int, ignore_index: int
) -> np.ndarray:
    """T x K x K int64 confusion matrices, one per frame."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (background + 1), got {num_classes}")
    cms = [
        confusion_matrix(pred, gt, num_classes, ignore_index)
        for pred, gt in _paired_frames(preds, gts)
    ]
    if not cms:
        return np.zeros((0, num_classes, num_classes), dtype=np.int64)
    return np.stack(cms)


def _frame_class_iou(cms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame IoU of each foreground class from T x K x K confusions.

    Returns:
        iou (T x (K-1) float64, 0 where the union is empty), in_gt and in_any (T x (K-1) bool:
        the class is in the ground truth / in the ground truth or the prediction).
    """
    inter = np.diagonal(cms, axis1=1, axis2=2)[:, 1:].astype(np.float64)
    gt_px = cms.sum(axis=2)[:, 1:]
    pred_px = cms.sum(axis=1)[:, 1:]
    union = gt_px + pred_px - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou, gt_px > 0, (gt_px > 0) | (pred_px > 0)


def _masked_mean(values: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """Mean of ``values`` where ``mask`` along ``axis``; NaN where the mask is empty."""
    count = mask.sum(axis=axis)
    total = np.where(mask, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanmean(values: np.ndarray) -> float:
    """Mean over the non-NaN entries as a python float; NaN when there are none."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")
