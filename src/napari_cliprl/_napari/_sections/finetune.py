"""Fine-tune section: budget, extra data, start/cancel, live curves, the equivalent command
line (kept up to date as the options change), loading a checkpoint and re-running the
unreviewed frames."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from napari_cliprl.devices import DEVICES

from .._finetune_adapter import Budget, default_budget
from .plots import LossPlot
from .status import ProgressMixin


class FinetuneSection(ProgressMixin, QGroupBox):
    """Describes a fine-tune as a :class:`Budget` and shows its progress."""

    _min_total = 0  # a total of 0 shows a busy bar until the first progress report

    start_requested = Signal()
    cancel_requested = Signal()
    load_requested = Signal()
    rerun_requested = Signal()
    command_requested = Signal()
    options_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Fine-tune", parent)
        defaults = default_budget()
        self._epochs = _spin(0, 1000, defaults.epochs, "phase A (supervised) epochs")
        self._rl_iters = _spin(0, 10000, defaults.rl_iters, "phase B (RL) updates")
        self._device = QComboBox()
        self._device.addItems(DEVICES)
        self._device.setToolTip("cuda trains in bf16; cpu in fp32 (slow: see the estimate)")
        self._extra = QListWidget()
        self._extra.setMaximumHeight(48)
        self._extra.setToolTip("more exported or EndoVis folders to train on")
        self._buttons = {
            text: QPushButton(text)
            for text in (
                "Add…",
                "Remove",
                "Fine-tune",
                "Cancel",
                "Copy",
                "Load checkpoint…",
                "Re-run unreviewed frames",
            )
        }
        self._buttons["Fine-tune"].setToolTip("train the model on this session's reviewed frames")
        self._buttons["Copy"].setToolTip("export the reviewed frames and copy the command")
        self._buttons["Cancel"].setEnabled(False)
        self._buttons["Re-run unreviewed frames"].setEnabled(False)
        self._progress = QProgressBar()
        self._progress.setRange(0, 1)
        self._status = QLabel("")
        self._status.setWordWrap(True)
        self._plot = LossPlot()
        self._command = QLineEdit()
        self._command.setReadOnly(True)
        self._command.setPlaceholderText("cliprl finetune … (run it in a terminal)")
        self._layout_children()
        self._connect()

    def _layout_children(self) -> None:
        b = self._buttons
        form = QFormLayout(self)
        form.addRow("Epochs", self._epochs)
        form.addRow("RL iterations", self._rl_iters)
        form.addRow("Device", self._device)
        form.addRow("Extra data", self._extra)
        form.addRow("", _row(b["Add…"], b["Remove"]))
        form.addRow(_row(b["Fine-tune"], b["Cancel"]))
        form.addRow(self._progress)
        form.addRow(self._status)
        form.addRow(self._plot)
        form.addRow("Command", _row(self._command, b["Copy"]))
        form.addRow(_row(b["Load checkpoint…"], b["Re-run unreviewed frames"]))

    def _connect(self) -> None:
        signals = {
            "Fine-tune": self.start_requested,
            "Cancel": self.cancel_requested,
            "Load checkpoint…": self.load_requested,
            "Re-run unreviewed frames": self.rerun_requested,
            "Copy": self.command_requested,
        }
        for text, signal in signals.items():
            self._buttons[text].clicked.connect(lambda _checked=False, s=signal: s.emit())
        self._buttons["Add…"].clicked.connect(lambda _checked=False: self._browse_extra())
        self._buttons["Remove"].clicked.connect(lambda _checked=False: self._remove_extra())
        self._epochs.valueChanged.connect(lambda *_: self.options_changed.emit())
        self._rl_iters.valueChanged.connect(lambda *_: self.options_changed.emit())
        self._device.currentTextChanged.connect(lambda *_: self.options_changed.emit())

    # -- controls (for tests and scripts that operate them) ------------------------------
    @property
    def controls(self) -> dict[str, QWidget]:
        """Inputs by their row label, buttons by their text."""
        inputs = {"Epochs": self._epochs, "RL iterations": self._rl_iters}
        return {**inputs, "Device": self._device, "Command": self._command, **self._buttons}

    # -- values --------------------------------------------------------------------------
    def budget(self) -> Budget:
        extra = tuple(self._extra.item(i).text() for i in range(self._extra.count()))
        return Budget(
            epochs=self._epochs.value(),
            rl_iters=self._rl_iters.value(),
            device=self._device.currentText(),
            extra_data=extra,
        )

    def set_budget(self, epochs: int, rl_iters: int) -> None:
        self._epochs.setValue(epochs)
        self._rl_iters.setValue(rl_iters)

    def set_device(self, device: str) -> None:
        self._device.setCurrentText(device)

    def add_extra_data(self, folder: str) -> None:
        self._extra.addItem(folder)
        self.options_changed.emit()

    # -- state ---------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self._buttons["Fine-tune"].setEnabled(not running)
        self._buttons["Cancel"].setEnabled(running)
        if running:
            self.set_rerun_enabled(False)

    def set_curves(self, curves: Any) -> None:
        """Draw the curves (``_training_progress.Curves``; None clears a drawn plot)."""
        if curves is None and not self._plot.rendered:
            return  # keep the placeholder until there is something to show
        self._plot.set_curves(curves)

    def plot(self) -> LossPlot:
        return self._plot

    def set_command(self, command: str) -> None:
        self._command.setText(command)
        self._command.setCursorPosition(0)
        self._command.setToolTip(command)

    def command(self) -> str:
        return self._command.text()

    def copy_command(self) -> None:
        QApplication.clipboard().setText(self._command.text())

    def set_rerun_enabled(self, enabled: bool) -> None:
        self._buttons["Re-run unreviewed frames"].setEnabled(enabled)

    def _browse_extra(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Exported or EndoVis folder")
        if folder:
            self.add_extra_data(folder)

    def _remove_extra(self) -> None:
        if self._extra.currentRow() >= 0:
            self._extra.takeItem(self._extra.currentRow())
            self.options_changed.emit()


def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row
