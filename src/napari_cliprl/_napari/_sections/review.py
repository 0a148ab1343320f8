"""Review section: reviewed count, next unreviewed frame, class picker, accept a step, and
taking a frame's reviewed mark back."""

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
    unreview_requested = Signal()
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
        self._unreview_button = QPushButton("Un-review frame")
        self._unreview_button.setToolTip(
            "take back the reviewed mark of the current frame (its labels stay as they are)"
        )
        accept_row = QHBoxLayout()
        accept_row.addWidget(self._accept_step)
        accept_row.addWidget(self._accept_button)
        form = QFormLayout(self)
        form.addRow("Reviewed", self._count)
        next_row = QHBoxLayout()
        next_row.addWidget(self._next_button)
        next_row.addWidget(self._unreview_button)
        form.addRow(next_row)
        form.addRow("Paint class", self._class_picker)
        form.addRow("Step", accept_row)
        self._next_button.clicked.connect(lambda _checked=False: self.next_requested.emit())
        self._unreview_button.clicked.connect(lambda _checked=False: self.unreview_requested.emit())
        self._accept_button.clicked.connect(
            lambda _checked=False: self.accept_requested.emit(self._accept_step.value())
        )
        self._class_picker.currentIndexChanged.connect(self._on_class_picked)
        self.setEnabled(False)

    @property
    def controls(self) -> dict[str, QWidget]:
        """The section's controls by what they show."""
        return {
            "Next unreviewed frame": self._next_button,
            "Un-review frame": self._unreview_button,
            "Paint class": self._class_picker,
            "Step": self._accept_step,
            "Accept step": self._accept_button,
        }

    def set_schema(self, schema: LabelSchema, steps: int) -> None:
        self._class_picker.blockSignals(True)
        self._class_picker.clear()
        for c in schema.classes:
            self._class_picker.addItem(c.name, c.id)
        self._class_picker.blockSignals(False)
        self.set_steps(steps)
        self.setEnabled(True)

    def set_steps(self, steps: int) -> None:
        """The steps a frame can accept (0 .. T); the last one is chosen."""
        self._accept_step.setRange(0, steps)
        self._accept_step.setValue(steps)

    def set_count(self, reviewed: int, total: int) -> None:
        self._count.setText(f"{reviewed} / {total} reviewed")

    def count_text(self) -> str:
        return self._count.text()

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
