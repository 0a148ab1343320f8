"""Export and evaluation of a session, each in a worker (part of the annotator's controller)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Labels
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

from napari_cliprl.errors import describe_error

from ._guard import plural
from ._jobs import evaluate_job, export_job
from ._session_layers import is_session_layer_name

if TYPE_CHECKING:  # the session (zarr) loads with the first run, not with the dock
    from napari_cliprl.annotation.session import Session


class SessionTasks(QObject):
    """Exports the reviewed frames and evaluates the proposals against ground truth."""

    export_busy = Signal(bool)
    export_exists = Signal(str, str)  # message naming the existing file, the folder
    exported = Signal(str)  # one sentence: what was written where
    evaluation_busy = Signal(bool)
    evaluated = Signal(object)  # EvaluationTable
    failed = Signal(str, str)  # message, where ("export" or "evaluate")

    def __init__(self, viewer: Any) -> None:
        super().__init__()
        self.viewer = viewer
        self._workers: dict[str, Any] = {}
        self.last_export: list[Path] = []

    @property
    def is_exporting(self) -> bool:
        return "export" in self._workers

    @property
    def is_evaluating(self) -> bool:
        return "evaluate" in self._workers

    # -- export --------------------------------------------------------------------------
    def export(
        self, session: Session, out: str | None, frames: Any = None, overwrite: bool = False
    ) -> None:
        """Write the reviewed frames of "corrected" to ``out``; ``export_exists`` asks before
        anything is replaced (answer by calling again with ``overwrite=True``)."""
        if self.is_exporting:
            raise RuntimeError("An export is in progress; wait for it to finish.")
        if not out:
            raise ValueError("Choose an export folder first.")
        if not session.reviewed:
            raise ValueError("No reviewed frames yet: correct or accept some frames first.")
        worker = create_worker(export_job, session, out, frames, overwrite)
        n = len(session.reviewed)
        worker.returned.connect(functools.partial(self._on_exported, out, n))
        worker.finished.connect(functools.partial(self._end, "export", worker))
        self._workers["export"] = worker
        self.export_busy.emit(True)
        worker.start()

    def _on_exported(self, out: str, n: int, result: tuple[list[Path], str | None, bool]) -> None:
        written, message, exists = result
        if exists:
            self.export_exists.emit(str(message), out)
        elif message:
            self.failed.emit(message, "export")
        else:
            self.last_export = written
            self.exported.emit(f"Exported {plural(n, 'reviewed frame')} to {out}.")

    # -- evaluation ----------------------------------------------------------------------
    def truth_layers(self) -> list[str]:
        """Labels layers that can serve as ground truth (not the annotator's own)."""
        return [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and not is_session_layer_name(layer.name)
        ]

    def evaluate(self, session: Session, truth: str | None) -> None:
        """Evaluate zero-shot and every step against the Labels layer named ``truth``."""
        if self.is_evaluating:
            raise RuntimeError("An evaluation is in progress; wait for it to finish.")
        if not truth or truth not in self.viewer.layers:
            raise ValueError("Add a ground-truth Labels layer first (EndoVis reader, sample).")
        worker = create_worker(evaluate_job, session, self.viewer.layers[truth].data)
        worker.returned.connect(self._on_evaluated)
        worker.errored.connect(lambda e: self.failed.emit(describe_error(e), "evaluate"))
        worker.finished.connect(functools.partial(self._end, "evaluate", worker))
        self._workers["evaluate"] = worker
        self.evaluation_busy.emit(True)
        worker.start()

    def _on_evaluated(self, table: Any) -> None:
        self.evaluated.emit(table)

    def _end(self, name: str, worker: Any) -> None:
        if self._workers.get(name) is worker:
            del self._workers[name]
            busy = self.export_busy if name == "export" else self.evaluation_busy
            busy.emit(False)
