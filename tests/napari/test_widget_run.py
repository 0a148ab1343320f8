"""Running the annotator from its controls: Run, Cancel, the frames, steps, device, schema and
model pickers; step layers, colours, class names, streaming."""

from __future__ import annotations

import numpy as np
import pytest
from cliprl_gui import (
    N_FRAMES,
    STEPS,
    TIMEOUT_MS,
    FixedCache,
    SlowPredictor,
    add_clip,
    choose,
    click,
    click_box,
    error_messages,
    make_dock,
    n_records,
    run_all,
    session_layer_names,
    tiny_spec,
    type_text,
    wait_idle,
)
from qtpy.QtCore import QTimer

from napari_cliprl.schemas import get_schema

pytestmark = pytest.mark.gui


def proposals(steps: int) -> list[str]:
    return ["zero-shot", *(f"step {t}" for t in range(steps + 1))]


def test_run_click_yields_step_layers_with_schema_colours_and_names(annotator):
    viewer, widget = annotator
    expected = [*proposals(STEPS), "corrected"]
    assert session_layer_names(viewer) == ["clip", *expected]
    schema = get_schema("endovis2018")
    for name in expected:
        layer = viewer.layers[name]
        assert layer.data.shape == (N_FRAMES, 64, 80)
        assert layer.editable == (name == "corrected")
        np.testing.assert_allclose(layer.colormap.color_dict[1][:3], [0, 1, 0])  # shaft
        assert list(layer.features["name"][:3]) == schema.names[:3]
        assert layer.metadata["cliprl_schema"] == "endovis2018"
    session = widget.controller.session
    assert session.predicted == list(range(N_FRAMES))
    last = np.asarray(viewer.layers[f"step {STEPS}"].data[2])
    np.testing.assert_array_equal(np.asarray(viewer.layers["corrected"].data[2]), last)
    assert widget.sections.run.status() == "Done: 4 frames predicted."
    assert widget.sections.review.count_text() == "0 / 4 reviewed"
    assert widget.sections.model.status().startswith("Loaded tiny-test on cpu, 2 steps")


def test_frames_picker_current_frame_by_default_then_a_range(
    make_napari_viewer, qtbot, predictors, small_clip, tmp_path
):
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_dock(viewer, qtbot, predictors, tmp_path / "s", frames="current")
    data = widget.sections.data
    assert data.frames_combo.currentText() == "current frame"  # what a new user meets
    viewer.dims.set_current_step(0, 2)
    run_all(qtbot, widget)
    assert widget.controller.session.predicted == [2]
    assert widget.sections.run.status() == "Done: 1 frame predicted."
    choose(data.frames_combo, "frame range")
    start, stop = data.range_spins
    start.setValue(0)
    stop.setValue(1)
    run_all(qtbot, widget)
    assert widget.controller.session.predicted == [0, 1, 2]


def test_steps_picker_step_layers_follow_t(annotator, qtbot):
    viewer, widget = annotator
    steps = widget.sections.model.controls["Steps"]
    steps.setValue(3)
    run_all(qtbot, widget)
    assert session_layer_names(viewer) == ["clip", *proposals(3), "corrected"]
    viewer.dims.set_current_step(0, 1)
    click(qtbot, widget.sections.review.controls["Accept step"])  # reviews frame 1
    kept = np.asarray(viewer.layers["corrected"].data[1]).copy()
    steps.setValue(0)  # as a fine-tune choosing T* = 0 does
    run_all(qtbot, widget)
    # a frame is reviewed: the run propagated it, so the "propagated" layer leads
    assert session_layer_names(viewer) == ["clip", "propagated", *proposals(0), "corrected"]
    session = widget.controller.session
    assert session.steps == 0 and session.predicted == list(range(N_FRAMES))
    np.testing.assert_array_equal(np.asarray(viewer.layers["corrected"].data[1]), kept)
    step0 = np.asarray(viewer.layers["step 0"].data[2])
    np.testing.assert_array_equal(np.asarray(viewer.layers["corrected"].data[2]), step0)
    assert widget.sections.review.controls["Step"].maximum() == 0


def test_results_stream_in_without_blocking_and_cancel_stops(
    make_napari_viewer, qtbot, small_clip, tmp_path
):
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    slow = SlowPredictor(0.3)
    widget = make_dock(viewer, qtbot, FixedCache(slow), tmp_path / "s")
    run = widget.sections.run
    seen: list[tuple[int, int]] = []

    def look() -> None:
        session = widget.controller.session
        seen.append((run.progress()[0], len(session.predicted) if session else 0))

    timer = QTimer()
    timer.timeout.connect(look)
    timer.start(20)
    run_all(qtbot, widget)
    timer.stop()
    # the event loop kept turning during the run: frames and progress showed one by one
    assert any(0 < n < N_FRAMES for _, n in seen)
    assert any(0 < done < N_FRAMES for done, _ in seen)  # the bar counted them
    assert widget.controller.session.predicted == list(range(N_FRAMES))

    slow.seconds, slow.calls = 0.4, 0
    click(qtbot, run.run_button)
    assert not run.run_button.isEnabled()
    qtbot.waitUntil(lambda: slow.calls >= 1, timeout=TIMEOUT_MS)
    click(qtbot, run.cancel_button)
    wait_idle(qtbot, widget)
    assert slow.calls < N_FRAMES  # stopped after the frame in progress
    assert run.status().startswith("Cancelled after")
    assert run.run_button.isEnabled() and not run.cancel_button.isEnabled()


def test_failed_model_changes_nothing_and_the_next_good_one_runs(
    make_napari_viewer, qtbot, predictors, small_clip, tmp_path
):
    """Good model -> bad checkpoint path -> schema mismatch -> unavailable device -> good."""
    from napari_cliprl.annotation.models import PredictorCache
    from napari_cliprl.model.build import save_checkpoint

    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_dock(viewer, qtbot, PredictorCache(), tmp_path / "s")
    run_all(qtbot, widget)
    session = widget.controller.session
    before = {n: np.asarray(session.array(n)[:]).copy() for n in session.layer_names}
    model = widget.sections.model.controls

    def fails(expected: str) -> None:
        since = n_records()
        run_all(qtbot, widget)
        assert any(expected in m for m in error_messages(since)), error_messages(since)
        assert expected in widget.sections.run.status()
        assert session.predicted == list(range(N_FRAMES))  # every proposal is still there
        assert session_layer_names(viewer) == ["clip", *proposals(STEPS), "corrected"]
        for name, data in before.items():
            np.testing.assert_array_equal(np.asarray(session.array(name)[:]), data)

    choose(model["Model from"], "checkpoint")
    type_text(qtbot, model["Checkpoint"], str(tmp_path / "no-such-checkpoint"))
    fails("does not exist")
    checkpoint = save_checkpoint(predictors.get(tiny_spec()).model, tmp_path / "ckpt")
    type_text(qtbot, model["Checkpoint"], str(checkpoint))
    assert model["Schema"].currentText() == "endovis2018"  # taken from the checkpoint
    choose(model["Schema"], "endovis2017-parts")
    fails("does not match the requested schema 'endovis2017-parts'")
    choose(model["Schema"], "endovis2018")
    choose(model["Device"], "cuda")
    fails("not available here")
    choose(model["Device"], "cpu")
    model["Steps"].setValue(STEPS)
    run_all(qtbot, widget)
    assert widget.sections.run.status() == "Done: 4 frames predicted."
    assert session.info.checkpoint == str(checkpoint)


def test_random_weights_are_an_explicit_choice(
    make_napari_viewer, qtbot, predictors, small_clip, tmp_path
):
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_dock(viewer, qtbot, predictors, tmp_path / "s")
    section = widget.sections.model
    model = section.controls
    # the architectures are listed once the model code has been imported in the background
    qtbot.waitUntil(lambda: model["Architecture"].findText("ViT-B-16") >= 0, timeout=TIMEOUT_MS)
    choose(model["Architecture"], "ViT-B-16")
    assert "needs CLIP weights" in section.status()  # the refusal, in the dock at once
    since = n_records()
    run_all(qtbot, widget)
    assert any("needs CLIP weights" in m for m in error_messages(since))
    assert "needs CLIP weights" in widget.sections.run.status()
    assert widget.controller.session is None  # nothing was created
    click_box(qtbot, model["random weights (testing)"])
    assert section.spec().clip_weights == "random" and section.status() == ""
    assert not model["CLIP weights"].isEnabled()
