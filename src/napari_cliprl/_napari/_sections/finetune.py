"""Fine-tune section: budget, extra data, start/cancel, live curves, the equivalent command
line, loading a checkpoint and re-running the unreviewed frames."""

from __future__ import annotations

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

from napari_cliprl.annotation.finetune_job import widget_preset
from napari_cliprl.devices import DEVICES
from napari_cliprl.training.config import FinetuneConfig, replace_fields

from .plots import LossPlot
from .status import ProgressMixin


class FinetuneSection(ProgressMixin, QGroupBox):
    """Describes a fine-tune as a FinetuneConfig (from ``widget_preset``) and shows its
    progress."""

    _min_total = 0  # fine-tuning starts with a busy bar until the first progress report

    start_requested = Signal()
    cancel_requested = Signal()
    load_requested = Signal()
    rerun_requested = Signal()
    command_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Fine-tune", parent)
        defaults = widget_preset()
        self._epochs = _spin(0, 1000, defaults.supervised.epochs, "phase A (supervised) epochs")
        self._rl_iters = _spin(0, 10000, defaults.rl.iterations, "phase B (RL) updates")
        self._device = QComboBox()
        self._device.addItems(DEVICES)
        self._device.setToolTip("cuda trains in bf16; cpu in fp32 (slow: see the estimate)")
        self._extra = QListWidget()
        self._extra.setMaximumHeight(48)
        self._extra.setToolTip("more exported or EndoVis folders to train on")
        self._start_button = QPushButton("Fine-tune")
        self._start_button.setToolTip("train the model on the reviewed frames of this session")
        self._cancel_button = QPushButton("Cancel")
        self._cancel_button.setEnabled(False)
        self._progress = QProgressBar()
        self._progress.setRange(0, 1)
        self._status = QLabel("")
        self._status.setWordWrap(True)
        self._plot = LossPlot()
        self._command = QLineEdit()
        self._command.setReadOnly(True)
        self._command.setPlaceholderText("cliprl finetune … (run it in a terminal)")
        self._copy_button = QPushButton("Copy")
        self._copy_button.setToolTip("export the reviewed frames and copy the command")
        self._load_button = QPushButton("Load checkpoint…")
        self._rerun_button = QPushButton("Re-run unreviewed frames")
        self._rerun_button.setEnabled(False)
        self._layout_children()
        self._start_button.clicked.connect(self.start_requested.emit)
        self._cancel_button.clicked.connect(self.cancel_requested.emit)
        self._load_button.clicked.connect(self.load_requested.emit)
        self._rerun_button.clicked.connect(self.rerun_requested.emit)
        self._copy_button.clicked.connect(self.command_requested.emit)

    def _layout_children(self) -> None:
        add, remove = QPushButton("Add…"), QPushButton("Remove")
        add.clicked.connect(self._browse_extra)
        remove.clicked.connect(lambda: self._extra.takeItem(self._extra.currentRow()))
        extra_buttons = QHBoxLayout()
        extra_buttons.addWidget(add)
        extra_buttons.addWidget(remove)
        run_row = QHBoxLayout()
        run_row.addWidget(self._start_button)
        run_row.addWidget(self._cancel_button)
        command_row = QHBoxLayout()
        command_row.addWidget(self._command)
        command_row.addWidget(self._copy_button)
        form = QFormLayout(self)
        form.addRow("Epochs", self._epochs)
        form.addRow("RL iterations", self._rl_iters)
        form.addRow("Device", self._device)
        form.addRow("Extra data", self._extra)
        form.addRow("", extra_buttons)
        form.addRow(run_row)
        form.addRow(self._progress)
        form.addRow(self._status)
        form.addRow(self._plot)
        form.addRow("Command", command_row)
        model_row = QHBoxLayout()
        model_row.addWidget(self._load_button)
        model_row.addWidget(self._rerun_button)
        form.addRow(model_row)

    # -- values ------------------------------------------------------------------------------
    def options(self) -> FinetuneConfig:
        extra = [self._extra.item(i).text() for i in range(self._extra.count())]
        preset = widget_preset()
        rl_iters = self._rl_iters.value()
        return replace_fields(
            preset,
            {
                "supervised.epochs": self._epochs.value(),
                "rl.iterations": rl_iters,
                "rl.imitation_iters": min(rl_iters, preset.rl.imitation_iters),
                "device": self._device.currentText(),
                "data": extra,
            },
        )

    def set_budget(self, epochs: int, rl_iters: int) -> None:
        self._epochs.setValue(epochs)
        self._rl_iters.setValue(rl_iters)

    def set_device(self, device: str) -> None:
        self._device.setCurrentText(device)

    def add_extra_data(self, folder: str) -> None:
        self._extra.addItem(folder)

    # -- state ---------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self._start_button.setEnabled(not running)
        self._cancel_button.setEnabled(running)
        if running:
            self._plot.clear()

    def set_command(self, command: str) -> None:
        self._command.setText(command)
        self._command.setCursorPosition(0)
        self._command.setToolTip(command)

    def command(self) -> str:
        return self._command.text()

    def copy_command(self) -> None:
        QApplication.clipboard().setText(self._command.text())

    def set_rerun_enabled(self, enabled: bool) -> None:
        self._rerun_button.setEnabled(enabled)

    def _browse_extra(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Exported or EndoVis folder")
        if folder:
            self._extra.addItem(folder)


def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    return box
