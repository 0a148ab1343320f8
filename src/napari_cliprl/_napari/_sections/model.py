"""Model section: checkpoint or architecture + CLIP weights, schema, device, steps.

Nothing here imports torch: a checkpoint's defaults come from its config.json, and the list of
architectures is filled in by the dock once the model code has been imported off the main
thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
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

from napari_cliprl.annotation.models import (
    FALLBACK_ARCH,
    RANDOM_WEIGHTS,
    ModelSpec,
    clip_weights_of,
    demo_checkpoint,
)
from napari_cliprl.devices import DEVICES
from napari_cliprl.files import read_json
from napari_cliprl.schemas import list_schemas

from .status import StatusMixin

SOURCES = ("checkpoint", "architecture")
MAX_STEPS = 10
RANDOM_LABEL = "random weights (testing)"


def checkpoint_defaults(folder: str) -> dict[str, Any]:
    """Schema name and steps T* of a checkpoint, where its config.json says (else empty)."""
    try:
        config = read_json(Path(folder) / "config.json", "checkpoint config")
    except (OSError, ValueError):
        return {}  # a bad checkpoint is reported when it is used, not while typing
    if not isinstance(config, dict):
        return {}
    model = config.get("model", config)
    schema = config.get("schema")
    if isinstance(schema, dict):
        schema = schema.get("name")
    steps = model.get("steps") if isinstance(model, dict) else None
    return {"schema": schema, "steps": steps}


class ModelSection(StatusMixin, QGroupBox):
    """Describes the model to run as a :class:`ModelSpec`; ``changed`` on any edit."""

    changed = Signal()
    architectures_wanted = Signal()  # the user chose "architecture": list them

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self._source = QComboBox()
        self._source.addItems(SOURCES)
        self._checkpoint = QLineEdit()
        self._checkpoint.setPlaceholderText("checkpoint folder")
        self._browse = QPushButton("…")
        self._browse.setToolTip("Choose a checkpoint folder")
        self._arch = QComboBox()
        self._arch.addItems([FALLBACK_ARCH])
        self._clip_weights = QLineEdit()
        self._clip_weights.setPlaceholderText("tag (openai), hf-hub:id or file")
        self._clip_weights.setToolTip(
            "open_clip pretrained tag (e.g. openai), hf-hub:org/repo or a local file"
        )
        self._random = QCheckBox(RANDOM_LABEL)
        self._random.setToolTip("untrained CLIP weights: only to test the plumbing")
        self._schema = QComboBox()
        self._schema.addItems(list_schemas())
        self._schema.setCurrentText("endovis2018")
        self._device = QComboBox()
        self._device.addItems(DEVICES)
        self._steps = QSpinBox()
        self._steps.setRange(0, MAX_STEPS)
        self._steps.setValue(3)
        self._steps.setToolTip("refinement steps T: layers step 0 .. step T")
        self._status = QLabel("")
        self._status.setWordWrap(True)
        self._layout()
        self._connect()
        demo = demo_checkpoint()
        if demo is not None:
            self.set_checkpoint(str(demo))
        else:
            self._source.setCurrentText("architecture")
        self._update_enabled()

    def _layout(self) -> None:
        ckpt_row = QHBoxLayout()
        ckpt_row.addWidget(self._checkpoint)
        ckpt_row.addWidget(self._browse)
        form = QFormLayout(self)
        form.addRow("Model from", self._source)
        form.addRow("Checkpoint", ckpt_row)
        form.addRow("Architecture", self._arch)
        form.addRow("CLIP weights", self._clip_weights)
        form.addRow("", self._random)
        form.addRow("Schema", self._schema)
        form.addRow("Device", self._device)
        form.addRow("Steps", self._steps)
        form.addRow(self._status)

    def _connect(self) -> None:
        self._browse.clicked.connect(lambda _checked=False: self.browse_checkpoint())
        self._checkpoint.editingFinished.connect(self._apply_checkpoint_defaults)
        for combo in (self._source, self._arch, self._schema, self._device):
            combo.currentTextChanged.connect(self._on_changed)
        self._clip_weights.textChanged.connect(self._on_changed)
        self._checkpoint.textChanged.connect(self._on_changed)
        self._random.toggled.connect(self._on_changed)
        self._steps.valueChanged.connect(self._on_changed)

    # -- controls (for tests and scripts that operate them) ------------------------------
    @property
    def controls(self) -> dict[str, QWidget]:
        """The section's inputs by their row label."""
        return {
            "Model from": self._source,
            "Checkpoint": self._checkpoint,
            "Architecture": self._arch,
            "CLIP weights": self._clip_weights,
            RANDOM_LABEL: self._random,
            "Schema": self._schema,
            "Device": self._device,
            "Steps": self._steps,
        }

    # -- values --------------------------------------------------------------------------
    def spec(self) -> ModelSpec:
        """The model the section describes."""
        use_ckpt = self._source.currentText() == "checkpoint"
        weights = None
        if not use_ckpt:
            typed = self._clip_weights.text().strip() or None
            weights = RANDOM_WEIGHTS if self._random.isChecked() else typed
        return ModelSpec(
            checkpoint=(self._checkpoint.text().strip() or None) if use_ckpt else None,
            arch=self._arch.currentText() or FALLBACK_ARCH,
            clip_weights=weights,
            schema=self._schema.currentText(),
            device=self._device.currentText(),
            steps=self._steps.value(),
        )

    def set_checkpoint(self, folder: str) -> None:
        self._source.setCurrentText("checkpoint")
        self._checkpoint.setText(folder)
        self._apply_checkpoint_defaults()

    def set_architecture(self, arch: str, clip_weights: str = "") -> None:
        """A new model of ``arch``; ``clip_weights`` "random" picks the random-weights box."""
        self._source.setCurrentText("architecture")
        if self._arch.findText(arch) < 0:
            self._arch.addItem(arch)
        self._arch.setCurrentText(arch)
        self._random.setChecked(clip_weights == RANDOM_WEIGHTS)
        self._clip_weights.setText("" if clip_weights == RANDOM_WEIGHTS else clip_weights)

    def set_architectures(self, names: list[str]) -> None:
        """The architectures a model can be built from (known once the model code loaded)."""
        current = self._arch.currentText()
        self._arch.blockSignals(True)
        self._arch.clear()
        self._arch.addItems(names if current in names else [*names, current])
        self._arch.setCurrentText(current)
        self._arch.blockSignals(False)

    def set_schema(self, name: str) -> None:
        if self._schema.findText(name) < 0:
            self._schema.addItem(name)
        self._schema.setCurrentText(name)

    def set_device(self, device: str) -> None:
        if self._device.findText(device) < 0:
            self._device.addItem(device)
        self._device.setCurrentText(device)

    def set_steps(self, steps: int) -> None:
        self._steps.setValue(int(steps))

    def browse_checkpoint(self) -> None:
        """Pick a checkpoint folder in a dialog (the Model and Fine-tune sections' picker)."""
        folder = QFileDialog.getExistingDirectory(self, "Checkpoint folder")
        if folder:
            self.set_checkpoint(folder)

    # -- callbacks -----------------------------------------------------------------------
    def _apply_checkpoint_defaults(self) -> None:
        defaults = checkpoint_defaults(self._checkpoint.text().strip())
        if defaults.get("schema"):
            self.set_schema(str(defaults["schema"]))
        if isinstance(defaults.get("steps"), int):
            self.set_steps(min(max(defaults["steps"], 0), MAX_STEPS))

    def _on_changed(self, *_: Any) -> None:
        if self._source.currentText() == "architecture":
            self.architectures_wanted.emit()
        self._update_enabled()
        self.set_status(self._problem())
        self.changed.emit()

    def _problem(self) -> str:
        """Why the described model cannot run, when that is known without loading it."""
        try:
            if self._source.currentText() == "architecture":
                clip_weights_of(self.spec())
        except (ValueError, RuntimeError) as e:  # AnnotationError: no CLIP weights given
            return str(e)
        return ""

    def _update_enabled(self, *_: Any) -> None:
        use_ckpt = self._source.currentText() == "checkpoint"
        self._checkpoint.setEnabled(use_ckpt)
        self._browse.setEnabled(use_ckpt)
        self._arch.setEnabled(not use_ckpt)
        self._random.setEnabled(not use_ckpt)
        self._clip_weights.setEnabled(not use_ckpt and not self._random.isChecked())
