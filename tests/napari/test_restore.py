"""A saved session is offered in the Data section for as long as it applies, Restore brings
it back, and running again without restoring never wipes it."""

from __future__ import annotations

import numpy as np
import pytest
from cliprl_gui import (
    N_FRAMES,
    STEPS,
    TIMEOUT_MS,
    add_clip,
    click,
    make_dock,
    messages,
    n_records,
    paint,
    run_all,
    session_layer_names,
    wait_idle,
)

pytestmark = pytest.mark.gui


def offered(widget) -> str:
    return widget.sections.data.restore_offer()


def test_restore_line_brings_back_edits_and_marks(
    make_napari_viewer, qtbot, predictors, small_clip, tmp_path
):
    folder = tmp_path / "session"
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_dock(viewer, qtbot, predictors, folder)
    assert offered(widget) == ""  # nothing saved yet
    run_all(qtbot, widget)
    paint(viewer, 1, 8)
    painted = np.asarray(viewer.layers["corrected"].data[1]).copy()
    assert offered(widget) == ""  # the session is the one shown
    viewer.close()

    viewer2 = make_napari_viewer()
    add_clip(viewer2, small_clip)
    since = n_records()
    widget2 = make_dock(viewer2, qtbot, predictors, folder)
    qtbot.waitUntil(lambda: offered(widget2) != "", timeout=TIMEOUT_MS)
    assert offered(widget2) == f"Saved session: 1 reviewed frame of {N_FRAMES}."
    assert not [m for m in messages(since) if "Restore" in m or "NotificationManager" in m]
    click(qtbot, widget2.sections.data.restore_button)
    qtbot.waitUntil(lambda: "corrected" in viewer2.layers, timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget2)
    assert widget2.controller.session.reviewed == [1]
    assert widget2.sections.review.count_text() == f"1 / {N_FRAMES} reviewed"
    np.testing.assert_array_equal(np.asarray(viewer2.layers["corrected"].data[1]), painted)
    assert viewer2.layers["corrected"].editable
    assert session_layer_names(viewer2)[-1] == "corrected"
    assert offered(widget2) == ""  # restored: nothing left to offer
    assert widget2.sections.model.spec().steps == STEPS


def test_run_without_restoring_keeps_the_saved_session(
    make_napari_viewer, qtbot, predictors, small_clip, tmp_path
):
    folder = tmp_path / "session"
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_dock(viewer, qtbot, predictors, folder)
    run_all(qtbot, widget)
    paint(viewer, 2, 8)
    painted = np.asarray(viewer.layers["corrected"].data[2]).copy()
    viewer.close()

    viewer2 = make_napari_viewer()
    add_clip(viewer2, small_clip)
    widget2 = make_dock(viewer2, qtbot, predictors, folder, frames="current")
    qtbot.waitUntil(lambda: offered(widget2) != "", timeout=TIMEOUT_MS)
    widget2.sections.model.controls["Steps"].setValue(STEPS + 1)  # another model setting
    viewer2.dims.set_current_step(0, 0)
    run_all(qtbot, widget2)  # Run, not Restore
    session = widget2.controller.session
    assert session.reviewed == [2]
    assert session.predicted == list(range(N_FRAMES))  # the other frames' proposals stayed
    np.testing.assert_array_equal(np.asarray(viewer2.layers["corrected"].data[2]), painted)
    assert offered(widget2) == ""
