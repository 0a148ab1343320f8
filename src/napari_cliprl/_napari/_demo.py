"""The GUI side of ``cliprl demo``: a viewer on the sample clip with the annotator docked and
its Run button clicked, as a person would.

The helpers here operate the dock through its controls (clicks, combo and spin box changes),
never through the methods behind them; ``scripts/make_screenshots.py`` uses them too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PLUGIN = "napari-cliprl"
WIDGET = "CLIP-RL annotator"
WINDOW_SIZE = (1500, 950)


def click(button: Any) -> None:
    """Click ``button`` with the left mouse button (it must be enabled)."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    if not button.isEnabled():
        raise RuntimeError(f"the {button.text()!r} button is disabled")
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def click_box(box: Any) -> None:
    """Click a check box on its indicator."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QStyle, QStyleOptionButton

    option = QStyleOptionButton()
    box.initStyleOption(option)
    rect = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
    QTest.mouseClick(box, Qt.MouseButton.LeftButton, pos=rect.center())


def type_into(line_edit: Any, text: str) -> None:
    """Replace a line edit's text by typing it, then press Enter."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    line_edit.selectAll()
    QTest.keyClick(line_edit, Qt.Key.Key_Delete)
    QTest.keyClicks(line_edit, text)
    QTest.keyClick(line_edit, Qt.Key.Key_Return)


def choose(combo: Any, text: str) -> None:
    """Pick ``text`` in a combo box (emits what a user's pick emits)."""
    index = combo.findText(text)
    if index < 0:
        raise ValueError(f"no {text!r} in the list")
    combo.setCurrentIndex(index)


def open_demo_viewer(frames: int = 16, steps: int | None = None, show: bool = True) -> Any:
    """A viewer on the synthetic clip with the annotator docked and Run clicked on all
    frames. Returns (viewer, widget); the run continues in a worker thread."""
    import napari
    from napari_cliprl.io.sample import synthetic_clip

    from ._layers import schema_layer_kwargs
    from ._sample_data import SAMPLE_SIZE

    viewer = napari.Viewer(title="napari-cliprl demo", show=show)
    viewer.window._qt_window.resize(*WINDOW_SIZE)
    clip = synthetic_clip(n_frames=frames, size=SAMPLE_SIZE)
    viewer.add_image(clip.frames, name="synthetic clip", rgb=True)
    truth = viewer.add_labels(clip.labels, name="ground truth", **schema_layer_kwargs(clip.schema))
    truth.visible = False
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    sections = widget.sections
    choose(sections.data.frames_combo, "all frames")
    if steps is not None:
        sections.model.controls["Steps"].setValue(steps)
    click(sections.run.run_button)
    return viewer, widget


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    """Process Qt events until ``done()``; False on timeout."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            return False
        app.processEvents()
        time.sleep(0.02)
    return True


def wait_for(widget: Any, timeout: float) -> bool:
    """Process Qt events until the dock has nothing in progress; False on timeout."""
    return wait_until(lambda: not widget.busy, timeout)


def settle(rounds: int = 10) -> None:
    """Let Qt draw docks and canvases before a screenshot."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    for _ in range(rounds):
        app.processEvents()
        time.sleep(0.03)


def scroll_dock(widget: Any, top: bool) -> None:
    """Scroll the dock to its top (Data, Model, Run) or its bottom (Fine-tune, Evaluate)."""
    from qtpy.QtWidgets import QScrollArea

    bar = widget.findChild(QScrollArea).verticalScrollBar()
    bar.setValue(bar.minimum() if top else bar.maximum())


def run_demo(
    frames: int = 16,
    steps: int | None = None,
    screenshot: Path | None = None,
    timeout: float = 600.0,
) -> int:
    """Open the demo; with ``screenshot`` save the window once the run ends and exit."""
    import napari

    viewer, widget = open_demo_viewer(frames, steps)
    if screenshot is None:
        napari.run()
        return 0
    finished = wait_for(widget, timeout)
    status = widget.sections.run.status()
    viewer.dims.set_current_step(0, min(3, frames - 1))
    scroll_dock(widget, top=True)
    settle()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(screenshot), canvas_only=False)
    viewer.close()
    print(f"cliprl demo: {status} Screenshot saved to {screenshot}")
    if not finished:
        print(f"cliprl demo: error: the run did not finish within {timeout:g} s", file=sys.stderr)
        return 1
    return 0 if status.startswith("Done") else 1
