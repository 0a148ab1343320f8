"""Data section: which image layer, which frames, where the session lives, and the saved
session of the image (with its Restore button) while there is one."""

from __future__ import annotations

from typing import Any

from napari.layers import Image
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

RANGE_MODES = ("current frame", "frame range", "all frames")


class DataSection(QGroupBox):
    """Pick the image layer, the frames to run on, and optionally the session folder."""

    image_changed = Signal()
    session_dir_changed = Signal()
    restore_requested = Signal()

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__("Data", parent)
        self.viewer = viewer
        self._image_combo = QComboBox()
        self._range_mode = QComboBox()
        self._range_mode.addItems(RANGE_MODES)
        self._range_mode.setCurrentText("current frame")
        self._start, self._stop = QSpinBox(), QSpinBox()
        for box, tip in ((self._start, "first frame"), (self._stop, "last frame (included)")):
            box.setRange(0, 0)
            box.setToolTip(tip)
        self._session_dir = QLineEdit()
        self._session_dir.setPlaceholderText("beside the video (default)")
        browse = QPushButton("…")
        browse.setToolTip("Choose a session folder")
        browse.clicked.connect(lambda _checked=False: self._browse_session())
        self._restore_text = QLabel("")
        self._restore_text.setWordWrap(True)
        self._restore_button = QPushButton("Restore")
        self._restore_button.setToolTip("bring back the saved layers, edits and reviewed flags")
        self._layout(browse)
        self._range_mode.currentTextChanged.connect(self._update_enabled)
        self._image_combo.currentTextChanged.connect(self._on_image_changed)
        self._session_dir.editingFinished.connect(self.session_dir_changed.emit)
        self._restore_button.clicked.connect(lambda _checked=False: self.restore_requested.emit())
        self.show_restore_offer("")
        self.refresh_layers()
        self._update_enabled()

    def _layout(self, browse: QPushButton) -> None:
        range_row = QHBoxLayout()
        range_row.addWidget(self._start)
        range_row.addWidget(self._stop)
        session_row = QHBoxLayout()
        session_row.addWidget(self._session_dir)
        session_row.addWidget(browse)
        self._restore_row = QWidget()
        restore_row = QHBoxLayout(self._restore_row)
        restore_row.setContentsMargins(0, 0, 0, 0)
        restore_row.addWidget(self._restore_text, 1)
        restore_row.addWidget(self._restore_button)
        form = QFormLayout(self)
        form.addRow("Image", self._image_combo)
        form.addRow("Frames", self._range_mode)
        form.addRow("From / to", range_row)
        form.addRow("Session", session_row)
        form.addRow(self._restore_row)

    # -- controls (for tests and scripts that operate them) ------------------------------
    @property
    def image_combo(self) -> QComboBox:
        return self._image_combo

    @property
    def frames_combo(self) -> QComboBox:
        return self._range_mode

    @property
    def range_spins(self) -> tuple[QSpinBox, QSpinBox]:
        return self._start, self._stop

    @property
    def session_edit(self) -> QLineEdit:
        return self._session_dir

    @property
    def restore_button(self) -> QPushButton:
        return self._restore_button

    # -- state ---------------------------------------------------------------------------
    def image_layer(self) -> Image | None:
        name = self._image_combo.currentText()
        if name and name in self.viewer.layers:
            layer = self.viewer.layers[name]
            return layer if isinstance(layer, Image) else None
        return None

    def set_image_layer(self, name: str) -> None:
        self._image_combo.setCurrentText(name)

    def n_frames(self) -> int:
        layer = self.image_layer()
        if layer is None:
            return 0
        spatial = layer.data.ndim - (1 if layer.rgb else 0)
        return int(layer.data.shape[0]) if spatial == 3 else 1

    def frame_indices(self, current: int) -> list[int]:
        """The frames to run on: the current frame, the chosen range, or all frames."""
        n = self.n_frames()
        mode = self._range_mode.currentText()
        if n == 0:
            return []
        if mode == "current frame":
            return [min(max(int(current), 0), n - 1)]
        if mode == "frame range":
            lo, hi = sorted((self._start.value(), self._stop.value()))
            return list(range(lo, min(hi, n - 1) + 1))
        return list(range(n))

    def set_range(self, mode: str, start: int | None = None, stop: int | None = None) -> None:
        """Choose "current frame", "frame range" (start..stop, inclusive) or "all frames"."""
        if mode not in RANGE_MODES:
            raise ValueError(f"unknown frame range {mode!r}; choose one of {RANGE_MODES}")
        self._range_mode.setCurrentText(mode)
        if start is not None:
            self._start.setValue(start)
        if stop is not None:
            self._stop.setValue(stop)

    def session_dir(self) -> str | None:
        """The session folder the user chose, or None for the default."""
        return self._session_dir.text().strip() or None

    def set_session_dir(self, folder: str) -> None:
        self._session_dir.setText(folder)
        self.session_dir_changed.emit()

    def show_restore_offer(self, text: str) -> None:
        """Show the saved session line with its Restore button ("" hides it)."""
        self._restore_text.setText(text)
        self._restore_row.setVisible(bool(text))
        self._restore_button.setEnabled(bool(text))

    def restore_offer(self) -> str:
        return self._restore_text.text() if self._restore_row.isVisibleTo(self) else ""

    def set_restoring(self, busy: bool) -> None:
        self._restore_button.setEnabled(not busy and bool(self._restore_text.text()))
        self._restore_button.setText("Restoring…" if busy else "Restore")

    # -- callbacks -----------------------------------------------------------------------
    def refresh_layers(self, event: Any = None) -> None:
        current = self._image_combo.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        self._image_combo.blockSignals(True)
        self._image_combo.clear()
        self._image_combo.addItems(names)
        if current in names:
            self._image_combo.setCurrentText(current)
        self._image_combo.blockSignals(False)
        if self._image_combo.currentText() != current:
            self._on_image_changed()

    def _on_image_changed(self, *_: Any) -> None:
        n = self.n_frames()
        for box in (self._start, self._stop):
            box.setRange(0, max(n - 1, 0))
        self._stop.setValue(max(n - 1, 0))
        self.image_changed.emit()

    def _update_enabled(self, *_: Any) -> None:
        is_range = self._range_mode.currentText() == "frame range"
        self._start.setEnabled(is_range)
        self._stop.setEnabled(is_range)

    def _browse_session(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Session folder")
        if folder:
            self.set_session_dir(folder)
