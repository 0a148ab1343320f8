"""Which frame to review next: rank unreviewed frames by the model's uncertainty.

A frame's uncertainty combines two signals the predictor already computes: the mean per-pixel
entropy of the last refinement step, and how much the refinement steps disagree with each other
(the fraction of pixels whose label changed between step 0 and the last step). Optionally the
score grows with the distance (in frames) to the nearest reviewed frame, so that suggestions
spread over the video instead of clustering where the model is uniformly unsure.

Pure numpy (plus a session's stored scores in :func:`suggest_frames`); the widget and the
annotation-loop benchmark both call these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cliprl.annotation.session import Session


def frame_uncertainty(entropy: Sequence[float], steps: Sequence[np.ndarray] | None = None) -> float:
    """Uncertainty of one predicted frame (higher = more worth reviewing).

    entropy: mean per-pixel entropy per step (``Prediction.entropy``), in nats.
    steps: the per-step label maps (``Prediction.steps``, H x W uint8); when given, the fraction
    of pixels that differ between the first and the last step is added.
    """
    if len(entropy) == 0:
        raise ValueError("frame_uncertainty needs the entropy of at least one step")
    score = float(entropy[-1])
    if steps is not None and len(steps) > 1:
        score += float(np.mean(np.asarray(steps[0]) != np.asarray(steps[-1])))
    return score


def distance_to_reviewed(reviewed: np.ndarray) -> np.ndarray:
    """Per frame, the distance in frames to the nearest reviewed frame (T,) float.

    inf everywhere when nothing is reviewed.
    """
    reviewed = np.asarray(reviewed, dtype=bool)
    n = len(reviewed)
    if not reviewed.any():
        return np.full(n, np.inf)
    positions = np.flatnonzero(reviewed)
    index = np.arange(n)
    pos = np.clip(np.searchsorted(positions, index), 1, len(positions)) - 1
    left = np.abs(index - positions[pos])
    right = np.abs(positions[np.clip(pos + 1, 0, len(positions) - 1)] - index)
    return np.minimum(left, right).astype(float)


def suggestion_scores(
    uncertainty: np.ndarray, reviewed: np.ndarray, distance_weight: float = 0.0
) -> np.ndarray:
    """Score per frame (T,), -inf for reviewed or never-predicted (NaN uncertainty) frames.

    score = uncertainty * (1 + distance_weight * d / T), with d the distance to the nearest
    reviewed frame (d = T when none is reviewed, so the factor is the same for all frames).
    """
    uncertainty = np.asarray(uncertainty, dtype=float)
    reviewed = np.asarray(reviewed, dtype=bool)
    if uncertainty.shape != reviewed.shape:
        raise ValueError(
            f"uncertainty {uncertainty.shape} and reviewed {reviewed.shape} differ in length"
        )
    n = max(len(uncertainty), 1)
    distance = np.minimum(distance_to_reviewed(reviewed), n)
    scores = uncertainty * (1.0 + distance_weight * distance / n)
    scores[reviewed | np.isnan(uncertainty)] = -np.inf
    return scores


def rank_frames(
    uncertainty: np.ndarray, reviewed: np.ndarray, distance_weight: float = 0.0
) -> list[int]:
    """Unreviewed, predicted frame indices, most worth reviewing first (ties: lower index)."""
    scores = suggestion_scores(uncertainty, reviewed, distance_weight)
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [int(i) for i in order if np.isfinite(scores[i])]


def next_suggested_frame(
    uncertainty: np.ndarray, reviewed: np.ndarray, distance_weight: float = 0.0
) -> int | None:
    """The top-ranked frame, or None when every predicted frame is reviewed."""
    ranking = rank_frames(uncertainty, reviewed, distance_weight)
    return ranking[0] if ranking else None


def pick_frames(
    uncertainty: np.ndarray,
    k: int,
    reviewed: np.ndarray | None = None,
    distance_weight: float = 1.0,
) -> list[int]:
    """Greedily pick ``k`` frames to review, re-ranking after each pick as the widget would.

    Each picked frame counts as reviewed for the next pick, so with ``distance_weight > 0`` the
    picks spread out over the video.
    """
    uncertainty = np.asarray(uncertainty, dtype=float)
    done = (
        np.zeros(len(uncertainty), dtype=bool)
        if reviewed is None
        else np.asarray(reviewed, dtype=bool).copy()
    )
    picks: list[int] = []
    for _ in range(k):
        frame = next_suggested_frame(uncertainty, done, distance_weight)
        if frame is None:
            break
        picks.append(frame)
        done[frame] = True
    return picks


def suggest_frames(session: Session, distance_weight: float = 0.0) -> list[int]:
    """Unreviewed predicted frames of ``session``, most worth reviewing first."""
    return rank_frames(session.uncertainty(), session.reviewed_mask(), distance_weight)
