"""Suggest section: jump to the frame the model is least sure about."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)


class SuggestSection(QGroupBox):
    """The "Next suggested frame" button and how suggestions spread over the video."""

    next_requested = Signal()
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Suggestions", parent)
        self._next_button = QPushButton("Next suggested frame")
        self._next_button.setToolTip("the unreviewed frame the model is least sure about")
        self._spread = QCheckBox("spread over the video")
        self._spread.setToolTip("prefer frames far from the reviewed ones")
        self._weight = QDoubleSpinBox()
        self._weight.setRange(0.0, 10.0)
        self._weight.setSingleStep(0.5)
        self._weight.setValue(1.0)
        self._weight.setToolTip("distance weight: score x (1 + weight x distance / frames)")
        self._weight.setEnabled(False)
        self._ranking = QLabel("no predictions yet")
        self._ranking.setWordWrap(True)
        spread_row = QHBoxLayout()
        spread_row.addWidget(self._spread)
        spread_row.addWidget(self._weight)
        form = QFormLayout(self)
        form.addRow(self._next_button)
        form.addRow(spread_row)
        form.addRow("Next up", self._ranking)
        self._next_button.clicked.connect(lambda _checked=False: self.next_requested.emit())
        self._spread.toggled.connect(self._weight.setEnabled)
        self._spread.toggled.connect(lambda *_: self.changed.emit())
        self._weight.valueChanged.connect(lambda *_: self.changed.emit())

    @property
    def controls(self) -> dict[str, QWidget]:
        return {
            "Next suggested frame": self._next_button,
            "spread over the video": self._spread,
            "weight": self._weight,
        }

    def distance_weight(self) -> float:
        return self._weight.value() if self._spread.isChecked() else 0.0

    def set_distance_weight(self, weight: float) -> None:
        """0 switches spreading off."""
        self._spread.setChecked(weight > 0)
        if weight > 0:
            self._weight.setValue(weight)

    def show_ranking(self, frames: list[int]) -> None:
        if frames:
            self._ranking.setText(", ".join(f"frame {i}" for i in frames[:5]))
        else:
            self._ranking.setText("no unreviewed predicted frame")

    def ranking_text(self) -> str:
        return self._ranking.text()
