"""Fine-tuning from the dock: the worker, its measured time estimate, its curves and the
equivalent command line (part of the annotator's controller; the core API is reached only
through :mod:`._finetune_adapter`)."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_warning
from qtpy.QtCore import QObject, QTimer, Signal

from napari_cliprl.annotation.export import export_session
from napari_cliprl.annotation.models import ModelSpec
from napari_cliprl.errors import describe_error

from . import _finetune_adapter as adapter
from ._guard import plural
from ._training_progress import TrainingClock, format_seconds, training_curves

if TYPE_CHECKING:  # the session (zarr) loads with the first run, not with the dock
    from napari_cliprl.annotation.session import Session

PLOT_MS = 500  # the loss plot is redrawn at most this often (a draw costs the main thread)


class FinetuneController(QObject):
    """Runs one fine-tune at a time on a session's reviewed frames."""

    progress = Signal(int, int, str)  # done, total (0: not known yet), message
    curves_changed = Signal(object)  # _training_progress.Curves
    finished = Signal(str, str)  # status sentence, the new checkpoint ("" when none)
    command_changed = Signal(str)
    data_exported = Signal(str)  # the training data of the command line is ready there
    failed = Signal(str, str)  # message, where

    def __init__(self) -> None:
        super().__init__()
        self._worker: Any = None
        self._stop = threading.Event()
        self._clock: TrainingClock | None = None
        self._history: list[dict[str, Any]] = []
        self._setup: dict[str, Any] = {}
        self._outcome: Any = None
        self._warned = False
        self._epoch: dict[str, Any] = {}  # the last epoch's report (frames, seconds)
        self._plot_dirty = False
        self._plot_timer = QTimer()
        self._plot_timer.setInterval(PLOT_MS)
        self._plot_timer.timeout.connect(self._show_curves)
        self.first_estimate: float | None = None  # total seconds, as first shown
        self.duration: float | None = None  # seconds the last fine-tune took

    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def start(self, session: Session, frames: Any, spec: ModelSpec, budget: adapter.Budget) -> None:
        """Fine-tune the model of ``spec`` on the reviewed frames of ``session``."""
        if self.is_running:
            raise RuntimeError("A fine-tune is in progress; cancel it or wait for it.")
        if not session.reviewed:
            raise ValueError("No reviewed frames yet: correct or accept some frames first.")
        if frames is None:
            raise ValueError("Pick the image layer of this session: training needs its frames.")
        options = adapter.options_of(budget)
        self._stop = threading.Event()
        self._clock = TrainingClock(**adapter.work_units(options), start=time.perf_counter())
        self._history, self._setup, self._outcome = [], {}, None
        self._warned, self.first_estimate, self.duration = False, None, None
        worker = create_worker(adapter.job, session, frames, spec, options, self._stop)
        worker.yielded.connect(self._on_item)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(functools.partial(self._on_finished, worker))
        self._worker = worker
        n = plural(len(session.reviewed), "reviewed frame")
        self.progress.emit(0, 0, f"Preparing a fine-tune on {n}…")
        self.curves_changed.emit(None)  # clears a previous fine-tune's curves
        self._plot_timer.start()
        worker.start()

    def cancel(self) -> None:
        """Stop at the next batch; the current model stays in place."""
        if self._worker is not None:
            self._stop.set()
            self.progress.emit(0, 0, "Cancelling…")

    # -- worker events -------------------------------------------------------------------
    def _on_item(self, item: tuple[str, Any]) -> None:
        kind, value = item
        if kind == "setup":
            self._setup = dict(value)
            if self._clock is not None:
                self._clock.train_frames = max(value["frames"] - value["val_frames"], 1)
            where = "the CPU" if value["device"] == "cpu" else value["device"]
            n = plural(value["frames"], "frame")
            self.progress.emit(0, 0, f"Fine-tuning on {where} ({n}); timing the first epochs…")
        elif kind == "metrics":
            self._history.append(value)
            if value.get("phase") == "supervised":
                self._epoch = value
            self._plot_dirty = True  # drawn by the plot timer, at most every PLOT_MS
        elif kind == "progress":
            self._on_progress(*value)

    def _show_curves(self) -> None:
        if self._plot_dirty:
            self._plot_dirty = False
            epochs = self._clock.epochs if self._clock else 0
            val_frames = self._setup.get("val_frames")
            self.curves_changed.emit(training_curves(self._history, epochs, val_frames))

    def _on_progress(self, done: int, total: int, message: str) -> None:
        now = time.perf_counter()
        clock = self._clock
        if clock is None or total <= 0:
            self.progress.emit(done, total, message)
            return
        clock.unit_done(done, now, self._epoch.get("frames"), self._epoch.get("seconds"))
        self._epoch = {}
        left = clock.seconds_left(now)
        if left is not None and self.first_estimate is None:
            self.first_estimate = clock.seconds_total(now)
            self._warn_cpu()
        estimate = f" · {format_seconds(left)} left" if left is not None else ""
        self.progress.emit(done, total, f"{message}{estimate}")

    def _warn_cpu(self) -> None:
        if self._setup.get("device") != "cpu" or self._warned or self.first_estimate is None:
            return
        self._warned = True
        n = plural(self._setup.get("frames", 0), "frame")
        show_warning(
            f"Fine-tuning on the CPU ({n}): {format_seconds(self.first_estimate)} in all, "
            "measured on this machine. A GPU (device cuda) is much faster."
        )

    def _on_returned(self, outcome: Any) -> None:
        self._outcome = outcome

    def _on_finished(self, worker: Any) -> None:
        if self._worker is not worker:
            return
        self._worker = None
        self._plot_timer.stop()
        self._show_curves()
        if self._clock is not None:
            self.duration = time.perf_counter() - self._clock.start
        outcome = self._outcome or adapter.Outcome(error="The fine-tune ended unexpectedly.")
        if outcome.error:
            self.failed.emit(outcome.error, "finetune")
            self.finished.emit(outcome.error, "")
        elif outcome.stopped or outcome.checkpoint is None:
            self.finished.emit(
                "Fine-tune cancelled: no new model was saved; the previous model stays.", ""
            )
        else:
            took = format_seconds(self.duration or 0.0).replace("about ", "")
            text = (
                f"New model {Path(outcome.checkpoint).name} selected (T* = {outcome.tstar}), "
                f"trained in {took}. Re-run the unreviewed frames to use it."
            )
            self.finished.emit(text, str(outcome.checkpoint))

    # -- the command line ----------------------------------------------------------------
    def update_command(self, session: Session | None, spec: ModelSpec, budget: Any) -> None:
        """Show the command line of the options as they are now."""
        if session is None:
            self.command_changed.emit("")
            return
        try:
            line = adapter.command_line(session, spec, adapter.options_of(budget))
        except (OSError, ValueError) as e:
            line = f"# {describe_error(e)}"
        self.command_changed.emit(line)

    def prepare_command(
        self, session: Session, frames: Any, spec: ModelSpec, budget: adapter.Budget
    ) -> None:
        """Export the reviewed frames where the command line expects them (in a worker),
        then ``data_exported`` (the dock puts the command on the clipboard)."""
        if not session.reviewed:
            raise ValueError("No reviewed frames yet: correct or accept some frames first.")
        if frames is None:
            raise ValueError("Pick the image layer of this session: training needs its frames.")
        self.update_command(session, spec, budget)
        data_dir = adapter.next_data_folder(session)
        worker = create_worker(export_session, session, data_dir, frames, overwrite=True)
        worker.returned.connect(lambda *_: self.data_exported.emit(str(data_dir)))
        worker.errored.connect(lambda e: self.failed.emit(describe_error(e), "finetune"))
        worker.start()
