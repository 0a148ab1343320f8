"""Run section: Run and Cancel buttons, a progress bar and a one-line status."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .status import ProgressMixin


class RunSection(ProgressMixin, QGroupBox):
    """Buttons and progress of a model run."""

    run_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Run", parent)
        self._run_button = QPushButton("Run")
        self._run_button.setToolTip("Predict the chosen frames; results appear frame by frame")
        self._cancel_button = QPushButton("Cancel")
        self._cancel_button.setToolTip(
            "Stop after the frame being predicted (a Run, or the re-proposal after a review)"
        )
        self._cancel_button.setEnabled(False)
        self._propagate = QCheckBox("Propagate corrections (optical flow)")
        self._propagate.setToolTip(
            "Reviewed frames are carried to the others by optical flow and fused by the "
            "model: a Run predicts from them, and reviewing a frame re-proposes its "
            "unreviewed neighbours at once (in the background)"
        )
        self._propagate.setChecked(True)
        self._progress = QProgressBar()
        self._progress.setRange(0, 1)
        self._progress.setValue(0)
        self._progress.setFormat("%v / %m frames")
        self._status = QLabel("")
        self._status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self._run_button)
        buttons.addWidget(self._cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self._propagate)
        layout.addLayout(buttons)
        layout.addWidget(self._progress)
        layout.addWidget(self._status)
        # ``clicked`` passes ``checked``: the signals carry nothing
        self._run_button.clicked.connect(lambda _checked=False: self.run_requested.emit())
        self._cancel_button.clicked.connect(lambda _checked=False: self.cancel_requested.emit())

    @property
    def run_button(self) -> QPushButton:
        return self._run_button

    @property
    def cancel_button(self) -> QPushButton:
        return self._cancel_button

    @property
    def propagate_box(self) -> QCheckBox:
        return self._propagate

    def propagate(self) -> bool:
        return self._propagate.isChecked()

    def set_propagate(self, propagate: bool) -> None:
        self._propagate.setChecked(propagate)

    def progress(self) -> tuple[int, int]:
        """(frames done, frames to do) as the bar shows them."""
        return self._progress.value(), self._progress.maximum()

    def set_running(self, running: bool) -> None:
        self._run_button.setEnabled(not running)
        self._cancel_button.setEnabled(running)

    def set_cancellable(self, cancellable: bool) -> None:
        """Cancel alone (a re-proposal after a review works; Run stays available)."""
        self._cancel_button.setEnabled(cancellable)
