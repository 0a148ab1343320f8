"""Propagating corrections from the dock: a Run predicts from the reviewed frames, and
reviewing a frame re-proposes its unreviewed neighbours in a worker (the "Propagate
corrections (optical flow)" box, on by default); the ``propagated`` layer shows what optical
flow carried. Reviewed frames are never touched, one writer at a time, the window keeps
turning."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from cliprl_gui import (
    N_FRAMES,
    STEPS,
    TIMEOUT_MS,
    FixedCache,
    add_clip,
    click,
    click_box,
    make_dock,
    paint,
    run_all,
    session_layer_names,
    wait_idle,
)
from qtpy.QtCore import QTimer

from napari_cliprl._napari._session_layers import layer_order

pytestmark = pytest.mark.gui
LAST = f"step {STEPS}"
PAINTED = 4  # kidney-parenchyma: never proposed by the stand-in model


class CarryingPredictor:
    """Stands in for a fusion model that trusts the propagation: with a context every step is
    the carried labels (255 -> 1), without one class 1 everywhere. Records which frames it
    predicted with which context, in which thread, and how many predictions overlapped."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls: list[tuple[int, object, bool]] = []  # (frame, context, on main thread)
        self.busy = self.most_at_once = 0
        self._lock = threading.Lock()

    def predict(self, frame, steps=None, key=None, context=None):
        with self._lock:
            self.busy += 1
            self.most_at_once = max(self.most_at_once, self.busy)
        time.sleep(self.seconds)
        main = threading.current_thread() is threading.main_thread()
        self.calls.append((key[1], context, main))
        h, w = frame.shape[:2]
        labels = np.ones((h, w), np.uint8)
        if context is not None:
            carried = context.propagated
            labels = np.where(carried == 255, 1, carried).astype(np.uint8)
        with self._lock:
            self.busy -= 1
        maps = [labels.copy() for _ in range((steps or 0) + 1)]
        return SimpleNamespace(zero_shot=labels.copy(), steps=maps, entropy=[0.5] * len(maps))

    def frames_since(self, n: int) -> list[int]:
        return [i for i, _, _ in self.calls[n:]]


def dock_with(make_napari_viewer, qtbot, small_clip, tmp_path, predictor):
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_dock(viewer, qtbot, FixedCache(predictor), tmp_path / "s")
    run_all(qtbot, widget)
    return viewer, widget


def layer(viewer, name: str, i: int) -> np.ndarray:
    return np.asarray(viewer.layers[name].data[i]).copy()


def test_painting_a_frame_re_proposes_its_neighbours_in_a_worker(
    make_napari_viewer, qtbot, small_clip, tmp_path
):
    predictor = CarryingPredictor(seconds=0.2)
    viewer, widget = dock_with(make_napari_viewer, qtbot, small_clip, tmp_path, predictor)
    run = widget.sections.run
    box = run.propagate_box
    assert box.isChecked() and box.text() == "Propagate corrections (optical flow)"
    assert "optical flow" in box.toolTip() and "fused by the model" in box.toolTip()
    assert "propagated" not in viewer.layers  # nothing reviewed, nothing carried yet
    before = {i: layer(viewer, LAST, i) for i in range(N_FRAMES)}
    n = len(predictor.calls)
    seen: list[tuple[bool, int]] = []
    timer = QTimer()
    timer.timeout.connect(
        lambda: seen.append((widget.controller.reproposer.active, len(predictor.calls) - n))
    )
    timer.start(20)

    paint(viewer, 1, PAINTED)  # frame 1 becomes reviewed
    correction = layer(viewer, "corrected", 1)
    assert widget.controller.session.reviewed == [1]
    assert widget.controller.reproposer.active  # started by the paint, not by a click
    qtbot.waitUntil(lambda: run.status().startswith("Re-proposed"), timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget)
    timer.stop()

    assert run.status() == "Re-proposed 3 frames from frame 1's correction."
    assert sorted(predictor.frames_since(n)) == [0, 2, 3]
    assert not any(main for _, _, main in predictor.calls[n:])  # all in a worker thread
    # the event loop kept turning while the worker re-proposed frame after frame
    assert any(active and 0 < done < 3 for active, done in seen)
    np.testing.assert_array_equal(layer(viewer, "corrected", 1), correction)  # untouched
    for i in (0, 2, 3):  # the neighbours moved toward the correction
        after = layer(viewer, LAST, i)
        assert (before[i] == PAINTED).sum() == 0 and (after == PAINTED).sum() > 0
        np.testing.assert_array_equal(layer(viewer, "corrected", i), after)  # seeded
    # the propagated layer: after the image, before zero-shot, showing what flow carried
    session = widget.controller.session
    assert session_layer_names(viewer) == ["clip", *layer_order(session)]
    assert layer_order(session)[:2] == ["propagated", "zero-shot"]
    carried = {i: context.propagated for i, context, _ in predictor.calls[n:]}
    for i in (0, 2, 3):
        np.testing.assert_array_equal(layer(viewer, "propagated", i), carried[i])
    assert (layer(viewer, "propagated", 1) == 255).all()  # the reviewed frame: nothing
    assert not viewer.layers["propagated"].editable
    assert viewer.layers["propagated"].colormap.map(np.array([255]))[0][3] == 0  # clear
    assert (session.folder / "flow.zarr").is_dir()  # flows cached in the session


def test_with_the_box_off_painting_re_proposes_nothing(
    make_napari_viewer, qtbot, small_clip, tmp_path
):
    predictor = CarryingPredictor()
    viewer, widget = dock_with(make_napari_viewer, qtbot, small_clip, tmp_path, predictor)
    run = widget.sections.run
    click_box(qtbot, run.propagate_box)
    assert not run.propagate_box.isChecked()
    before = {i: layer(viewer, LAST, i) for i in range(N_FRAMES)}
    n, status = len(predictor.calls), run.status()
    paint(viewer, 1, PAINTED)
    assert widget.controller.session.reviewed == [1]
    assert not widget.controller.reproposer.active and not widget.busy
    qtbot.wait(300)
    assert len(predictor.calls) == n and run.status() == status
    for i in range(N_FRAMES):
        np.testing.assert_array_equal(layer(viewer, LAST, i), before[i])
    assert "propagated" not in viewer.layers

    click_box(qtbot, run.propagate_box)  # on again: the next review re-proposes
    paint(viewer, 2, PAINTED)
    qtbot.waitUntil(lambda: run.status().startswith("Re-proposed"), timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget)
    assert predictor.frames_since(n) == [3]  # between frame 2 and the video's end
    assert run.status() == "Re-proposed 1 frame from frame 2's correction."


def test_reviews_queue_and_a_run_waits_never_two_writers(
    make_napari_viewer, qtbot, small_clip, tmp_path
):
    predictor = CarryingPredictor(seconds=0.25)
    viewer, widget = dock_with(make_napari_viewer, qtbot, small_clip, tmp_path, predictor)
    reproposer, run = widget.controller.reproposer, widget.sections.run
    n = len(predictor.calls)
    paint(viewer, 0, PAINTED)  # re-proposes 1, 2, 3
    paint(viewer, 3, PAINTED)  # waits for it
    assert reproposer.active and reproposer.queued == [3]
    qtbot.waitUntil(lambda: "from frame 3's" in run.status(), timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget)
    assert run.status() == "Re-proposed 2 frames from frame 3's correction."
    assert predictor.frames_since(n)[-2:] == [1, 2]
    assert predictor.most_at_once == 1

    kept = {i: layer(viewer, "corrected", i) for i in (0, 3)}
    n = len(predictor.calls)
    paint(viewer, 0, PAINTED + 1, at=(40, 50))  # an edit of a reviewed frame re-proposes
    qtbot.waitUntil(lambda: len(predictor.calls) > n, timeout=TIMEOUT_MS)
    click(qtbot, run.run_button)  # the Run cancels the re-proposal and starts after it
    wait_idle(qtbot, widget)
    assert run.status() == "Done: 2 frames predicted.", run.status()
    assert predictor.most_at_once == 1
    assert all(context is not None for _, context, _ in predictor.calls[n:])  # propagated
    np.testing.assert_array_equal(layer(viewer, "corrected", 3), kept[3])
    assert (layer(viewer, "corrected", 0) == PAINTED + 1).any()


def test_cancel_stops_a_re_proposal_and_what_waits(make_napari_viewer, qtbot, small_clip, tmp_path):
    predictor = CarryingPredictor(seconds=0.5)
    viewer, widget = dock_with(make_napari_viewer, qtbot, small_clip, tmp_path, predictor)
    reproposer, run = widget.controller.reproposer, widget.sections.run
    assert not run.cancel_button.isEnabled()
    n = len(predictor.calls)
    paint(viewer, 0, PAINTED)  # re-proposes 1, 2, 3
    paint(viewer, 3, PAINTED)  # waits for it
    qtbot.waitUntil(lambda: len(predictor.calls) > n, timeout=TIMEOUT_MS)
    assert run.cancel_button.isEnabled() and run.run_button.isEnabled()
    click(qtbot, run.cancel_button)
    wait_idle(qtbot, widget)
    assert run.status().startswith("Re-proposal from frame 0 stopped after"), run.status()
    assert len(predictor.calls) - n < 3 and reproposer.queued == []  # frame 3's never ran
    assert not run.cancel_button.isEnabled() and run.run_button.isEnabled()


def test_the_real_model_re_proposes_from_a_painted_frame(annotator, qtbot):
    viewer, widget = annotator  # the tiny-test model, through the PredictorCache
    session = widget.controller.session
    before = {i: layer(viewer, LAST, i) for i in range(N_FRAMES)}
    paint(viewer, 1, PAINTED)
    correction = layer(viewer, "corrected", 1)
    qtbot.waitUntil(lambda: "propagated" in viewer.layers, timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget)
    assert widget.sections.run.status() == "Re-proposed 3 frames from frame 1's correction."
    np.testing.assert_array_equal(layer(viewer, "corrected", 1), correction)
    np.testing.assert_array_equal(layer(viewer, LAST, 1), before[1])  # reviewed: untouched
    carried = layer(viewer, "propagated", 2)
    assert (carried == PAINTED).sum() > 0  # the painted blob, carried to the next frame
    # the proposal a user sees on the next frame now shows the blob where it was carried
    proposal = layer(viewer, LAST, 2)
    blob = carried == PAINTED
    assert (proposal[blob] == PAINTED).mean() > 0.9
    assert (before[2][blob] == PAINTED).mean() < 0.5
    assert session_layer_names(viewer) == ["clip", *layer_order(session)]


def test_closing_the_dock_during_a_re_proposal_starts_nothing_more(
    make_napari_viewer, qtbot, small_clip, tmp_path
):
    """The re-proposal outlives the dock: when it ends, the frame that waited is dropped
    instead of asking the deleted check box whether to go on (an error in Qt's event loop,
    which fails the test)."""
    predictor = CarryingPredictor(seconds=0.5)
    viewer, widget = dock_with(make_napari_viewer, qtbot, small_clip, tmp_path, predictor)
    reproposer = widget.controller.reproposer
    paint(viewer, 0, PAINTED)  # re-proposes 1, 2, 3
    paint(viewer, 3, PAINTED)  # waits for it
    assert reproposer.active and reproposer.queued == [3]
    gone = []
    widget.destroyed.connect(lambda *_: gone.append(True))
    viewer.window.remove_dock_widget("all")
    widget.deleteLater()
    qtbot.waitUntil(lambda: bool(gone), timeout=TIMEOUT_MS)
    assert reproposer.active  # deleted while it still ran
    n = len(predictor.calls)
    qtbot.waitUntil(lambda: not reproposer.active, timeout=TIMEOUT_MS)
    qtbot.wait(1000)  # time for the waiting frame's re-proposal, were it started
    assert reproposer.queued == [] and not reproposer.active
    assert len(predictor.calls) - n <= 3  # the one running finished; nothing new began
