"""Re-proposing the neighbours of a frame a person just reviewed, in a worker (part of the
annotator's controller).

When a frame becomes reviewed (or a reviewed frame is edited again) and "Propagate
corrections" is on, the unreviewed frames between it and its reviewed neighbours get new
proposals: its labels carried to them by optical flow and fused by the model
(:func:`~napari_cliprl.annotation.repropose.repropose`, run by
:func:`~._jobs.repropose_session_job` in a napari worker). One re-proposal runs at a time,
never beside a Run: frames reviewed while one runs wait in a queue (each frame once, in the
order they were reviewed) and run after it, so every correction is carried with the labels it
has when its turn comes; a frame un-reviewed before its turn, or any waiting frame once the
box is unticked, is dropped. :meth:`stop` (the dock's Cancel, a Run, a restore, another
session) empties the queue, cancels the re-proposal after its current frame and calls back
once nothing writes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

from napari_cliprl.annotation.repropose import frames_to_repropose
from napari_cliprl.annotation.run import FrameDone
from napari_cliprl.errors import describe_error
from napari_cliprl.io.lazy import as_frames

from ._guard import plural
from ._jobs import repropose_session_job
from ._layers import source_of_layer

if TYPE_CHECKING:  # the session (zarr) loads with the first run, not with the dock
    from napari_cliprl.annotation.session import Session

Source = Callable[[], tuple[Any, Any]]  # () -> (ModelSpec, image layer or None)


class Reproposer(QObject):
    """Re-proposals after reviews, one worker at a time (see the module doc)."""

    started = Signal()  # a re-proposal began (the dock's Cancel can stop it)
    frame_done = Signal(int)  # a frame got new proposals (its index)
    finished = Signal()  # a re-proposal ended (done, stopped or failed)
    status = Signal(str)  # what it is doing / did, one sentence
    failed = Signal(str, str)  # message, where

    def __init__(self, predictors: Any) -> None:
        super().__init__()
        self.predictors = predictors
        self._enabled: Callable[[], bool] = lambda: False
        self._source: Source | None = None
        self._session: Session | None = None
        self._queue: list[int] = []
        self._worker: Any = None
        self._then: list[Callable[[], None]] = []
        self._done = 0
        self._error: str | None = None

    def configure(self, enabled: Callable[[], bool], source: Source) -> None:
        """``enabled()``: whether reviews re-propose (the Run section's box); ``source()``:
        the model spec and image layer a re-proposal uses (the Model and Data sections)."""
        self._enabled, self._source = enabled, source

    def detach(self) -> None:
        """The dock is gone (its box and pickers deleted): drop what waits and start nothing
        more; a re-proposal in progress ends on its own."""
        self._enabled, self._source = (lambda: False), None
        self._queue.clear()

    @property
    def active(self) -> bool:
        return self._worker is not None

    @property
    def queued(self) -> list[int]:
        return list(self._queue)

    def request(self, session: Session, frames: list[int]) -> None:
        """Re-propose around each of ``frames`` (reviewed frames of ``session``), now or
        after the re-proposal in progress; nothing when the box is off."""
        if self._source is None or not self._enabled():
            return
        if session is not self._session:
            self.stop()
            self._session = session
        self._queue.extend(f for f in dict.fromkeys(frames) if f not in self._queue)
        if not self.active:
            self._next()

    def stop(self, then: Callable[[], None] | None = None) -> None:
        """Drop the waiting frames and cancel the re-proposal after its current frame;
        ``then()`` runs once no re-proposal writes (at once when none does)."""
        self._queue.clear()
        if self._worker is None:
            if then is not None:
                then()
            return
        if then is not None:
            self._then.append(then)
        self._worker.quit()

    def _next(self) -> None:
        session = self._session
        if not self._enabled():  # the box was unticked: what waited is dropped
            self._queue.clear()
        while self._queue and session is not None:
            index = self._queue.pop(0)
            if session.is_reviewed(index):
                try:
                    self._start(session, index)
                except ValueError as e:
                    self._queue.clear()
                    self.failed.emit(describe_error(e), "run")
                return

    def _start(self, session: Session, index: int) -> None:
        assert self._source is not None
        spec, image = self._source()
        if image is None:
            raise ValueError("Pick the session's image layer to re-propose its frames.")
        frames = as_frames(image.data, image.rgb)
        if len(frames) != session.shape[0]:
            raise ValueError(f"{image.name!r} is not the session's video: nothing re-proposed.")
        count = len(frames_to_repropose(index, session.reviewed, len(frames)))
        key = source_of_layer(image) or image.name
        worker = create_worker(
            repropose_session_job, self.predictors, spec, frames, session, index, key=key
        )
        worker.yielded.connect(self._on_frame)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(functools.partial(self._on_finished, worker, index))
        self._worker, self._done, self._error = worker, 0, None
        self.status.emit(f"Re-proposing {plural(count, 'frame')} from frame {index}'s correction…")
        worker.start()
        self.started.emit()

    def _on_frame(self, item: FrameDone) -> None:
        self._done = item.done
        self.frame_done.emit(item.index)

    def _on_returned(self, message: str | None) -> None:
        self._error = message  # (napari reports no return value of a cancelled worker)

    def _on_finished(self, worker: Any, index: int) -> None:
        if self._worker is not worker:
            return
        self._worker = None
        n = plural(self._done, "frame")
        if self._error:
            self.failed.emit(self._error, "run")
        elif worker.abort_requested:
            self.status.emit(f"Re-proposal from frame {index} stopped after {n}.")
        else:
            self.status.emit(f"Re-proposed {n} from frame {index}'s correction.")
        self.finished.emit()
        then, self._then = self._then, []
        for callback in then:  # what waited (a Run) takes over: the queue was emptied
            callback()
        if not then:
            self._next()
