"""Helpers shared by the GUI tests (imported by name: tests/napari is on sys.path).

The tests operate the dock as a person does: buttons are clicked with the mouse, combo boxes
and spin boxes are changed so that they emit what a user's change emits, dialogs are answered
by clicking their buttons. Controls are found through the sections' public accessors.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer

from napari_cliprl.annotation.models import ModelSpec

N_FRAMES, SIZE, STEPS = 4, (64, 80), 2
TIMEOUT_MS = 120_000  # generous: two cores shared by several test runs


def tiny_spec() -> ModelSpec:
    return ModelSpec(arch="tiny-test", schema="endovis2018", device="cpu", steps=STEPS)


def add_clip(viewer: Any, clip: Any, name: str = "clip") -> Any:
    return viewer.add_image(clip.frames, name=name, rgb=True)


# -- operating controls --------------------------------------------------------------------
def click(qtbot: Any, button: Any) -> None:
    """Left-click ``button`` (which must be enabled, as for a person)."""
    assert button.isEnabled(), f"the {button.text()!r} button is disabled"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def click_box(qtbot: Any, box: Any) -> None:
    """Left-click a check box on its indicator (where a person clicks it)."""
    from qtpy.QtWidgets import QStyle, QStyleOptionButton

    assert box.isEnabled(), f"the {box.text()!r} box is disabled"
    option = QStyleOptionButton()
    box.initStyleOption(option)
    rect = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=rect.center())


def choose(combo: Any, text: str) -> None:
    """Pick ``text`` in a combo box (emits currentIndexChanged / currentTextChanged)."""
    index = combo.findText(text)
    assert index >= 0, f"no {text!r} in {[combo.itemText(i) for i in range(combo.count())]}"
    combo.setCurrentIndex(index)


def type_text(qtbot: Any, line_edit: Any, text: str) -> None:
    """Replace a line edit's text by typing, then press Enter."""
    line_edit.selectAll()
    qtbot.keyClick(line_edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(line_edit, text)
    qtbot.keyClick(line_edit, Qt.Key.Key_Return)


class DialogAnswer:
    """Clicks ``button`` ("Yes" / "No") of the next modal message box when it shows, as a
    person answering it; ``texts`` receives what the box said."""

    def __init__(self, button: str) -> None:
        self.texts: list[str] = []
        self._button = button
        self._timer = QTimer()
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._answer)
        self._timer.start()

    def _answer(self) -> None:
        from qtpy.QtWidgets import QApplication, QMessageBox

        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            self._timer.stop()
            self.texts.append(box.text())
            box.button(getattr(QMessageBox.StandardButton, self._button)).click()

    def stop(self) -> None:
        self._timer.stop()


# -- the dock ------------------------------------------------------------------------------
def make_dock(
    viewer: Any, qtbot: Any, predictors: Any, session_dir: Path | None = None, frames: str = "all"
) -> Any:
    """The annotator docked in ``viewer``, set through its controls to the tiny model on the
    CPU with 2 steps (and ``frames``: "all" frames or the "current" frame)."""
    from napari_cliprl._napari._widget import AnnotatorWidget

    widget = AnnotatorWidget(viewer, predictors=predictors)
    viewer.window.add_dock_widget(widget, name="CLIP-RL annotator")
    model = widget.sections.model.controls
    choose(model["Model from"], "architecture")
    choose(model["Architecture"], "tiny-test")
    choose(model["Device"], "cpu")
    model["Steps"].setValue(STEPS)
    if frames == "all":
        choose(widget.sections.data.frames_combo, "all frames")
    if session_dir is not None:
        type_text(qtbot, widget.sections.data.session_edit, str(session_dir))
    return widget


def wait_idle(qtbot: Any, widget: Any, timeout: int = TIMEOUT_MS) -> None:
    """Wait until the dock has nothing in progress (run, layers, export, fine-tune...)."""
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def run_all(qtbot: Any, widget: Any) -> None:
    """Click Run and wait for the run and the session's layers (or for the error a click
    that could not start a run reports)."""
    since = n_records()
    click(qtbot, widget.sections.run.run_button)
    qtbot.waitUntil(lambda: widget.busy or bool(error_messages(since)), timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget)


def paint(viewer: Any, frame: int, label: int, at: tuple[int, int] = (20, 30)) -> None:
    """One brush stroke on "corrected" at ``frame``, recorded as napari's brush records it
    (``paint`` inside ``block_history``: one undoable edit)."""
    corrected = viewer.layers["corrected"]
    viewer.dims.set_current_step(0, frame)
    corrected.brush_size = 9
    with corrected.block_history():
        corrected.paint((frame, *at), label)
        corrected.paint((frame, at[0] + 4, at[1] + 4), label)


def session_layer_names(viewer: Any) -> list[str]:
    return [layer.name for layer in viewer.layers]


# -- stand-ins for a model -----------------------------------------------------------------
class SlowPredictor:
    """Stands in for a model: sleeps per frame so a run lasts long enough to observe."""

    def __init__(self, seconds: float = 0.15) -> None:
        self.seconds = seconds
        self.calls = 0

    def predict(self, frame, steps=None, key=None, prior=None, prior_weight=None) -> Any:
        from types import SimpleNamespace

        time.sleep(self.seconds)
        self.calls += 1
        h, w = frame.shape[:2]
        maps = [np.full((h, w), t + 1, np.uint8) for t in range((steps or 0) + 1)]
        return SimpleNamespace(zero_shot=np.zeros((h, w), np.uint8), steps=maps, entropy=[0.0])


class FixedCache:
    """A PredictorCache that always returns the given predictor."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor

    def get(self, spec: ModelSpec) -> Any:
        return self.predictor


# -- notifications -------------------------------------------------------------------------
def messages(since: int = 0, severity: str | None = None) -> list[str]:
    from napari.utils.notifications import notification_manager

    return [
        str(n.message)
        for n in notification_manager.records[since:]
        if severity is None or str(n.severity.value) == severity
    ]


def error_messages(since: int = 0) -> list[str]:
    return messages(since, "error")


def n_records() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)
