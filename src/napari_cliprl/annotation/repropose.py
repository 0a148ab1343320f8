"""Re-proposing the neighbours of a frame that was just reviewed (the widget's core, no Qt).

When a person finishes a frame, the frames whose nearest reviewed frame it now is get new
proposals: the unreviewed frames between it and its reviewed neighbours (to the ends of the
video where it has none), predicted from the labels propagated from the reviewed frames
(:func:`~napari_cliprl.annotation.run.predict_sequence` with propagation). Reviewed frames are
never touched. Backbone features come from the predictor's cache and flows from the
:class:`~napari_cliprl.flow.FlowCache` (a session's lives in its folder:
:func:`session_flows`), so a re-proposal costs warps and the decoder and agent only.

Three faces of one core: :func:`frames_to_repropose` (which frames), :func:`repropose`
(a generator of :class:`~napari_cliprl.annotation.run.FrameDone`, e.g. in a napari worker) and
:func:`repropose_job` (the same for a worker thread that must not raise).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from napari_cliprl.annotation.run import FrameDone, Progress, predict_sequence
from napari_cliprl.annotation.store import LabelStore, PredictorLike
from napari_cliprl.errors import describe_error

if TYPE_CHECKING:  # optical flow (cv2, zarr) loads with the first re-proposal
    from napari_cliprl.flow import FlowCache, FlowSource


def frames_to_repropose(index: int, reviewed: Sequence[int], num_frames: int) -> list[int]:
    """The unreviewed frames between reviewed frame ``index`` and its nearest reviewed frames
    before and after it (the video's ends where there is none), ``index`` excluded: the frames
    after it first (nearest first), then those before it.

    ``reviewed`` may or may not hold ``index`` itself.
    """
    index, n = int(index), int(num_frames)
    if not 0 <= index < n:
        raise IndexError(f"frame {index} out of range 0..{n - 1}")
    others = sorted({int(r) for r in reviewed} - {index})
    pos = bisect.bisect_left(others, index)
    before = others[pos - 1] if pos > 0 else -1
    after = others[pos] if pos < len(others) else n
    return [*range(index + 1, after), *range(before + 1, index)]


def session_flows(session: Any, frames: Any) -> FlowCache:
    """The flow cache of a session's video, on disk in the session folder (``flow.zarr``)."""
    from napari_cliprl.flow import FlowCache

    return FlowCache(frames, session.folder)


def repropose(
    predictor: PredictorLike,
    frames: Any,
    store: LabelStore,
    index: int,
    *,
    key: str = "",
    flows: FlowSource | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> Iterator[FrameDone]:
    """New proposals for :func:`frames_to_repropose` of the reviewed frame ``index`` in
    ``store`` (which must already list it as reviewed, with its labels as the anchor)."""
    if not store.is_reviewed(index):
        raise ValueError(f"frame {index} is not marked reviewed: mark it before re-proposing")
    todo = frames_to_repropose(index, store.reviewed, len(frames))
    yield from predict_sequence(
        predictor,
        frames,
        todo,
        store,
        key=key,
        propagate=True,
        flows=flows,
        should_stop=should_stop,
        progress=progress,
    )


def repropose_job(
    cache: Any,
    spec: Any,
    frames: Any,
    store: LabelStore,
    index: int,
    key: str = "",
    flows: FlowSource | None = None,
) -> Iterator[FrameDone]:
    """:func:`repropose` for a worker thread: the model of ``spec`` from ``cache`` (a
    ``PredictorCache``); never raises: a failure ends the generator with
    :func:`~napari_cliprl.errors.describe_error`'s sentence as its return value."""
    try:
        predictor = cache.get(spec)
        yield from repropose(predictor, frames, store, index, key=key, flows=flows)
    except Exception as e:  # noqa: BLE001 - reported to the user as one sentence
        return describe_error(e, spec.device)  # type: ignore[return-value]
    return None
