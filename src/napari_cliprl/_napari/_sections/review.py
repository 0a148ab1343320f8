"""Review section: reviewed count, next unreviewed frame, class picker, accept a step."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from napari_cliprl.schemas import LabelSchema


class ReviewSection(QGroupBox):
    """Shows review progress; emits what the annotator asks for."""

    next_requested = Signal()
    accept_requested = Signal(int)  # step t
    class_picked = Signal(int)  # class id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Review", parent)
        self._count = QLabel("no session")
        self._next_button = QPushButton("Next unreviewed frame")
        self._class_picker = QComboBox()
        self._class_picker.setToolTip("paint label of the 'corrected' layer")
        self._accept_step = QSpinBox()
        self._accept_step.setRange(0, 0)
        self._accept_button = QPushButton("Accept step")
        self._accept_button.setToolTip(
            "copy this step into 'corrected' for the current frame and mark it reviewed"
        )
        accept_row = QHBoxLayout()
        accept_row.addWidget(self._accept_step)
        accept_row.addWidget(self._accept_button)
        form = QFormLayout(self)
        form.addRow("Reviewed", self._count)
        form.addRow(self._next_button)
        form.addRow("Paint class", self._class_picker)
        form.addRow("Step", accept_row)
        self._next_button.clicked.connect(self.next_requested.emit)
        self._accept_button.clicked.connect(
            lambda: self.accept_requested.emit(self._accept_step.value())
        )
        self._class_picker.currentIndexChanged.connect(self._on_class_picked)
        self.setEnabled(False)

    def set_schema(self, schema: LabelSchema, steps: int) -> None:
        self._class_picker.blockSignals(True)
        self._class_picker.clear()
        for c in schema.classes:
            self._class_picker.addItem(c.name, c.id)
        self._class_picker.blockSignals(False)
        self._accept_step.setRange(0, steps)
        self._accept_step.setValue(steps)
        self.setEnabled(True)

    def set_count(self, reviewed: int, total: int) -> None:
        self._count.setText(f"{reviewed} / {total} reviewed")

    def count_text(self) -> str:
        return self._count.text()

    def pick_class(self, name: str) -> None:
        """Select the paint class by name (emits ``class_picked``)."""
        index = self._class_picker.findText(name)
        if index < 0:
            raise KeyError(f"no class {name!r} in the picker")
        self._class_picker.setCurrentIndex(index)
        self._on_class_picked(index)

    def show_class(self, class_id: int) -> None:
        """Follow a label chosen elsewhere (napari's own label control), without emitting."""
        index = self._class_picker.findData(int(class_id))
        if index >= 0 and index != self._class_picker.currentIndex():
            self._class_picker.blockSignals(True)
            self._class_picker.setCurrentIndex(index)
            self._class_picker.blockSignals(False)

    def _on_class_picked(self, index: int) -> None:
        class_id = self._class_picker.itemData(index)
        if class_id is not None:
            self.class_picked.emit(int(class_id))
