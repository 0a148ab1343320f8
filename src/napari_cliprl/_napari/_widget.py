"""The "CLIP-RL annotator" dock widget: reads layers, runs core functions in workers, writes
layers. Sections live in ``_sections``, fine-tune/suggestions/evaluation in ``_loop``; session
store, prediction loop and export are core (``napari_cliprl.annotation.session``, ``.annotate``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils.notifications import (
    Notification,
    NotificationSeverity,
    notification_manager,
    show_error,
    show_info,
)
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from napari_cliprl.annotation.export import try_export
from napari_cliprl.annotation.models import ModelSpec, PredictorCache, checkpoint_hash
from napari_cliprl.annotation.run import FrameDone, run_job
from napari_cliprl.annotation.session import SESSION_FILE, Session
from napari_cliprl.io.lazy import LazyArray, as_frames
from napari_cliprl.schemas import get_schema, list_schemas, register_schema
from napari_cliprl.steps import step_label

from ._guard import disconnect_all, reports_errors
from ._layers import (
    SESSION_KEY,
    SessionLayers,
    restorable_folder,
    session_folder,
    source_of_layer,
)
from ._loop import LoopControls
from ._sections.data import DataSection
from ._sections.export import ExportSection
from ._sections.model import ModelSection
from ._sections.review import ReviewSection
from ._sections.run import RunSection

MIN_WIDTH = 340


class AnnotatorWidget(QWidget):
    """Run CLIP-RL on a video, review its refinement steps, correct and export."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._data = DataSection(napari_viewer)
        self._model = ModelSection()
        self._run = RunSection()
        self._review = ReviewSection()
        self._export = ExportSection()
        self._session: Session | None = None
        self._layers: SessionLayers | None = None
        self._predictors = PredictorCache()
        self._worker: Any = None
        self._run_done = 0
        self._run_error: str | None = None
        self._export_worker: Any = None
        self._last_export: list[Path] = []
        self._offered: set[str] = set()
        self._loop = LoopControls(self)
        self._build_layout()
        self._connect()
        self._offer_restore(self._data.image_layer())

    def _build_layout(self) -> None:
        inner = QWidget()
        column = QVBoxLayout(inner)
        suggest, finetune, evaluate = self._loop.sections
        sections = (self._data, self._model, self._run, self._review, suggest, self._export)
        for section in (*sections, finetune, evaluate):
            column.addWidget(section)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(MIN_WIDTH)
        scroll.setWidget(inner)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)

    def _connect(self) -> None:
        self._run._run_button.clicked.connect(self.run)
        self._run._cancel_button.clicked.connect(self.cancel)
        self._review.next_requested.connect(self.next_unreviewed)
        self._review.accept_requested.connect(self.accept_step)
        self._review.class_picked.connect(self._set_paint_label)
        self._export._export_button.clicked.connect(lambda: self.export())
        self._data.image_changed.connect(lambda: self._offer_restore(self._data.image_layer()))
        layer_events = self.viewer.layers.events
        links = [
            (layer_events.inserted, self._on_layer_inserted),
            (layer_events.inserted, self._data.refresh_layers),
            (layer_events.removed, self._data.refresh_layers),
        ]
        layer_events.inserted.connect(self._on_layer_inserted)
        # when the dock is deleted, the viewer must stop calling into its Qt objects
        self.destroyed.connect(functools.partial(disconnect_all, links))

    def _report(self, message: str) -> None:
        """Show a failure: an error notification plus the run status line."""
        show_error(message)
        self._run.set_status(message)

    # -- public API (buttons, `cliprl demo`, tests) ----------------------------------------
    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def is_running(self) -> bool:
        return self._worker is not None

    @reports_errors
    def run(self, indices: list[int] | None = None) -> None:
        """Predict the chosen frames (or ``indices``) of the chosen image layer in a worker."""
        if self._worker is not None:
            raise RuntimeError("A run is in progress; cancel it or wait for it to finish.")
        image = self._require_image()
        frames = as_frames(image.data, image.rgb)
        spec = self._model.spec()
        session = self._open_session(image, frames, spec)
        if indices is None:
            indices = self._data.frame_indices(self._current_frame())
        key = source_of_layer(image) or image.name
        worker = create_worker(
            run_job,
            self._predictors,
            spec,
            frames,
            indices,
            session,
            key,
            propagate=self._run.propagate(),
            _progress={"total": len(indices), "desc": "CLIP-RL"},
        )
        worker.yielded.connect(self._on_frame_done)
        worker.returned.connect(self._on_run_returned)
        worker.finished.connect(self._on_run_finished)
        self._worker = worker
        self._run_done, self._run_error = 0, None
        self._run.set_running(True)
        self._run.set_progress(0, len(indices), f"Loading model, then {len(indices)} frames…")
        worker.start()

    def cancel(self) -> None:
        """Stop the current run after the frame being predicted."""
        if self._worker is not None:
            self._worker.quit()
            self._run.set_status("Cancelling…")

    @reports_errors
    def restore_session(self, folder: str | Path | None = None) -> bool:
        """Reopen a saved session (edits and reviewed flags) for the selected image layer."""
        if self._worker is not None:
            raise RuntimeError("A run is in progress; cancel it before restoring a session.")
        image = self._data.image_layer()
        folder = Path(folder) if folder else restorable_folder(image, self._data.session_dir())
        if folder is None:
            raise FileNotFoundError("No saved session for this image; run the model first.")
        session = Session.open(folder)
        if session.schema.name not in list_schemas():
            register_schema(session.schema)
        if image is not None:
            frames = as_frames(image.data, image.rgb)
            session.check_compatible((len(frames), *frames.shape[1:3]), session.schema)
            image.metadata[SESSION_KEY] = str(folder)
        self._model.set_schema(session.schema.name)
        self._model.set_steps(session.steps)
        if session.info.checkpoint:
            self._model.set_checkpoint(session.info.checkpoint)
        self._attach(session, image)
        show_info(f"Restored session: {len(session.reviewed)} reviewed frames.")
        return True

    @reports_errors
    def accept_step(self, step: int | None = None) -> None:
        """Copy step ``step`` of the current frame into "corrected" (undoable) and mark it
        reviewed."""
        session, layers = self._require_session()
        t = session.steps if step is None else int(step)
        i = layers.current_frame()
        if i not in session.predicted:
            raise ValueError(f"Frame {i} has no proposals yet; run the model on it first.")
        proposal = np.asarray(session.array(step_label(t))[i])
        corrected = layers.corrected
        ys, xs = np.nonzero(proposal != np.asarray(corrected.data[i]))
        if ys.size:
            corrected.data_setitem((np.full(ys.size, i), ys, xs), proposal[ys, xs])
        self._on_reviewed([i])

    @reports_errors
    def next_unreviewed(self) -> int | None:
        """Move to the next frame nobody has reviewed yet."""
        session, layers = self._require_session()
        index = session.next_unreviewed(after=layers.current_frame())
        if index is None:
            show_info("Every frame is reviewed.")
            return None
        self.viewer.dims.set_current_step(0, index)
        return index

    def pick_class(self, name: str) -> None:
        """Set the paint label of "corrected" by class name."""
        self._review.pick_class(name)

    @reports_errors
    def export(self, out_dir: str | None = None, overwrite: bool = False) -> None:
        """Export the reviewed frames of "corrected" in a worker (asks before overwriting)."""
        session, _ = self._require_session()
        out = out_dir or self._export.out_dir()
        if not out:
            raise ValueError("Choose an export folder first.")
        self._export.set_out_dir(out)
        frames = self._export_frames(session)
        worker = create_worker(try_export, session, out, frames, overwrite)
        worker.returned.connect(functools.partial(self._on_export_returned, out))
        worker.finished.connect(functools.partial(self._on_export_finished, worker))
        self._export_worker = worker
        self._export._export_button.setEnabled(False)
        worker.start()

    # -- sessions --------------------------------------------------------------------------
    def _open_session(self, image: Image, frames: LazyArray, spec: ModelSpec) -> Session:
        schema = get_schema(spec.schema)
        folder = session_folder(image, self._data.session_dir())
        shape = (len(frames), *frames.shape[1:3])
        if self._session is not None and self._session.folder == folder:
            session = self._session
        elif (folder / SESSION_FILE).is_file():
            session = Session.open(folder)
        else:
            session = Session.create(
                folder,
                source=source_of_layer(image),
                shape=shape,
                schema=schema,
                steps=spec.steps,
            )
        session.check_compatible(shape, schema)
        replaced = session.set_model(
            steps=spec.steps,
            checkpoint=spec.checkpoint,
            checkpoint_hash=checkpoint_hash(spec.checkpoint),
            model=None if spec.checkpoint else spec.arch,
        )
        if (
            replaced
            or self._layers is None
            or self._layers.session is not session
            or (not self._layers.is_current())
        ):
            self._attach(session, image)
        return session

    def _attach(self, session: Session, image: Image | None) -> None:
        if self._layers is not None:
            self._layers.disconnect()
        scale = tuple(image.scale[:3]) if image is not None and image.ndim == 3 else None
        self._session = session
        self._layers = SessionLayers(self.viewer, session, self._on_reviewed, scale=scale)
        self._layers.corrected.events.selected_label.connect(self._on_selected_label)
        self._review.set_schema(session.schema, session.steps)
        self._on_selected_label()
        self._update_count()
        self._loop.refresh()

    def _offer_restore(self, image: Image | None) -> None:
        folder = restorable_folder(image, self._data.session_dir())
        if folder is None or str(folder) in self._offered:
            return
        if self._session is not None and self._session.folder == folder:
            return
        self._offered.add(str(folder))
        n = len(Session.open(folder).reviewed)
        notification_manager.dispatch(
            Notification(
                f"{image.name} has a saved CLIP-RL session with {n} reviewed frames.",
                severity=NotificationSeverity.INFO,
                actions=[("Restore", lambda *_: self.restore_session(folder))],
            )
        )

    # -- callbacks -------------------------------------------------------------------------
    def _on_layer_inserted(self, event: Any) -> None:
        if isinstance(event.value, Image):
            try:
                self._offer_restore(event.value)
            except Exception:  # noqa: BLE001 - a broken old session must not block opening
                return

    @reports_errors
    def _on_frame_done(self, item: FrameDone) -> None:
        if self._session is None or self._layers is None:
            return
        self._run_done = item.done
        self._loop.on_frame_done(item)
        self._session.init_corrected(item.index)
        self._layers.refresh(item.index)
        self._run.set_progress(
            item.done, item.total, f"Frame {item.index}: {item.done} / {item.total}"
        )

    def _on_run_returned(self, message: str | None) -> None:
        self._run_error = message
        if message:
            show_error(message)

    def _on_run_finished(self) -> None:
        worker, self._worker = self._worker, None
        self._run.set_running(False)
        if self._layers is not None:
            self._layers.refresh()
        if self._run_error:
            self._run.set_status(self._run_error)
        elif worker is not None and worker.abort_requested:
            self._run.set_status(f"Cancelled after {self._run_done} frames.")
        else:
            self._run.set_status(f"Done: {self._run_done} frames predicted.")
        self._loop.on_run_finished()

    def _on_reviewed(self, frames: list[int]) -> None:
        if self._session is not None:
            self._session.mark_reviewed(frames)
            self._update_count()
            self._loop.refresh()

    def _on_selected_label(self, event: Any = None) -> None:
        if self._layers is not None:
            self._review.show_class(self._layers.corrected.selected_label)

    def _set_paint_label(self, class_id: int) -> None:
        if self._layers is None:
            return
        corrected = self._layers.corrected
        corrected.selected_label = class_id
        self.viewer.layers.selection.active = corrected

    def _on_export_returned(self, out: str, result: tuple[list[Path], str | None, bool]) -> None:
        written, message, exists = result
        if exists:
            if self._export._confirm_overwrite(str(message)):
                self.export(out, overwrite=True)
            else:
                show_info("Export cancelled: no file was overwritten.")
            return
        if message:
            show_error(message)
            return
        self._last_export = written
        n = len(self._session.reviewed) if self._session else 0
        show_info(f"Exported {n} reviewed frames to {out}.")

    def _on_export_finished(self, worker: Any) -> None:
        if self._export_worker is worker:
            self._export_worker = None
            self._export._export_button.setEnabled(True)

    # -- helpers ---------------------------------------------------------------------------
    def _require_image(self) -> Image:
        image = self._data.image_layer()
        if image is None:
            raise ValueError("Open a video or pick an image layer first.")
        return image

    def _require_session(self) -> tuple[Session, SessionLayers]:
        if self._session is None or self._layers is None:
            raise ValueError("Run the model or restore a session first.")
        return self._session, self._layers

    def _current_frame(self) -> int:
        step = self.viewer.dims.current_step
        return int(step[0]) if len(step) >= 3 else 0

    def _export_frames(self, session: Session) -> LazyArray | None:
        image = self._data.image_layer()
        if not self._export.with_frames() or image is None:
            return None
        frames = as_frames(image.data, image.rgb)
        return frames if len(frames) == session.shape[0] else None

    def _update_count(self) -> None:
        if self._session is not None:
            self._review.set_count(len(self._session.reviewed), self._session.shape[0])
