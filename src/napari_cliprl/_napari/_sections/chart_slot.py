"""A place in a section for a matplotlib chart, created when it first has something to show:
matplotlib is imported then (the dock imports it off the main thread beforehand), not when
the dock is added."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget


class ChartSlot(QWidget):
    """Holds the chart ``make()`` builds, showing ``placeholder`` until then."""

    def __init__(self, make: Callable[[], Any], placeholder: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._make = make
        self._chart: Any = None
        self._placeholder = QLabel(placeholder)
        self._placeholder.setWordWrap(True)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self._placeholder)

    @property
    def created(self) -> bool:
        return self._chart is not None

    def chart(self) -> Any:
        """The chart, created on first use."""
        if self._chart is None:
            self._chart = self._make()
            self._placeholder.hide()
            self._layout.addWidget(self._chart)
        return self._chart
