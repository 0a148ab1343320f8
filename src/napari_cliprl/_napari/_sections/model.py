"""Model section: checkpoint or architecture + CLIP weights, schema, device, steps."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from napari_cliprl.annotation.models import FALLBACK_ARCH, ModelSpec, demo_checkpoint
from napari_cliprl.devices import DEVICES
from napari_cliprl.schemas import list_schemas

SOURCES = ("checkpoint", "architecture")
MAX_STEPS = 10


def _architectures() -> list[str]:
    try:
        from napari_cliprl.model.build import list_architectures

        names = list(list_architectures())
    except ImportError:
        names = []
    return names or [FALLBACK_ARCH]


def _checkpoint_defaults(folder: str) -> dict[str, Any]:
    """Schema name and steps T* of a checkpoint, where its config says (else empty)."""
    try:
        from napari_cliprl.model.build import read_checkpoint_config

        config = read_checkpoint_config(folder)
    except Exception:  # a bad checkpoint is reported when it is used, not while typing
        return {}
    model = config.get("model", config) if isinstance(config, dict) else {}
    schema = config.get("schema") if isinstance(config, dict) else None
    if isinstance(schema, dict):
        schema = schema.get("name")
    return {"schema": schema, "steps": model.get("steps") if isinstance(model, dict) else None}


class ModelSection(QGroupBox):
    """Describes the model to run as a :class:`ModelSpec`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self._source = QComboBox()
        self._source.addItems(SOURCES)
        self._checkpoint = QLineEdit()
        self._checkpoint.setPlaceholderText("checkpoint folder")
        browse = QPushButton("…")
        browse.setToolTip("Choose a checkpoint folder")
        browse.clicked.connect(self._browse_checkpoint)
        self._arch = QComboBox()
        self._arch.addItems(_architectures())
        self._arch.setCurrentText(FALLBACK_ARCH)
        self._clip_weights = QLineEdit()
        self._clip_weights.setPlaceholderText("tag, hf-hub:id or file")
        self._clip_weights.setToolTip(
            "open_clip pretrained tag (e.g. openai), hf-hub:org/repo or a local file"
        )
        self._schema = QComboBox()
        self._schema.addItems(list_schemas())
        self._schema.setCurrentText("endovis2018")
        self._device = QComboBox()
        self._device.addItems(DEVICES)
        self._steps = QSpinBox()
        self._steps.setRange(0, MAX_STEPS)
        self._steps.setValue(3)
        self._steps.setToolTip("refinement steps T: layers step 0 .. step T")

        ckpt_row = QHBoxLayout()
        ckpt_row.addWidget(self._checkpoint)
        ckpt_row.addWidget(browse)
        form = QFormLayout(self)
        form.addRow("Model from", self._source)
        form.addRow("Checkpoint", ckpt_row)
        form.addRow("Architecture", self._arch)
        form.addRow("CLIP weights", self._clip_weights)
        form.addRow("Schema", self._schema)
        form.addRow("Device", self._device)
        form.addRow("Steps", self._steps)

        self._source.currentTextChanged.connect(self._update_enabled)
        self._checkpoint.editingFinished.connect(self._apply_checkpoint_defaults)
        demo = demo_checkpoint()
        if demo is not None:
            self.set_checkpoint(str(demo))
        else:
            self._source.setCurrentText("architecture")
        self._update_enabled()

    def spec(self) -> ModelSpec:
        """The model the section describes."""
        use_ckpt = self._source.currentText() == "checkpoint"
        return ModelSpec(
            checkpoint=(self._checkpoint.text().strip() or None) if use_ckpt else None,
            arch=self._arch.currentText() or FALLBACK_ARCH,
            clip_weights=None if use_ckpt else (self._clip_weights.text().strip() or None),
            schema=self._schema.currentText(),
            device=self._device.currentText(),
            steps=self._steps.value(),
        )

    def set_checkpoint(self, folder: str) -> None:
        self._source.setCurrentText("checkpoint")
        self._checkpoint.setText(folder)
        self._apply_checkpoint_defaults()

    def set_architecture(self, arch: str, clip_weights: str = "") -> None:
        self._source.setCurrentText("architecture")
        if self._arch.findText(arch) < 0:
            self._arch.addItem(arch)
        self._arch.setCurrentText(arch)
        self._clip_weights.setText(clip_weights)

    def set_schema(self, name: str) -> None:
        if self._schema.findText(name) < 0:
            self._schema.addItem(name)
        self._schema.setCurrentText(name)

    def set_steps(self, steps: int) -> None:
        self._steps.setValue(int(steps))

    def _apply_checkpoint_defaults(self) -> None:
        defaults = _checkpoint_defaults(self._checkpoint.text().strip())
        if defaults.get("schema"):
            self.set_schema(str(defaults["schema"]))
        if isinstance(defaults.get("steps"), int):
            self.set_steps(min(max(defaults["steps"], 0), MAX_STEPS))

    def _update_enabled(self, *_: Any) -> None:
        use_ckpt = self._source.currentText() == "checkpoint"
        self._checkpoint.setEnabled(use_ckpt)
        self._arch.setEnabled(not use_ckpt)
        self._clip_weights.setEnabled(not use_ckpt)

    def _browse_checkpoint(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Checkpoint folder")
        if folder:
            self.set_checkpoint(folder)
