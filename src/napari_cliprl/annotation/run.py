"""Predicting a sequence of frames into a label store: the one run loop of the widget's Run,
``cliprl predict`` and the benchmarks.

:func:`predict_sequence` yields after each frame so a caller can show results as they come,
report progress and stop between frames. It never opens a model or a file itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_cliprl.annotation.store import LabelStore, PredictorLike
from napari_cliprl.annotation.suggest import frame_uncertainty
from napari_cliprl.errors import describe_error

Progress = Callable[[int, int, str], None]


@dataclass
class FrameDone:
    """One frame predicted and stored (what a run yields)."""

    index: int  # frame index in the sequence
    done: int  # frames finished so far in this run
    total: int  # frames this run predicts
    seconds: float = 0.0  # wall time of this frame's prediction (the model's, not the store's)
    prior: bool = False  # a neighbour's labels were passed as ``prior=``


def predict_sequence(
    predictor: PredictorLike,
    frames: Any,
    indices: Sequence[int],
    store: LabelStore,
    *,
    key: str = "",
    propagate: bool = False,
    prior_weight: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> Iterator[FrameDone]:
    """Predict ``frames[i]`` (H x W x 3 uint8) for each i of ``indices`` (the processing order)
    that ``store.needs_prediction(i)``, writing zero-shot and step 0 .. step T proposals and the
    frame's uncertainty (for frame suggestions) into ``store``.

    ``key``: names the video in the predictor's feature cache (keys ``(key, i)``).
    ``propagate``: seed each frame with its predecessor's labels (``prior=``): the previous frame
    of ``indices`` (for the first, its neighbour on the side the order comes from); a reviewed
    predecessor gives its correction, else the prediction just made or what the store holds.
    ``should_stop()`` is checked before each frame; ``progress(done, total, message)`` after.
    """
    order = [int(i) for i in indices]
    todo = [i for i in order if store.needs_prediction(i)]
    backwards = len(order) > 1 and order[1] < order[0]
    wanted = set(todo)
    last: tuple[int, np.ndarray] | None = None
    done = 0
    for j, i in enumerate(order):
        if i not in wanted:
            continue
        if should_stop is not None and should_stop():
            return
        before = order[j - 1] if j else i + (1 if backwards else -1)
        prior = _prior(store, before, last, len(frames)) if propagate else None
        start = time.perf_counter()
        frame = np.asarray(frames[i])
        kwargs: dict[str, Any] = {"key": (key, i) if key else None, "prior": prior}
        if prior is not None and prior_weight is not None:
            kwargs["prior_weight"] = prior_weight
        pred = predictor.predict(frame, steps=store.steps, **kwargs)
        seconds = time.perf_counter() - start
        steps, entropy = list(pred.steps), list(getattr(pred, "entropy", None) or [])
        score = frame_uncertainty(entropy, steps) if entropy else None
        store.write_prediction(i, pred.zero_shot, steps, uncertainty=score, frame=frame)
        last = (i, steps[-1])
        done += 1
        if progress is not None:
            progress(done, len(todo), f"frame {i}")
        yield FrameDone(i, done, len(todo), seconds=seconds, prior=prior is not None)


def _prior(
    store: LabelStore, before: int, last: tuple[int, np.ndarray] | None, n: int
) -> np.ndarray | None:
    """Labels of frame ``before``: a reviewed correction, the prediction just made, the store's."""
    if not 0 <= before < n:
        return None
    if last is not None and last[0] == before and not store.is_reviewed(before):
        return last[1]
    return store.seed_labels(before)


def run_job(
    cache: Any,
    spec: Any,
    frames: Any,
    indices: Sequence[int],
    store: LabelStore,
    key: str = "",
    propagate: bool = False,
) -> Iterator[FrameDone]:
    """A whole run for a worker thread: get the model of ``spec`` from ``cache`` (a
    :class:`~napari_cliprl.annotation.models.PredictorCache`), then :func:`predict_sequence`.

    Never raises: a failure ends the generator with :func:`describe_error`'s sentence as its
    return value (None on success).
    """
    try:
        predictor = cache.get(spec)
        yield from predict_sequence(predictor, frames, indices, store, key=key, propagate=propagate)
    except Exception as e:  # noqa: BLE001 - reported to the user as one sentence
        return describe_error(e, spec.device)  # type: ignore[return-value]
    return None
