"""The "CLIP-RL annotator" dock: small sections (``_sections``) wired to one controller
(:class:`~._controller.AnnotatorController`), which owns the session, its layers and the
workers. Every control acts through a signal of its section; nothing here computes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QGroupBox, QScrollArea, QVBoxLayout, QWidget

from ._controller import AnnotatorController
from ._guard import disconnect_all, reports_errors
from ._jobs import warm_up
from ._sections.data import DataSection
from ._sections.evaluate import EvaluateSection
from ._sections.export import ExportSection
from ._sections.finetune import FinetuneSection
from ._sections.model import ModelSection
from ._sections.review import ReviewSection
from ._sections.run import RunSection
from ._sections.suggest import SuggestSection

MIN_WIDTH = 340


@dataclass(frozen=True)
class Sections:
    """The dock's sections, top to bottom."""

    data: DataSection
    model: ModelSection
    run: RunSection
    review: ReviewSection
    suggest: SuggestSection
    export: ExportSection
    finetune: FinetuneSection
    evaluate: EvaluateSection

    def all(self) -> list[QGroupBox]:
        return [getattr(self, f.name) for f in fields(self)]


class AnnotatorWidget(QWidget):
    """Run CLIP-RL on a video, review its refinement steps, correct, export and fine-tune."""

    def __init__(self, napari_viewer: Any, predictors: Any = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.controller = AnnotatorController(napari_viewer, predictors)
        self.sections = Sections(
            DataSection(napari_viewer),
            ModelSection(),
            RunSection(),
            ReviewSection(),
            SuggestSection(),
            ExportSection(),
            FinetuneSection(),
            EvaluateSection(),
        )
        self._build_layout()
        self._connect_sections()
        self._connect_controller()
        self._connect_viewer()
        self._warmed = False
        self._check_saved_session()
        self._refresh_truth_layers()

    def _build_layout(self) -> None:
        inner = QWidget()
        column = QVBoxLayout(inner)
        for section in self.sections.all():
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

    def _connect_sections(self) -> None:
        s = self.sections
        s.data.image_changed.connect(self._check_saved_session)
        s.data.session_dir_changed.connect(self._check_saved_session)
        s.data.restore_requested.connect(self._restore)
        s.model.changed.connect(self._update_command)
        s.model.architectures_wanted.connect(self._warm_up)
        s.run.run_requested.connect(self._run)
        s.run.cancel_requested.connect(self.controller.cancel)
        s.review.next_requested.connect(self._next_unreviewed)
        s.review.accept_requested.connect(self._accept_step)
        s.review.unreview_requested.connect(self._unreview)
        s.review.class_picked.connect(self.controller.set_paint_label)
        s.suggest.next_requested.connect(self._next_suggested)
        s.suggest.changed.connect(self._show_suggestions)
        s.export.export_requested.connect(self._export)
        s.finetune.start_requested.connect(self._start_finetune)
        s.finetune.cancel_requested.connect(self.controller.training.cancel)
        s.finetune.load_requested.connect(s.model.browse_checkpoint)
        s.finetune.rerun_requested.connect(self._rerun_unreviewed)
        s.finetune.command_requested.connect(self._copy_command)
        s.finetune.options_changed.connect(self._update_command)
        s.evaluate.evaluate_requested.connect(self._evaluate)

    def _connect_controller(self) -> None:
        c, s = self.controller, self.sections
        c.session_changed.connect(self._on_session_changed)
        c.layers_ready.connect(self._on_layers_ready)
        c.reviewed_changed.connect(self._on_reviewed_changed)
        c.predictions_changed.connect(self._show_suggestions)
        c.run_started.connect(self._on_run_started)
        c.run_progress.connect(s.run.set_progress)
        c.run_finished.connect(self._on_run_finished)
        c.model_loaded.connect(s.model.set_status)
        c.saved.offered.connect(s.data.show_restore_offer)
        c.saved.restoring.connect(s.data.set_restoring)
        c.session_restored.connect(self._on_session_restored)
        c.paint_label_changed.connect(s.review.show_class)
        c.failed.connect(self.report)
        c.reproposer.status.connect(s.run.set_status)
        c.reproposer.started.connect(self._on_reproposal_changed)
        c.reproposer.finished.connect(self._on_reproposal_changed)
        c.reproposer.configure(s.run.propagate, lambda: (s.model.spec(), s.data.image_layer()))
        self.destroyed.connect(lambda *_: c.reproposer.detach())  # it may outlive the dock
        t = c.tasks
        t.export_busy.connect(s.export.set_busy)
        t.export_exists.connect(self._on_export_exists)
        t.exported.connect(self._on_exported)
        t.evaluation_busy.connect(s.evaluate.set_busy)
        t.evaluated.connect(s.evaluate.show_table)
        t.failed.connect(self.report)
        f = c.training
        f.progress.connect(s.finetune.set_progress)
        f.curves_changed.connect(s.finetune.set_curves)
        f.finished.connect(self._on_finetune_finished)
        f.command_changed.connect(s.finetune.set_command)
        f.data_exported.connect(self._on_command_data_ready)
        f.failed.connect(self.report)

    def _connect_viewer(self) -> None:
        events = self.viewer.layers.events
        links = [
            (events.inserted, self.sections.data.refresh_layers),
            (events.removed, self.sections.data.refresh_layers),
            (events.inserted, self._refresh_truth_layers),
            (events.removed, self._refresh_truth_layers),
        ]
        for emitter, callback in links:
            emitter.connect(callback)
        # when the dock is deleted, the viewer must stop calling into its Qt objects
        self.destroyed.connect(functools.partial(disconnect_all, links))

    def _warm_up(self) -> None:
        """Once the user asks for an architecture: import the model code in a worker (the
        main thread never imports torch), then offer the architectures it knows."""
        if self._warmed:
            return
        self._warmed = True
        worker = create_worker(warm_up)
        worker.returned.connect(self.sections.model.set_architectures)
        worker.errored.connect(lambda *_: None)  # a missing extra is reported when used
        worker.start()

    def report(self, message: str, where: str = "run") -> None:
        """Show a failure: an error notification, and the status line of section ``where``."""
        show_error(message)
        section = getattr(self.sections, where, self.sections.run)
        if hasattr(section, "set_status"):
            section.set_status(message)

    # -- clicks --------------------------------------------------------------------------
    @reports_errors("run")
    def _run(self) -> None:
        s = self.sections
        self.controller.run(
            s.model.spec(),
            s.data.image_layer(),
            s.data.frame_indices(self.controller.current_frame()),
            propagate=s.run.propagate(),
            session_dir=s.data.session_dir(),
        )

    @reports_errors("finetune")
    def _rerun_unreviewed(self) -> None:
        s = self.sections
        self.controller.rerun_unreviewed(s.model.spec(), s.data.image_layer(), s.run.propagate())

    @reports_errors("data")
    def _restore(self) -> None:
        self.controller.restore(self.sections.data.image_layer(), self.sections.data.session_dir())

    @reports_errors("review")
    def _accept_step(self, step: int) -> None:
        self.controller.accept_step(step)

    @reports_errors("review")
    def _unreview(self) -> None:
        if not self.controller.unreview():
            show_info(f"Frame {self.controller.current_frame()} was not marked reviewed.")

    @reports_errors("review")
    def _next_unreviewed(self) -> None:
        if self.controller.next_unreviewed() is None:
            show_info("Every frame is reviewed.")

    @reports_errors("suggest")
    def _next_suggested(self) -> None:
        if self.controller.next_suggested(self.sections.suggest.distance_weight()) is None:
            show_info("No unreviewed predicted frame left to suggest.")
        self._show_suggestions()

    @reports_errors("export")
    def _export(self, overwrite: bool = False) -> None:
        s = self.sections
        session = self.controller.require_session()
        frames = self.controller.session_frames(s.data.image_layer())
        frames = frames if s.export.with_frames() else None
        self.controller.tasks.export(session, s.export.out_dir(), frames, overwrite)

    @reports_errors("finetune")
    def _start_finetune(self) -> None:
        s, c = self.sections, self.controller
        frames = c.session_frames(s.data.image_layer())
        c.training.start(c.require_session(), frames, s.model.spec(), s.finetune.budget())
        s.finetune.set_running(True)

    @reports_errors("finetune")
    def _copy_command(self) -> None:
        s, c = self.sections, self.controller
        frames = c.session_frames(s.data.image_layer())
        session, spec, budget = c.require_session(), s.model.spec(), s.finetune.budget()
        c.training.prepare_command(session, frames, spec, budget)

    @reports_errors("evaluate")
    def _evaluate(self) -> None:
        session = self.controller.require_session()
        self.controller.tasks.evaluate(session, self.sections.evaluate.truth_layer())

    # -- what the controller reports -----------------------------------------------------
    def _on_session_changed(self, session: Any) -> None:
        self.sections.review.set_schema(session.schema, session.steps)
        self._update_command()
        self._refresh_truth_layers()

    def _on_session_restored(self, session: Any) -> None:
        model = self.sections.model
        if session.info.checkpoint:
            model.set_checkpoint(session.info.checkpoint)
        elif session.info.model:
            model.set_architecture(session.info.model)
        model.set_schema(session.schema.name)
        model.set_steps(session.steps)
        show_info(f"Restored the session: {session.folder.name}.")

    def _on_layers_ready(self) -> None:
        session = self.controller.session
        if session is not None:
            self.sections.review.set_steps(session.steps)
        self._show_suggestions()

    def _on_reviewed_changed(self, reviewed: int, total: int) -> None:
        self.sections.review.set_count(reviewed, total)
        self._show_suggestions()

    def _on_run_started(self, frames: int) -> None:
        self.sections.run.set_running(True)
        self.sections.finetune.set_rerun_enabled(False)

    def _on_reproposal_changed(self) -> None:
        """Cancel stops a re-proposal too; Run stays available (it waits for one)."""
        c = self.controller
        self.sections.run.set_cancellable(c.is_running or c.reproposer.active)

    def _on_run_finished(self, status: str) -> None:
        self.sections.run.set_running(False)
        self.sections.run.set_status(status)
        self._show_suggestions()

    def _on_export_exists(self, message: str, out: str) -> None:
        if self.sections.export.confirm_overwrite(message):
            self._export(overwrite=True)
        else:
            self.sections.export.set_status("Export cancelled: no file was overwritten.")
            show_info("Export cancelled: no file was overwritten.")

    def _on_exported(self, message: str) -> None:
        self.sections.export.set_status(message)
        show_info(message)

    def _on_finetune_finished(self, status: str, checkpoint: str) -> None:
        s = self.sections
        s.finetune.set_running(False)
        s.finetune.set_status(status)
        if checkpoint:
            s.model.set_checkpoint(checkpoint)
            s.finetune.set_rerun_enabled(True)
            show_info(status)
        self._update_command()

    def _on_command_data_ready(self, data_dir: str) -> None:
        self.sections.finetune.copy_command()
        show_info(
            f"Training data exported to {data_dir}; the command is on the clipboard. "
            "Load the checkpoint it writes with 'Load checkpoint…'."
        )

    # -- derived views -------------------------------------------------------------------
    def _show_suggestions(self, *_: Any) -> None:
        if self.controller.session is not None:
            weight = self.sections.suggest.distance_weight()
            self.sections.suggest.show_ranking(self.controller.suggestions(weight))

    def _update_command(self, *_: Any) -> None:
        if not self.controller.training.is_running:
            s = self.sections
            self.controller.training.update_command(
                self.controller.session, s.model.spec(), s.finetune.budget()
            )

    def _refresh_truth_layers(self, *_: Any) -> None:
        self.sections.evaluate.set_truth_layers(self.controller.tasks.truth_layers())

    def _check_saved_session(self, *_: Any) -> None:
        data = self.sections.data
        self.controller.check_saved_session(data.image_layer(), data.session_dir())

    # -- for scripts and tests: what the dock is doing -----------------------------------
    @property
    def busy(self) -> bool:
        """True while a run, re-proposal, restore, export, evaluation or fine-tune is
        working, or the session's layers are still being added."""
        c, s = self.controller, self.sections
        return (
            s.finetune.plot().busy
            or s.evaluate.chart().busy
            or c.is_running
            or c.reproposer.active
            or c.is_restoring
            or c.layers_pending
            or c.tasks.is_exporting
            or c.tasks.is_evaluating
            or c.training.is_running
        )
