"""Evaluate section: ground-truth layer, Evaluate button, metrics table and per-class chart."""

from __future__ import annotations

import math

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from napari_cliprl.annotation.evaluate import METRIC_COLUMNS, EvaluationTable

from .plots import ClassIoUChart
from .status import StatusMixin

HEADERS = {"challenge_iou": "chall. IoU", "iou": "IoU", "mciou": "mcIoU", "miou": "mIoU"}
GROUND_TRUTH = "ground truth"
USER_ROLE = Qt.ItemDataRole.UserRole


class EvaluateSection(StatusMixin, QGroupBox):
    """Shows ``evaluate_frames`` per proposal layer (rows) against a ground-truth layer."""

    evaluate_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Evaluate", parent)
        self._truth = QComboBox()
        self._truth.setToolTip("Labels layer holding the ground truth")
        self._evaluate_button = QPushButton("Evaluate")
        self._status = QLabel("")
        self._status.setWordWrap(True)
        self._table = QTableWidget(0, len(METRIC_COLUMNS))
        self._table.setHorizontalHeaderLabels([HEADERS[c] for c in METRIC_COLUMNS])
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self._table.setFixedHeight(60)
        self._chart = ClassIoUChart()
        form = QFormLayout(self)
        form.addRow("Ground truth", self._truth)
        form.addRow(self._evaluate_button)
        form.addRow(self._status)
        form.addRow(self._table)
        form.addRow(self._chart)
        self._evaluate_button.clicked.connect(lambda _checked=False: self.evaluate_requested.emit())

    @property
    def controls(self) -> dict[str, QWidget]:
        return {"Ground truth": self._truth, "Evaluate": self._evaluate_button}

    def chart(self) -> ClassIoUChart:
        return self._chart

    def set_truth_layers(self, names: list[str]) -> None:
        current = self._truth.currentText()
        self._truth.blockSignals(True)
        self._truth.clear()
        self._truth.addItems(names)
        if current in names:
            self._truth.setCurrentText(current)
        elif GROUND_TRUTH in names:
            self._truth.setCurrentText(GROUND_TRUTH)
        self._truth.blockSignals(False)
        self._evaluate_button.setEnabled(bool(names))

    def truth_layer(self) -> str | None:
        return self._truth.currentText() or None

    def set_busy(self, busy: bool) -> None:
        self._evaluate_button.setEnabled(not busy and self._truth.count() > 0)
        if busy:
            self._status.setText("Evaluating…")

    def show_table(self, table: EvaluationTable) -> None:
        rows = table.rows()
        self._table.setRowCount(len(rows))
        row_height = self._table.verticalHeader().defaultSectionSize()
        header = self._table.horizontalHeader().sizeHint().height()
        self._table.setFixedHeight(header + row_height * len(rows) + 4)
        self._table.setVerticalHeaderLabels([name for name, _ in rows])
        for r, (_, values) in enumerate(rows):
            for c, value in enumerate(values):
                text = "–" if math.isnan(value) else f"{value:.3f}"
                item = QTableWidgetItem(text)
                item.setData(USER_ROLE, value)  # the exact number
                self._table.setItem(r, c, item)
        self._chart.set_data(table.class_names, table.per_class_iou())
        n = len(table.frames)
        self._status.setText(f"{n} frame{'s' * (n != 1)} with predictions and ground truth.")

    def table_values(self) -> dict[str, list[float]]:
        """Row name -> the numbers shown (for tests and copy-paste)."""
        out = {}
        for r in range(self._table.rowCount()):
            name = self._table.verticalHeaderItem(r).text()
            out[name] = [self._table.item(r, c).data(USER_ROLE) for c in range(len(METRIC_COLUMNS))]
        return out
