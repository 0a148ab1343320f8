"""The GUI side of ``cliprl demo``: a viewer on the sample clip with the annotator run on it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

PLUGIN = "napari-cliprl"
WIDGET = "CLIP-RL annotator"
WINDOW_SIZE = (1500, 950)


def open_demo_viewer(frames: int = 16, steps: int | None = None, show: bool = True) -> Any:
    """A viewer on the synthetic clip with the annotator docked and a run started.

    Returns (viewer, widget); the run continues in a worker thread.
    """
    import napari

    from ._layers import schema_layer_kwargs
    from ._sample_data import SAMPLE_SIZE

    viewer = napari.Viewer(title="napari-cliprl demo", show=show)
    viewer.window._qt_window.resize(*WINDOW_SIZE)
    from napari_cliprl.io.sample import synthetic_clip

    clip = synthetic_clip(n_frames=frames, size=SAMPLE_SIZE)
    viewer.add_image(clip.frames, name="synthetic clip", rgb=True)
    truth = viewer.add_labels(clip.labels, name="ground truth", **schema_layer_kwargs(clip.schema))
    truth.visible = False
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget._data.set_range("all frames")
    if steps is not None:
        widget._model.set_steps(steps)
    widget.run()
    return viewer, widget


def wait_for(widget: Any, timeout: float) -> bool:
    """Process Qt events until the widget's run has finished; False on timeout."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.monotonic() + timeout
    while widget.is_running and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)
    return not widget.is_running


def settle(rounds: int = 10) -> None:
    """Let Qt draw docks and canvases before a screenshot."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    for _ in range(rounds):
        app.processEvents()
        time.sleep(0.03)


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
    status = widget._run.status()
    viewer.dims.set_current_step(0, min(3, frames - 1))
    settle()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(screenshot), canvas_only=False)
    viewer.close()
    print(f"cliprl demo: {status} Screenshot saved to {screenshot}")
    if not finished:
        print(f"cliprl demo: error: the run did not finish within {timeout:g} s", file=sys.stderr)
        return 1
    return 0 if status.startswith("Done") else 1
