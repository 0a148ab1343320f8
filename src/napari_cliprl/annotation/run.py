"""Predicting a sequence of frames into a label store: the one run loop of the widget's Run,
``cliprl predict``, the re-proposal after a review and the benchmarks.

:func:`predict_sequence` yields after each frame so a caller can show results as they come,
report progress and stop between frames. It never opens a model or a file itself.

The video is the context of every frame: with ``propagate`` and reviewed frames in the store,
each frame to predict gets the labels of its nearest reviewed frames before and after it,
carried to it by optical flow (``napari_cliprl.flow``; a :class:`~napari_cliprl.flow.FlowCache`
computes each consecutive flow once), as its propagation context
(:class:`~napari_cliprl.fusion.context.FrameContext`). A model trained for video fusion fuses
them with the image; the raw propagated labels are stored as the ``propagated`` proposal.
Reviewed frames are then never predicted: their labels are what the others are built from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cliprl.annotation.store import LabelStore, PredictorLike
from napari_cliprl.annotation.suggest import frame_uncertainty

if TYPE_CHECKING:  # optical flow (cv2, zarr) loads when a run propagates, not with the GUI
    from napari_cliprl.flow import FlowSource
    from napari_cliprl.fusion.context import FrameContext

Progress = Callable[[int, int, str], None]


@dataclass
class FrameDone:
    """One frame predicted and stored (what a run yields)."""

    index: int  # frame index in the sequence
    done: int  # frames finished so far in this run
    total: int  # frames this run predicts
    seconds: float = 0.0  # wall time of this frame's prediction (the model's, not the store's)
    propagated: bool = False  # the frame had a propagation context from reviewed frames


def predict_sequence(
    predictor: PredictorLike,
    frames: Any,
    indices: Sequence[int],
    store: LabelStore,
    *,
    key: str = "",
    propagate: bool = True,
    flows: FlowSource | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> Iterator[FrameDone]:
    """Predict ``frames[i]`` (H x W x 3 uint8) for each i of ``indices`` that
    ``store.needs_prediction(i)``, writing zero-shot and step 0 .. step T proposals, the
    frame's uncertainty (for frame suggestions) and, with a context, the ``propagated`` labels
    into ``store``.

    ``key``: names the video in the predictor's feature cache (keys ``(key, i)``).
    ``propagate``: when the store has reviewed frames, give every frame its propagation
    context (module doc) and skip the reviewed frames; frames are then processed gap by gap
    (between consecutive reviewed frames, in the order ``indices`` first reaches each gap),
    ascending within a gap. ``flows``: consecutive flows of ``frames`` (e.g. a session's
    on-disk FlowCache); None: computed in memory as needed. Without propagation (or without
    reviewed frames) frames run in the order of ``indices``, each on its own.
    ``should_stop()`` is checked before each frame; ``progress(done, total, message)`` after.
    """
    anchors = _anchors(store) if propagate else {}
    wanted = [int(i) for i in indices]
    if anchors:
        wanted = [i for i in wanted if i not in anchors]
    todo = [i for i in dict.fromkeys(wanted) if store.needs_prediction(i)]
    done = 0
    for i, context in _frames_with_context(todo, anchors, frames, flows):
        if should_stop is not None and should_stop():
            return
        start = time.perf_counter()
        frame = np.asarray(frames[i])
        kwargs: dict[str, Any] = {"key": (key, i) if key else None}
        if context is not None:
            kwargs["context"] = context
        pred = predictor.predict(frame, steps=store.steps, **kwargs)
        seconds = time.perf_counter() - start
        steps, entropy = list(pred.steps), list(getattr(pred, "entropy", None) or [])
        score = frame_uncertainty(entropy, steps) if entropy else None
        extra = {} if context is None else {"propagated": context.propagated}
        store.write_prediction(i, pred.zero_shot, steps, uncertainty=score, frame=frame, **extra)
        done += 1
        if progress is not None:
            progress(done, len(todo), f"frame {i}")
        yield FrameDone(i, done, len(todo), seconds=seconds, propagated=context is not None)


def _anchors(store: LabelStore) -> dict[int, np.ndarray]:
    """The store's reviewed frames and their labels (empty for a store without reviews)."""
    reviewed = getattr(store, "reviewed", None) or []
    return {int(i): np.asarray(store.anchor_labels(int(i))) for i in reviewed}


def _frames_with_context(
    todo: list[int],
    anchors: dict[int, np.ndarray],
    frames: Any,
    flows: FlowSource | None,
) -> Iterable[tuple[int, FrameContext | None]]:
    """(frame, its context) for every frame of ``todo``; contexts only with anchors."""
    if not anchors or not todo or len(frames) < 2:
        yield from ((i, None) for i in todo)
        return
    from napari_cliprl.flow import FlowCache, iter_propagate
    from napari_cliprl.fusion.context import frame_context

    flows = flows if flows is not None else FlowCache(frames)
    for gap in _gaps_in_order(todo, sorted(anchors)):
        for i, propagated in iter_propagate(anchors, gap, flows):
            yield i, frame_context(propagated, anchors)


def _gaps_in_order(todo: list[int], keys: list[int]) -> list[list[int]]:
    """``todo`` split into the gaps between consecutive anchors ``keys``, each ascending, the
    gaps in the order ``todo`` first reaches them."""
    import bisect

    gaps: dict[int, list[int]] = {}
    for i in todo:
        gaps.setdefault(bisect.bisect_left(keys, i), []).append(i)
    return [sorted(frames) for frames in gaps.values()]
