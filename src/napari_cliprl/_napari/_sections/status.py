"""The one-line status and progress bar that several sections show."""

from __future__ import annotations

from qtpy.QtWidgets import QLabel, QProgressBar


class StatusMixin:
    """``set_status``/``status`` over the section's ``_status`` QLabel."""

    _status: QLabel

    def set_status(self, message: str) -> None:
        self._status.setText(message)

    def status(self) -> str:
        return self._status.text()


class ProgressMixin(StatusMixin):
    """``set_progress`` over the section's ``_progress`` bar and ``_status`` label."""

    _progress: QProgressBar
    _min_total = 1  # 0: a total of 0 shows Qt's busy bar (work of unknown length)

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        self._progress.setRange(0, max(total, self._min_total))
        self._progress.setValue(done)
        if message:
            self._status.setText(message)
