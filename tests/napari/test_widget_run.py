"""Running the annotator: step layers, colours, class names, streaming, cancel."""

from __future__ import annotations

import numpy as np
import pytest
from cliprl_gui import (
    N_FRAMES,
    STEPS,
    FixedCache,
    SlowPredictor,
    add_clip,
    error_messages,
    make_widget,
    n_records,
    tiny_spec,
    wait_run,
)
from qtpy.QtCore import QTimer

from napari_cliprl.schemas import get_schema

pytestmark = pytest.mark.gui


def test_run_yields_step_layers_with_schema_colours_and_names(annotator):
    viewer, widget = annotator
    expected = ["zero-shot", *(f"step {t}" for t in range(STEPS + 1)), "corrected"]
    assert [layer.name for layer in viewer.layers][-len(expected) :] == expected
    schema = get_schema("endovis2018")
    for name in expected:
        layer = viewer.layers[name]
        assert layer.data.shape == (N_FRAMES, 64, 80)
        assert layer.editable == (name == "corrected")
        colour = layer.colormap.color_dict[1]  # instrument-shaft: RGB 0, 255, 0
        np.testing.assert_allclose(colour[:3], [0, 1, 0])
        assert list(layer.features["name"][:3]) == schema.names[:3]
        assert layer.metadata["cliprl_schema"] == "endovis2018"
    session = widget.session
    assert session.predicted == list(range(N_FRAMES))
    last = np.asarray(viewer.layers[f"step {STEPS}"].data[2])
    np.testing.assert_array_equal(np.asarray(viewer.layers["corrected"].data[2]), last)
    assert widget._run.status().startswith("Done: 4 frames")
    assert widget._review.count_text() == "0 / 4 reviewed"
    widget.pick_class("kidney-parenchyma")  # the class picker sets the paint label by name
    assert viewer.layers["corrected"].selected_label == 4
    assert viewer.layers.selection.active is viewer.layers["corrected"]


def test_gui_stays_responsive_results_stream_in_and_cancel_stops(
    make_napari_viewer, qtbot, small_clip, tmp_path
):
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    slow = SlowPredictor(0.12)
    widget = make_widget(viewer, FixedCache(slow), tmp_path / "s")
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(len(widget.session.predicted)))
    widget.run()
    timer.start(20)
    assert widget.is_running
    wait_run(qtbot, widget, timeout=10_000)
    timer.stop()
    assert len(ticks) >= 10  # the event loop kept turning during the ~0.5 s run
    assert 0 < min(t for t in ticks if t) < N_FRAMES  # frames appeared one by one
    assert widget.session.predicted == list(range(N_FRAMES))

    slow.seconds, slow.calls = 0.3, 0
    widget.run()
    qtbot.waitUntil(lambda: slow.calls >= 1, timeout=5000)
    widget._run._cancel_button.click()
    wait_run(qtbot, widget, timeout=10_000)
    assert slow.calls < N_FRAMES  # stopped after the frame in progress
    assert widget._run.status().startswith("Cancelled after")
    assert widget._run._run_button.isEnabled()


def test_model_failures_are_notifications(
    make_napari_viewer, qtbot, predictors, small_clip, tmp_path
):
    from napari_cliprl.annotation.models import PredictorCache
    from napari_cliprl.model.build import save_checkpoint

    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_widget(viewer, PredictorCache(), tmp_path / "s")
    widget._model.set_checkpoint(str(tmp_path / "no-such-checkpoint"))
    before = n_records()
    widget.run()
    wait_run(qtbot, widget)
    messages = error_messages(before)
    assert len(messages) == 1 and "does not exist" in messages[0]
    assert "no-such-checkpoint" in widget._run.status()

    checkpoint = save_checkpoint(predictors.get(tiny_spec()).model, tmp_path / "ckpt")
    widget._model.set_checkpoint(str(checkpoint))
    assert widget._model.spec().schema == "endovis2018"  # taken from the checkpoint
    widget._model.set_schema("endovis2017-parts")
    widget._data.set_session_dir(str(tmp_path / "s2"))  # "s" holds endovis2018 labels
    before = n_records()
    widget.run()
    wait_run(qtbot, widget)
    (message,) = error_messages(before)
    assert "does not match the requested schema 'endovis2017-parts'" in message
    assert not widget.is_running and widget._run._run_button.isEnabled()
