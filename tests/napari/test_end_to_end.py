"""One user's whole session, through the plugin's reader and the dock's controls only:

open a video -> click Run -> paint on "corrected" with the brush -> the frame is reviewed ->
click Export -> click Fine-tune -> click Re-run unreviewed frames -> close the viewer ->
open the video again -> click Restore -> the edits and reviewed marks are back.
"""

from __future__ import annotations

import numpy as np
import pytest
from cliprl_gui import (
    N_FRAMES,
    SIZE,
    TIMEOUT_MS,
    choose,
    click,
    paint,
    type_text,
    wait_idle,
)

from napari_cliprl.io import read_labeled, write_video
from napari_cliprl.io.sample import synthetic_clip

pytestmark = pytest.mark.gui
PLUGIN, DOCK = "napari-cliprl", "CLIP-RL annotator"


def open_with_dock(make_napari_viewer, video):
    """A new viewer with the video opened by the plugin's reader and the dock added."""
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(video), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, DOCK)
    return viewer, widget, image


def test_a_whole_session_from_the_controls(make_napari_viewer, qtbot, tmp_path):
    video = tmp_path / "case.mp4"
    write_video(video, synthetic_clip(n_frames=N_FRAMES, size=SIZE, seed=2).frames)
    viewer, widget, image = open_with_dock(make_napari_viewer, video)
    s = widget.sections
    assert s.data.image_combo.currentText() == image.name == "case"
    model = s.model.controls
    choose(model["Device"], "cpu")  # the default model: the shipped demo checkpoint
    choose(s.data.frames_combo, "all frames")

    click(qtbot, s.run.run_button)
    wait_idle(qtbot, widget)
    assert s.run.status() == f"Done: {N_FRAMES} frames predicted.", s.run.status()
    session = widget.controller.session
    assert session.folder == tmp_path / "case.mp4.cliprl-session"

    s.review.controls["Paint class"].setCurrentText("instrument-shaft")
    paint(viewer, 1, viewer.layers["corrected"].selected_label)
    painted = np.asarray(viewer.layers["corrected"].data[1]).copy()
    assert painted[20, 30] == 1
    assert session.reviewed == [1] and s.review.count_text() == f"1 / {N_FRAMES} reviewed"

    out = tmp_path / "export"
    type_text(qtbot, s.export.controls["Folder"], str(out))
    click(qtbot, s.export.controls["Export reviewed frames"])
    wait_idle(qtbot, widget)
    assert read_labeled(out).indices == [1]

    finetune = s.finetune.controls
    finetune["Epochs"].setValue(1)
    finetune["RL iterations"].setValue(1)
    choose(finetune["Device"], "cpu")
    click(qtbot, finetune["Fine-tune"])
    wait_idle(qtbot, widget)
    checkpoint = session.folder / "checkpoints" / "ft-001"
    assert s.model.spec().checkpoint == str(checkpoint), s.finetune.status()

    click(qtbot, finetune["Re-run unreviewed frames"])
    qtbot.waitUntil(lambda: widget.busy, timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget)
    assert s.run.status() == f"Done: {N_FRAMES - 1} frames predicted."
    assert session.info.checkpoint == str(checkpoint)
    viewer.close()

    viewer, widget, _ = open_with_dock(make_napari_viewer, video)
    restore = widget.sections.data.restore_button
    qtbot.waitUntil(restore.isEnabled, timeout=TIMEOUT_MS)
    click(qtbot, restore)
    qtbot.waitUntil(lambda: "corrected" in viewer.layers, timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget)
    restored = widget.controller.session
    assert restored.reviewed == [1]
    assert widget.sections.review.count_text() == f"1 / {N_FRAMES} reviewed"
    np.testing.assert_array_equal(np.asarray(viewer.layers["corrected"].data[1]), painted)
    assert widget.sections.model.spec().checkpoint == str(checkpoint)
    assert [layer.name for layer in viewer.layers][0] == "case"
    assert [layer.name for layer in viewer.layers][-1] == "corrected"
