"""Export section: output folder, whether to include frames, and the Export button."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QWidget,
)

from .status import StatusMixin

OVERWRITE_TITLE = "Overwrite export?"


class ExportSection(StatusMixin, QGroupBox):
    """Where and how to export the reviewed frames."""

    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Export", parent)
        self._out_dir = QLineEdit()
        self._out_dir.setPlaceholderText("EndoVis output folder")
        browse = QPushButton("…")
        browse.setToolTip("Choose the export folder")
        browse.clicked.connect(lambda _checked=False: self._browse())
        self._with_frames = QCheckBox("include frames (left_frames/)")
        self._with_frames.setChecked(True)
        self._export_button = QPushButton("Export reviewed frames")
        self._status = QLabel("")
        self._status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self._out_dir)
        row.addWidget(browse)
        form = QFormLayout(self)
        form.addRow("Folder", row)
        form.addRow(self._with_frames)
        form.addRow(self._export_button)
        form.addRow(self._status)
        self._export_button.clicked.connect(lambda _checked=False: self.export_requested.emit())

    @property
    def controls(self) -> dict[str, QWidget]:
        return {
            "Folder": self._out_dir,
            "include frames": self._with_frames,
            "Export reviewed frames": self._export_button,
        }

    def out_dir(self) -> str | None:
        return self._out_dir.text().strip() or None

    def set_out_dir(self, folder: str) -> None:
        self._out_dir.setText(folder)

    def with_frames(self) -> bool:
        return self._with_frames.isChecked()

    def set_busy(self, busy: bool) -> None:
        self._export_button.setEnabled(not busy)
        if busy:
            self.set_status("Exporting…")

    def confirm_overwrite(self, message: str) -> bool:
        """Ask before replacing existing files (a modal question; No is the default)."""
        answer = QMessageBox.question(
            self,
            OVERWRITE_TITLE,
            f"{message}\n\nReplace the existing files?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder")
        if folder:
            self._out_dir.setText(folder)
