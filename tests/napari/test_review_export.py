"""Reviewing and correcting from the dock's controls: edits mark frames reviewed and undo
takes the mark back, Accept step, Un-review, Next unreviewed, Paint class, suggestions, and
Export with its overwrite question."""

from __future__ import annotations

import numpy as np
import pytest
from cliprl_gui import (
    STEPS,
    DialogAnswer,
    choose,
    click,
    click_box,
    paint,
    type_text,
    wait_idle,
)
from qtpy.QtCore import Qt

from napari_cliprl.annotation.suggest import suggest_frames
from napari_cliprl.io import read_labeled

pytestmark = pytest.mark.gui


def reviewed(widget) -> list[int]:
    return widget.controller.session.reviewed


def test_an_edit_marks_the_frame_reviewed_and_its_undo_takes_it_back(annotator, qtbot):
    viewer, widget = annotator
    corrected = viewer.layers["corrected"]
    before = np.asarray(corrected.data[1]).copy()
    paint(viewer, 1, 4)
    assert reviewed(widget) == [1]
    assert widget.sections.review.count_text() == "1 / 4 reviewed"
    assert np.asarray(corrected.data[1])[20, 30] == 4
    paint(viewer, 1, 5, at=(40, 50))  # a second edit of a reviewed frame
    corrected.undo()
    assert reviewed(widget) == [1]  # the first edit still stands
    corrected.undo()
    np.testing.assert_array_equal(np.asarray(corrected.data[1]), before)
    assert reviewed(widget) == []
    assert widget.sections.review.count_text() == "0 / 4 reviewed"
    corrected.redo()
    assert reviewed(widget) == [1]

    # Ctrl+Z on the canvas, as a person undoes
    viewer.layers.selection.active = corrected
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: reviewed(widget) == [], timeout=10_000)
    np.testing.assert_array_equal(np.asarray(corrected.data[1]), before)


def test_accept_step_copies_it_undoably_and_unreview_takes_the_mark_back(annotator, qtbot):
    viewer, widget = annotator
    review = widget.sections.review.controls
    corrected = viewer.layers["corrected"]
    viewer.dims.set_current_step(0, 3)
    review["Step"].setValue(0)
    click(qtbot, review["Accept step"])
    step0 = np.asarray(viewer.layers["step 0"].data[3])
    np.testing.assert_array_equal(np.asarray(corrected.data[3]), step0)
    assert reviewed(widget) == [3]
    if not np.array_equal(step0, np.asarray(viewer.layers[f"step {STEPS}"].data[3])):
        corrected.undo()  # the copy was one edit: undoing it un-reviews the frame
        assert reviewed(widget) == []
        click(qtbot, review["Accept step"])
    viewer.dims.set_current_step(0, 2)
    review["Step"].setValue(STEPS)
    click(qtbot, review["Accept step"])  # the last step is already there: reviewed as is
    assert reviewed(widget) == [2, 3]
    click(qtbot, review["Un-review frame"])
    assert reviewed(widget) == [3]
    assert widget.sections.review.count_text() == "1 / 4 reviewed"


def test_next_unreviewed_and_paint_class(annotator, qtbot):
    viewer, widget = annotator
    review = widget.sections.review.controls
    paint(viewer, 1, 4)
    viewer.dims.set_current_step(0, 0)
    click(qtbot, review["Next unreviewed frame"])
    assert viewer.dims.current_step[0] == 2  # frame 1 is reviewed
    choose(review["Paint class"], "kidney-parenchyma")
    corrected = viewer.layers["corrected"]
    assert corrected.selected_label == 4
    assert viewer.layers.selection.active is corrected
    corrected.selected_label = 2  # napari's own label control: the picker follows
    assert review["Paint class"].currentText() == "instrument-clasper"


def test_next_suggested_and_spread(annotator, qtbot):
    viewer, widget = annotator
    suggest = widget.sections.suggest
    controls = suggest.controls
    session = widget.controller.session
    assert np.isfinite(session.uncertainty()).all()
    click(qtbot, controls["Next suggested frame"])
    first = viewer.dims.current_step[0]
    assert suggest.ranking_text().startswith(f"frame {first}")
    click(qtbot, widget.sections.review.controls["Accept step"])
    assert session.is_reviewed(first)
    assert f"frame {first}" not in suggest.ranking_text()
    click(qtbot, controls["Next suggested frame"])
    assert viewer.dims.current_step[0] != first
    click_box(qtbot, controls["spread over the video"])
    assert controls["weight"].isEnabled()
    controls["weight"].setValue(10.0)
    assert suggest.ranking_text() == shown(suggest_frames(session, 10.0))
    click_box(qtbot, controls["spread over the video"])
    assert not controls["weight"].isEnabled()
    assert suggest.ranking_text() == shown(suggest_frames(session, 0.0))


def shown(frames: list[int]) -> str:
    return ", ".join(f"frame {i}" for i in frames[:5])


def test_export_click_writes_reviewed_frames_and_asks_before_overwriting(
    annotator, qtbot, tmp_path
):
    viewer, widget = annotator
    export = widget.sections.export.controls
    paint(viewer, 0, 4)
    viewer.dims.set_current_step(0, 2)
    click(qtbot, widget.sections.review.controls["Accept step"])
    out = tmp_path / "export"
    type_text(qtbot, export["Folder"], str(out))
    click(qtbot, export["Export reviewed frames"])
    wait_idle(qtbot, widget)
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["frame000.png", "frame002.png"]
    assert sorted(p.name for p in (out / "left_frames").iterdir()) == [
        "frame000.png",
        "frame002.png",
    ]
    assert widget.sections.export.status() == f"Exported 2 reviewed frames to {out}."
    seq = read_labeled(out)
    assert seq.reviewed == [True, True] and seq.indices == [0, 2]
    np.testing.assert_array_equal(seq.labels(0), np.asarray(viewer.layers["corrected"].data[0]))

    stamp = (out / "labels" / "frame000.png").stat().st_mtime_ns
    answer = DialogAnswer("No")
    click(qtbot, export["Export reviewed frames"])
    qtbot.waitUntil(lambda: len(answer.texts) == 1, timeout=60_000)
    wait_idle(qtbot, widget)
    assert "exists" in answer.texts[0]
    assert (out / "labels" / "frame000.png").stat().st_mtime_ns == stamp
    assert "no file was overwritten" in widget.sections.export.status()

    answer = DialogAnswer("Yes")
    click(qtbot, export["Export reviewed frames"])
    qtbot.waitUntil(lambda: len(answer.texts) == 1, timeout=60_000)
    qtbot.waitUntil(lambda: "Exported" in widget.sections.export.status(), timeout=60_000)
    wait_idle(qtbot, widget)
    assert (out / "labels" / "frame000.png").stat().st_mtime_ns != stamp
