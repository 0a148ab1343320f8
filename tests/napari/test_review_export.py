"""Reviewing, correcting, exporting and restoring a session."""

from __future__ import annotations

import numpy as np
import pytest
from cliprl_gui import N_FRAMES, STEPS, add_clip, make_widget, wait_export, wait_run

from napari_cliprl.io import read_labeled

pytestmark = pytest.mark.gui


def _paint(viewer, frame: int, label: int) -> None:
    corrected = viewer.layers["corrected"]
    viewer.dims.set_current_step(0, frame)
    corrected.brush_size = 9
    corrected._begin_stroke()
    corrected.paint((frame, 20, 30), label)
    corrected._commit_stroke()


def test_an_edit_marks_the_frame_reviewed_and_undo_works(annotator):
    viewer, widget = annotator
    corrected = viewer.layers["corrected"]
    before = np.asarray(corrected.data[1]).copy()
    _paint(viewer, 1, 4)
    assert widget.session.reviewed == [1]
    assert widget._review.count_text() == "1 / 4 reviewed"
    assert np.asarray(corrected.data[1])[20, 30] == 4
    corrected.undo()
    np.testing.assert_array_equal(np.asarray(corrected.data[1]), before)
    assert widget.next_unreviewed() == 2
    assert viewer.dims.current_step[0] == 2


def test_accept_step_copies_it_undoably(annotator):
    viewer, widget = annotator
    corrected = viewer.layers["corrected"]
    viewer.dims.set_current_step(0, 3)
    corrected.data[3] = 0  # make the copy visible
    widget.accept_step(0)
    step0 = np.asarray(viewer.layers["step 0"].data[3])
    np.testing.assert_array_equal(np.asarray(corrected.data[3]), step0)
    assert widget.session.is_reviewed(3)
    if step0.any():
        corrected.undo()
        assert not np.asarray(corrected.data[3]).any()


def test_export_writes_reviewed_frames_only_and_refuses_to_overwrite(annotator, qtbot, tmp_path):
    viewer, widget = annotator
    _paint(viewer, 0, 4)
    viewer.dims.set_current_step(0, 2)
    widget.accept_step(STEPS)
    out = tmp_path / "export"
    widget.export(str(out))
    wait_export(qtbot, widget)
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["frame000.png", "frame002.png"]
    assert sorted(p.name for p in (out / "left_frames").iterdir()) == [
        "frame000.png",
        "frame002.png",
    ]
    seq = read_labeled(out)
    assert seq.reviewed == [True, True] and seq.indices == [0, 2]
    np.testing.assert_array_equal(seq.labels(0), np.asarray(viewer.layers["corrected"].data[0]))

    asked = []
    widget._export._confirm_overwrite = lambda message: asked.append(message) or False
    stamp = (out / "labels" / "frame000.png").stat().st_mtime_ns
    widget.export(str(out))
    wait_export(qtbot, widget)
    assert len(asked) == 1 and "exists" in asked[0]
    assert (out / "labels" / "frame000.png").stat().st_mtime_ns == stamp

    widget._export._confirm_overwrite = lambda message: True
    widget.export(str(out))
    wait_export(qtbot, widget)
    qtbot.waitUntil(lambda: widget._export_worker is None, timeout=10_000)
    assert (out / "labels" / "frame000.png").stat().st_mtime_ns != stamp


def test_session_restores_edits_after_the_viewer_closes(
    make_napari_viewer, qtbot, predictors, small_clip, tmp_path
):
    folder = tmp_path / "session"
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_widget(viewer, predictors, folder)
    widget.run()
    wait_run(qtbot, widget)
    _paint(viewer, 1, 8)
    painted = np.asarray(viewer.layers["corrected"].data[1]).copy()
    viewer.close()

    viewer2 = make_napari_viewer()
    add_clip(viewer2, small_clip)
    widget2 = make_widget(viewer2, predictors, folder)
    assert widget2.restore_session() is True
    assert widget2.session.reviewed == [1]
    assert widget2._review.count_text() == f"1 / {N_FRAMES} reviewed"
    np.testing.assert_array_equal(np.asarray(viewer2.layers["corrected"].data[1]), painted)
    assert viewer2.layers["corrected"].editable


def test_reopening_a_video_offers_its_session(make_napari_viewer, qtbot, predictors, tmp_path):
    from napari.utils.notifications import notification_manager
    from test_plugin_io import _write_video

    video = tmp_path / "case.mp4"
    _write_video(video)
    viewer = make_napari_viewer()
    viewer.open(str(video), plugin="napari-cliprl")
    widget = make_widget(viewer, predictors)
    widget.run()
    wait_run(qtbot, widget)
    assert widget.session.folder == tmp_path / "case.mp4.cliprl-session"
    _paint(viewer, 2, 1)
    viewer.close()

    viewer2 = make_napari_viewer()
    make_widget(viewer2, predictors)
    before = len(notification_manager.records)
    viewer2.open(str(video), plugin="napari-cliprl")
    offers = [n for n in notification_manager.records[before:] if n.actions]
    assert len(offers) == 1 and "1 reviewed frames" in offers[0].message
    ((label, restore),) = offers[0].actions
    assert label == "Restore"
    restore(None)
    assert viewer2.layers["corrected"].data[2, 20, 30] == 1
