"""The annotator's controller: owns the session, its layers and the workers.

Widget-free: the dock (:mod:`._widget`) turns clicks into calls of the public methods below
and shows what the signals report. Long work runs in napari workers (:mod:`._jobs`); what
must happen on the main thread comes in slices (layers) or batches (frames).
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, QTimer, Signal

from napari_cliprl.annotation.models import ModelSpec, PredictorCache
from napari_cliprl.annotation.run import FrameDone
from napari_cliprl.annotation.suggest import suggest_frames
from napari_cliprl.io.lazy import LazyArray, as_frames
from napari_cliprl.schemas import get_schema, list_schemas, register_schema
from napari_cliprl.steps import step_label

from ._finetune_control import FinetuneController
from ._guard import Slices, plural
from ._jobs import SessionReady, SessionTarget, run_job, warm_charts
from ._layers import SESSION_KEY, session_folder, source_of_layer
from ._reproposer import Reproposer
from ._review_marks import ReviewMarks
from ._saved_sessions import SavedSessions
from ._session_layers import SessionLayers, painted_frames
from ._tasks import SessionTasks

if TYPE_CHECKING:  # the session (zarr) loads with the first run, not with the dock
    from napari_cliprl.annotation.session import Session

# predicted frames reach the screen in batches, at most this often. (No napari activity
# bar: each of its updates processes the whole event queue and repaints the window, which
# measured 0.025 s of main-thread time per frame against 0.003 s without it.)
FLUSH_MS = 200
RANK_S = 1.0  # the suggestion ranking is recomputed at most this often during a run


class AnnotatorController(QObject):
    """Session, layers, runs, review and restore of the CLIP-RL annotator."""

    session_changed = Signal(object)  # the Session now shown (its layers may still be coming)
    layers_ready = Signal()  # every layer of the session is in the viewer
    reviewed_changed = Signal(int, int)  # reviewed frames, frames
    predictions_changed = Signal()  # frames were predicted since the last report
    run_started = Signal(int)  # frames to predict
    run_progress = Signal(int, int, str)  # done, total, message
    run_finished = Signal(str)  # one sentence: done, cancelled or why it failed
    model_loaded = Signal(str)  # the model a run uses has loaded (its description)
    session_restored = Signal(object)  # a saved session was reopened (after session_changed)
    paint_label_changed = Signal(int)  # corrected's label, also when napari's control sets it
    failed = Signal(str, str)  # message, where (the section that shows it)

    def __init__(self, viewer: Any, predictors: Any = None) -> None:
        super().__init__()
        self.viewer = viewer
        self.predictors = predictors if predictors is not None else PredictorCache()
        self.tasks = SessionTasks(viewer)
        self.training = FinetuneController()
        self.saved = SavedSessions()
        self.saved.restored.connect(self._on_restored)
        self.saved.failed.connect(self.failed)
        self.reproposer = Reproposer(self.predictors)  # after reviews; never beside a Run
        self.reproposer.frame_done.connect(self._on_reproposed)
        self.reproposer.finished.connect(self._sync_if_incomplete)
        self.reproposer.finished.connect(self.predictions_changed)
        self.reproposer.failed.connect(self.failed)
        self._session: Session | None = None
        self._layers: SessionLayers | None = None
        self._marks: ReviewMarks | None = None
        self._run_worker: Any = None
        self._pending: list[FrameDone] = []
        self._run_done = 0
        self._run_error: str | None = None
        self._run_total = 0
        self._charts_warm = False
        self._ranked = 0.0  # when the ranking was last recomputed (time.monotonic)
        self._slices = Slices(self._on_layers_synced, lambda m: self.failed.emit(m, "run"))
        self._flush_timer = QTimer()
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)

    # -- state ---------------------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def is_running(self) -> bool:
        return self._run_worker is not None

    @property
    def is_restoring(self) -> bool:
        return self.saved.is_restoring

    @property
    def layers_pending(self) -> bool:
        """True while the session's layers are still being added to the viewer."""
        return self._slices.active

    def current_frame(self) -> int:
        step = self.viewer.dims.current_step
        return int(step[0]) if len(step) >= 3 else 0

    def go_to(self, frame: int) -> None:
        self.viewer.dims.set_current_step(0, int(frame))

    def require_session(self) -> Session:
        if self._session is None:
            raise ValueError("Run the model or restore a session first.")
        return self._session

    def session_frames(self, image: Image | None) -> LazyArray | None:
        """The frames of ``image`` when they are the session's (for export and training)."""
        if image is None or self._session is None:
            return None
        frames = as_frames(image.data, image.rgb)
        return frames if len(frames) == self._session.shape[0] else None

    # -- run -----------------------------------------------------------------------------
    def run(
        self,
        spec: ModelSpec,
        image: Image | None,
        indices: list[int],
        *,
        propagate: bool = True,
        session_dir: str | None = None,
    ) -> None:
        """Predict frames ``indices`` of ``image`` with the model of ``spec`` in a worker
        (``propagate``: from the reviewed frames by optical flow), once no re-proposal runs."""
        if self.is_running or self.is_restoring:
            raise RuntimeError("A run is in progress; cancel it or wait for it to finish.")
        if image is None:
            raise ValueError("Open a video or pick an image layer first.")
        if not indices:
            raise ValueError("No frames to run on: pick the frames in the Data section.")
        frames = as_frames(image.data, image.rgb)
        target = SessionTarget(
            folder=session_folder(image, session_dir),
            source=source_of_layer(image),
            shape=(len(frames), *frames.shape[1:3]),
            schema=get_schema(spec.schema),
        )
        worker = create_worker(
            run_job,
            self.predictors,
            spec,
            frames,
            list(indices),
            target,
            self._session,
            key=source_of_layer(image) or image.name,
            propagate=propagate,
        )
        scale = tuple(image.scale[:3]) if image.ndim == 3 else None
        worker.yielded.connect(functools.partial(self._on_run_item, scale))
        worker.returned.connect(self._on_run_returned)
        worker.finished.connect(functools.partial(self._on_run_finished, worker))
        self._run_worker = worker
        self._pending, self._run_done, self._run_error = [], 0, None
        self._run_total = len(indices)
        self.run_started.emit(len(indices))
        n = plural(len(indices), "frame")
        self.run_progress.emit(0, len(indices), f"Loading the model for {n}…")
        self._flush_timer.start()
        self.reproposer.stop(then=worker.start)

    def cancel(self) -> None:
        """Stop the run after its current frame; without a run, the re-proposal and what waits."""
        if self._run_worker is None:
            self.reproposer.stop()
            return
        self._run_worker.quit()
        self.run_progress.emit(self._run_done, 0, "Cancelling…")

    def rerun_unreviewed(self, spec: ModelSpec, image: Image | None, propagate: bool) -> None:
        """Predict every frame nobody reviewed yet (reviewed frames keep their labels)."""
        session = self.require_session()
        reviewed = set(session.reviewed)
        indices = [i for i in range(session.shape[0]) if i not in reviewed]
        if not indices:
            raise ValueError("Every frame is reviewed: nothing to re-run.")
        self.run(spec, image, indices, propagate=propagate, session_dir=str(session.folder))

    def _on_run_item(self, scale: Any, item: SessionReady | FrameDone) -> None:
        if isinstance(item, SessionReady):
            if item.session is not self._session:
                self._attach(item.session, scale)
            else:
                self._sync_layers()
            self.model_loaded.emit(item.model)
            total = self._run_total
            self.run_progress.emit(0, total, f"Predicting {plural(total, 'frame')}…")
            return
        self._run_done = item.done
        self._pending.append(item)

    def _flush(self) -> None:
        """Show the frames predicted since the last flush: one progress update, a redraw
        only when the frame on screen is among them, the ranking at most every RANK_S."""
        items, self._pending = self._pending, []
        if not items:
            return
        last = items[-1]
        self.run_progress.emit(last.done, last.total, "")  # the bar counts; no relayout
        if self._layers is not None and not self._slices.active:
            self._layers.refresh_frame(item.index for item in items)
        if time.monotonic() - self._ranked >= RANK_S:
            self._ranked = time.monotonic()
            self.predictions_changed.emit()

    def _on_run_returned(self, message: str | None) -> None:
        self._run_error = message

    def _on_run_finished(self, worker: Any) -> None:
        if self._run_worker is not worker:
            return
        self._run_worker = None
        self._flush()
        self._flush_timer.stop()
        if self._layers is not None and not self._slices.active:
            self._layers.refresh()
        self._sync_if_incomplete()
        n = plural(self._run_done, "frame")
        if self._run_error:
            self.failed.emit(self._run_error, "run")
            status = self._run_error
        elif worker.abort_requested:
            status = f"Cancelled after {n}."
        else:
            status = f"Done: {n} predicted."
        self.run_finished.emit(status)
        self.predictions_changed.emit()
        self._warm_charts_once()

    def _warm_charts_once(self) -> None:
        """Import matplotlib in a worker while the user looks at the results, rather than
        when they press Fine-tune or Evaluate: in a process holding napari and torch, the
        objects an import creates set off a full garbage collection that holds the
        interpreter for 0.3-0.5 s, whichever thread triggers it."""
        if not self._charts_warm:
            self._charts_warm = True
            create_worker(warm_charts).start()

    # -- sessions and layers -------------------------------------------------------------
    def check_saved_session(self, image: Image | None, session_dir: str | None) -> None:
        """Offer (``saved.offered``) the saved session of ``image`` unless it is shown."""
        self.saved.check(image, session_dir)

    def restore(self, image: Image | None, session_dir: str | None = None) -> None:
        """Reopen the saved session of ``image`` (edits and reviewed flags) in a worker."""
        if self.is_running or self.is_restoring:
            raise RuntimeError("A run is in progress; cancel it before restoring a session.")
        self.reproposer.stop(then=functools.partial(self.saved.restore, image, session_dir))

    def _on_restored(self, session: Session, image: Image | None, scale: Any) -> None:
        if session.schema.name not in list_schemas():
            register_schema(session.schema)
        if image is not None:
            image.metadata[SESSION_KEY] = str(session.folder)
        self._attach(session, scale)
        self.session_restored.emit(session)

    def _attach(self, session: Session, scale: Any) -> None:
        if self._layers is not None:
            self._layers.detach()
        self.reproposer.stop()
        self._session = session
        self._marks = ReviewMarks(session.mark_reviewed)
        self._layers = SessionLayers(
            self.viewer,
            session,
            scale=scale,
            on_edit=self._on_edit,
            on_undo=self._on_undo,
            on_redo=self._on_redo,
        )
        self.saved.shown(session.folder)
        self.session_changed.emit(session)
        self._emit_reviewed()
        self._sync_layers()

    def _sync_layers(self) -> None:
        if self._layers is not None:
            self._slices.start(self._layers.sync())

    def _sync_if_incomplete(self) -> None:
        """Add what a run or re-proposal made (the ``propagated`` layer), if anything."""
        layers = self._layers
        if layers is not None and not self._slices.active and not layers.is_complete():
            self._sync_layers()

    def _on_layers_synced(self) -> None:
        corrected = self._layers.corrected if self._layers is not None else None
        if corrected is not None:
            corrected.events.selected_label.disconnect(self._on_selected_label)
            corrected.events.selected_label.connect(self._on_selected_label)
            self._on_selected_label()
        self.layers_ready.emit()
        if not self.is_running:
            self._warm_charts_once()

    def _on_selected_label(self, event: Any = None) -> None:
        corrected = self._layers.corrected if self._layers is not None else None
        if corrected is not None:
            self.paint_label_changed.emit(int(corrected.selected_label))

    # -- review --------------------------------------------------------------------------
    def _require_corrected(self) -> tuple[Session, Any]:
        session = self.require_session()
        corrected = self._layers.corrected if self._layers is not None else None
        if corrected is None or corrected not in self.viewer.layers:
            raise ValueError("The session's layers are still being added; try again.")
        return session, corrected

    def accept_step(self, step: int) -> None:
        """Copy step ``step`` of the current frame into "corrected" (one undoable edit) and
        mark the frame reviewed."""
        session, corrected = self._require_corrected()
        t, i = int(step), self.current_frame()
        if not 0 <= t <= session.steps:
            raise ValueError(f"Step {t} is not shown; pick a step from 0 to {session.steps}.")
        if i not in session.predicted:
            raise ValueError(f"Frame {i} has no proposals yet; run the model on it first.")
        proposal = np.asarray(session.array(step_label(t))[i])
        ys, xs = np.nonzero(proposal != np.asarray(corrected.data[i]))
        if ys.size:  # an edit: the paint event marks the frame (and its undo un-marks it)
            corrected.data_setitem((np.full(ys.size, i), ys, xs), proposal[ys, xs])
        if session.mark_reviewed([i]):
            self._emit_reviewed()
            if not ys.size:  # (an edit re-proposes from its paint event)
                self._repropose([i])

    def unreview(self) -> bool:
        """Take back the reviewed mark of the current frame; False when it had none."""
        session = self.require_session()
        changed = bool(session.mark_reviewed([self.current_frame()], False))
        self._emit_reviewed()
        return changed

    def next_unreviewed(self) -> int | None:
        """Move to the next frame nobody has reviewed yet (None: every frame is)."""
        index = self.require_session().next_unreviewed(after=self.current_frame())
        if index is not None:
            self.go_to(index)
        return index

    def suggestions(self, distance_weight: float) -> list[int]:
        """Unreviewed predicted frames, the one most worth reviewing first."""
        if self._session is None:
            return []
        return suggest_frames(self._session, distance_weight)

    def next_suggested(self, distance_weight: float) -> int | None:
        self.require_session()
        ranking = self.suggestions(distance_weight)
        if ranking:
            self.go_to(ranking[0])
        return ranking[0] if ranking else None

    def set_paint_label(self, class_id: int) -> None:
        corrected = self._layers.corrected if self._layers is not None else None
        if corrected is not None:
            corrected.selected_label = int(class_id)
            self.viewer.layers.selection.active = corrected

    def _on_edit(self, atoms: list[Any]) -> None:
        if self._marks is not None and self._marks.edited(atoms):
            self._emit_reviewed()
        self._repropose(painted_frames(atoms))

    def _repropose(self, frames: Any) -> None:
        """Carry the corrections of the reviewed ``frames`` to their unreviewed neighbours
        in a worker (:mod:`._reproposer`), unless a Run or restore is under way."""
        if self._session is not None and not (self.is_running or self.is_restoring):
            self.reproposer.request(self._session, sorted(frames))

    def _on_reproposed(self, index: int) -> None:
        if self._layers is not None and not self._slices.active:
            self._layers.refresh_frame([index])

    def _on_undo(self, atoms: list[Any]) -> None:
        if self._marks is not None and self._marks.undone(atoms):
            self._emit_reviewed()

    def _on_redo(self, atoms: list[Any]) -> None:
        if self._marks is not None and self._marks.redone(atoms):
            self._emit_reviewed()

    def _emit_reviewed(self) -> None:
        if self._session is not None:
            self.reviewed_changed.emit(len(self._session.reviewed), self._session.shape[0])
