"""Closing the loop in the annotator: fine-tune, frame suggestions and evaluation.

:class:`LoopControls` owns the three sections and their workers; the widget composes it and
delegates to it. The work itself is in the core (:mod:`napari_cliprl.annotation`).
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from napari_cliprl.annotation.evaluate import EvaluationTable, evaluate_session
from napari_cliprl.annotation.export import export_session
from napari_cliprl.annotation.finetune_job import (
    FinetuneOutcome,
    estimate_seconds,
    finetune_command,
    finetune_job,
    format_duration,
    job_config,
    loss_curves,
    next_run_dirs,
)
from napari_cliprl.annotation.models import spec_architecture
from napari_cliprl.annotation.run import FrameDone
from napari_cliprl.annotation.session import Session
from napari_cliprl.annotation.suggest import suggest_frames
from napari_cliprl.devices import resolve_device
from napari_cliprl.errors import describe_error
from napari_cliprl.io.lazy import as_frames

from ._guard import disconnect_all, reports_errors
from ._sections.evaluate import EvaluateSection
from ._sections.finetune import FinetuneSection
from ._sections.suggest import SuggestSection

if TYPE_CHECKING:
    from ._widget import AnnotatorWidget


class LoopControls:
    """Fine-tune on reviewed frames, suggest frames to review, evaluate against ground truth."""

    def __init__(self, widget: AnnotatorWidget) -> None:
        self._widget = widget
        self.finetune = FinetuneSection()
        self.suggest = SuggestSection()
        self.evaluate = EvaluateSection()
        self.sections = (self.suggest, self.finetune, self.evaluate)
        self._ft_worker: Any = None
        self._ft_stop = threading.Event()
        self._ft_outcome: FinetuneOutcome | None = None
        self._history: list[dict[str, Any]] = []
        self._eval_worker: Any = None
        self._seconds: list[float] = []  # recent per-frame inference times (estimates)
        self._priors = 0  # frames of the current run predicted with a propagated prior
        self.finetune.start_requested.connect(self.start_finetune)
        self.finetune.cancel_requested.connect(self.cancel_finetune)
        self.finetune.load_requested.connect(widget._model._browse_checkpoint)
        self.finetune.rerun_requested.connect(self.rerun_unreviewed)
        self.finetune.command_requested.connect(self.prepare_command)
        self.suggest.next_requested.connect(self.next_suggested)
        self.suggest.changed.connect(self.refresh)
        self.evaluate.evaluate_requested.connect(self.run_evaluation)
        events = widget.viewer.layers.events
        links = [(events.inserted, self.refresh), (events.removed, self.refresh)]
        for emitter, callback in links:
            emitter.connect(callback)
        widget.destroyed.connect(functools.partial(disconnect_all, links))

    def _report(self, message: str) -> None:
        show_error(message)

    @property
    def is_finetuning(self) -> bool:
        return self._ft_worker is not None

    @property
    def is_evaluating(self) -> bool:
        return self._eval_worker is not None

    # -- state from the widget --------------------------------------------------------------
    def on_frame_done(self, item: FrameDone) -> None:
        if item.seconds > 0:
            self._seconds = [*self._seconds[-19:], item.seconds]

    def on_run_finished(self) -> None:
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Update the suggestion ranking, the ground-truth choices and the command line."""
        session = self._widget.session
        if session is not None:
            self.suggest.show_ranking(suggest_frames(session, self.suggest.distance_weight()))
        skip = set(session.layer_names) if session is not None else set()
        names = [
            layer.name
            for layer in self._widget.viewer.layers
            if isinstance(layer, Labels) and layer.name not in skip
        ]
        self.evaluate.set_truth_layers(names)
        if session is not None and not self.is_finetuning:
            self._show_command(session)

    # -- suggestions ----------------------------------------------------------------------
    @reports_errors
    def next_suggested(self) -> int | None:
        """Jump to the unreviewed frame the model is least sure about."""
        session, _ = self._widget._require_session()
        ranking = suggest_frames(session, self.suggest.distance_weight())
        self.suggest.show_ranking(ranking)
        if not ranking:
            show_info("No unreviewed predicted frame left to suggest.")
            return None
        self._widget.viewer.dims.set_current_step(0, ranking[0])
        return ranking[0]

    # -- fine-tune --------------------------------------------------------------------------
    @reports_errors
    def start_finetune(self) -> None:
        """Fine-tune the current model on this session's reviewed frames in a worker."""
        if self._ft_worker is not None:
            raise RuntimeError("A fine-tune is in progress; cancel it or wait for it.")
        session, frames = self._training_input()
        spec, options = self._widget._model.spec(), self.finetune.options()
        device = resolve_device(options.device)
        message = f"Fine-tuning on {len(session.reviewed)} reviewed frames on {device}…"
        if device.type == "cpu":
            message = self._cpu_warning(session, options)
        self._ft_stop = threading.Event()
        self._ft_outcome, self._history = None, []
        worker = create_worker(finetune_job, session, frames, spec, options, self._ft_stop)
        worker.yielded.connect(self._on_ft_yielded)
        worker.returned.connect(self._on_ft_returned)
        worker.finished.connect(functools.partial(self._on_ft_finished, worker))
        self._ft_worker = worker
        self.finetune.set_running(True)
        self.finetune.set_rerun_enabled(False)
        self.finetune.set_progress(0, 0, message)
        worker.start()

    def cancel_finetune(self) -> None:
        """Stop the fine-tune at the next batch; the current model stays in place."""
        if self._ft_worker is not None:
            self._ft_stop.set()
            self.finetune.set_status("Cancelling…")

    def _cpu_warning(self, session: Session, options: Any) -> str:
        spec = self._widget._model.spec()
        seconds = sum(self._seconds) / len(self._seconds) if self._seconds else None
        n = len(session.reviewed) + _count_labelled(options.data)
        estimate = estimate_seconds(n, options, spec_architecture(spec), seconds)
        message = (
            f"Fine-tuning on the CPU ({n} frames): {format_duration(estimate)}. "
            "A GPU (device cuda) is much faster."
        )
        show_warning(message)
        return message

    def _training_input(self) -> tuple[Session, Any]:
        session, _ = self._widget._require_session()
        if not session.reviewed:
            raise ValueError("No reviewed frames yet: correct or accept some frames first.")
        image = self._widget._data.image_layer()
        frames = as_frames(image.data, image.rgb) if image is not None else None
        if frames is None or len(frames) != session.shape[0]:
            raise ValueError("Pick the image layer of this session: training needs its frames.")
        return session, frames

    def _on_ft_yielded(self, item: tuple[str, Any]) -> None:
        kind, value = item
        if kind == "progress":
            done, total, message = value
            self.finetune.set_progress(done, total, message or f"{done} / {total}")
        elif kind == "metrics":
            self._history.append(value)
            curves = loss_curves(self._history)
            self.finetune._plot.set_curves(curves)

    def _on_ft_returned(self, outcome: FinetuneOutcome) -> None:
        self._ft_outcome = outcome

    def _on_ft_finished(self, worker: Any) -> None:
        if self._ft_worker is not worker:
            return
        self._ft_worker = None
        self.finetune.set_running(False)
        outcome = self._ft_outcome or FinetuneOutcome(error="The fine-tune ended unexpectedly.")
        if outcome.error:
            show_error(outcome.error)
            self.finetune.set_status(outcome.error)
        elif outcome.stopped or outcome.checkpoint is None:
            self.finetune.set_status("Fine-tune cancelled: the previous model stays in place.")
        else:
            self._widget._model.set_checkpoint(str(outcome.checkpoint))
            self.finetune.set_rerun_enabled(True)
            text = f"New model {outcome.checkpoint.name} loaded (T* = {outcome.tstar})."
            self.finetune.set_status(f"{text} Re-run the unreviewed frames to use it.")
            show_info(text)
        self.refresh()

    @reports_errors
    def rerun_unreviewed(self) -> None:
        """Predict every frame not reviewed yet with the current model (reviewed frames keep
        their "corrected" labels)."""
        session, _ = self._widget._require_session()
        reviewed = set(session.reviewed)
        indices = [i for i in range(session.shape[0]) if i not in reviewed]
        if not indices:
            show_info("Every frame is reviewed: nothing to re-run.")
            return
        self._widget.run(indices=indices)

    # -- separate process -------------------------------------------------------------------
    def _show_command(self, session: Session) -> Any:
        data_dir, ckpt_dir = next_run_dirs(session.folder)
        config = job_config(self._widget._model.spec(), self.finetune.options(), data_dir, ckpt_dir)
        self.finetune.set_command(finetune_command(config))
        return data_dir

    @reports_errors
    def prepare_command(self) -> None:
        """Export the reviewed frames for the command line, then copy it to the clipboard."""
        session, frames = self._training_input()
        data_dir = self._show_command(session)
        worker = create_worker(export_session, session, data_dir, frames, overwrite=True)
        worker.returned.connect(lambda *_: self._on_command_ready(data_dir))
        worker.errored.connect(lambda e: show_error(describe_error(e)))
        worker.start()

    def _on_command_ready(self, data_dir: Path) -> None:
        self.finetune.copy_command()
        show_info(
            f"Training data exported to {data_dir}; the command is on the clipboard. "
            "Load the checkpoint it writes with 'Load checkpoint…'."
        )

    # -- evaluation -------------------------------------------------------------------------
    @reports_errors
    def run_evaluation(self) -> None:
        """Evaluate zero-shot and every step against the ground-truth layer, in a worker."""
        session, _ = self._widget._require_session()
        name = self.evaluate.truth_layer()
        if not name or name not in self._widget.viewer.layers:
            raise ValueError("Add a ground-truth Labels layer first (EndoVis reader, sample).")
        truth = self._widget.viewer.layers[name].data
        worker = create_worker(evaluate_session, session, truth)
        worker.returned.connect(self._on_eval_returned)
        worker.errored.connect(self._on_eval_errored)
        worker.finished.connect(functools.partial(self._on_eval_finished, worker))
        self._eval_worker = worker
        self.evaluate.set_busy(True)
        worker.start()

    def _on_eval_returned(self, table: EvaluationTable) -> None:
        self.evaluate.show_table(table)

    def _on_eval_errored(self, error: Exception) -> None:
        message = describe_error(error)
        show_error(message)
        self.evaluate.set_status(message)

    def _on_eval_finished(self, worker: Any) -> None:
        if self._eval_worker is worker:
            self._eval_worker = None
            self.evaluate.set_busy(False)


def _count_labelled(folders: list[str]) -> int:
    """Label files under extra training folders (for the time estimate)."""
    return sum(len(list(Path(f).rglob("labels/*.png"))) for f in folders)
