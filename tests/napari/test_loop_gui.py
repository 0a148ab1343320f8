"""Closing the loop in the annotator: fine-tune, suggestions, evaluation, propagation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cliprl_gui import (
    N_FRAMES,
    RUN_TIMEOUT_MS,
    STEPS,
    FixedCache,
    add_clip,
    make_widget,
    n_records,
    wait_run,
)

from napari_cliprl.annotation.finetune_job import LINEAGE_FILE
from napari_cliprl.metrics import evaluate_frames

pytestmark = pytest.mark.gui


def wait_finetune(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget._loop.is_finetuning, timeout=RUN_TIMEOUT_MS)


def review(widget, viewer, frame: int) -> None:
    viewer.dims.set_current_step(0, frame)
    widget.accept_step(0)  # step 0 differs from the last step: "corrected" changes


def test_finetune_swaps_model_and_reruns_only_unreviewed_frames(annotator, qtbot):
    viewer, widget = annotator
    for frame in (0, 2):
        review(widget, viewer, frame)
    session = widget.session
    kept = {i: np.asarray(session.array("corrected")[i]).copy() for i in (0, 2)}
    loop = widget._loop
    assert "cliprl finetune --data" in loop.finetune.command()
    assert "ft-001" in loop.finetune.command()
    loop.finetune.set_budget(epochs=1, rl_iters=1)
    loop.finetune.set_device("cpu")
    before = n_records()
    loop.finetune._start_button.click()
    assert loop.is_finetuning
    wait_finetune(qtbot, widget)
    from napari.utils.notifications import notification_manager

    messages = [n.message for n in notification_manager.records[before:]]
    assert any("Fine-tuning on the CPU (2 frames): about" in m for m in messages)
    checkpoint = session.folder / "checkpoints" / "ft-001"
    assert widget._model.spec().checkpoint == str(checkpoint), loop.finetune.status()
    lineage = json.loads((checkpoint / LINEAGE_FILE).read_text())
    assert lineage["frames"] == [0, 2] and lineage["base_architecture"] == "tiny-test"
    assert loop.finetune._plot.loss  # the live curve received the losses
    assert loop.finetune._rerun_button.isEnabled()

    loop.finetune._rerun_button.click()
    wait_run(qtbot, widget)
    session = widget.session
    assert session.info.checkpoint == str(checkpoint)
    assert session.predicted == [1, 3]  # only the unreviewed frames were re-run
    for i, labels in kept.items():
        np.testing.assert_array_equal(np.asarray(session.array("corrected")[i]), labels)
    last = np.asarray(session.array(f"step {session.steps}")[1])
    np.testing.assert_array_equal(np.asarray(session.array("corrected")[1]), last)


def test_cancelled_finetune_keeps_the_previous_model(annotator, qtbot):
    viewer, widget = annotator
    review(widget, viewer, 1)
    loop = widget._loop
    spec = widget._model.spec()
    loop.finetune.set_budget(epochs=200, rl_iters=500)
    loop.finetune.set_device("cpu")
    loop.start_finetune()
    qtbot.waitUntil(lambda: len(loop._history) >= 1, timeout=RUN_TIMEOUT_MS)
    loop.finetune._cancel_button.click()
    wait_finetune(qtbot, widget)
    assert widget._model.spec() == spec  # still the tiny-test architecture, no checkpoint
    assert "cancelled" in loop.finetune.status()
    assert not loop.finetune._rerun_button.isEnabled()
    assert loop.finetune._start_button.isEnabled()


def test_suggestions_change_after_review(annotator):
    viewer, widget = annotator
    session = widget.session
    assert np.isfinite(session.uncertainty()).all()  # stored for every predicted frame
    loop = widget._loop
    first = loop.next_suggested()
    assert viewer.dims.current_step[0] == first
    assert loop.suggest.ranking_text().startswith(f"frame {first}")
    widget.accept_step()
    assert session.is_reviewed(first)
    second = loop.next_suggested()
    assert second != first and second is not None
    assert f"frame {first}" not in loop.suggest.ranking_text()
    stored = json.loads((session.folder / "session.json").read_text())["uncertainty"]
    assert sorted(int(k) for k in stored) == list(range(N_FRAMES))


def test_evaluation_shows_table_and_chart_with_ground_truth(annotator, qtbot, small_clip):
    from napari_cliprl._napari._layers import labels_layer_data

    viewer, widget = annotator
    data, kwargs, _ = labels_layer_data(small_clip.labels, small_clip.schema, "ground truth")
    viewer.add_labels(data, **kwargs)
    loop = widget._loop
    assert loop.evaluate.truth_layer() == "ground truth"
    loop.evaluate._evaluate_button.click()
    qtbot.waitUntil(lambda: not loop.is_evaluating, timeout=RUN_TIMEOUT_MS)
    shown = loop.evaluate.table_values()
    layers = ["zero-shot", *(f"step {t}" for t in range(STEPS + 1))]
    assert list(shown) == layers
    session, k = widget.session, small_clip.schema.num_classes
    for name in layers:
        preds = [np.asarray(session.array(name)[i]) for i in range(N_FRAMES)]
        expected = evaluate_frames(preds, small_clip.labels, k)
        assert shown[name] == pytest.approx(
            [expected[c] for c in ("challenge_iou", "iou", "mciou", "miou")], nan_ok=True
        )
    assert list(loop.evaluate._chart.series) == layers
    assert loop.evaluate._chart.classes  # grouped bars for the classes present
    assert loop.evaluate.status().startswith("4 frames")


class PriorPredictor:
    """Accepts ``prior=``: fills every step with the prior + 1 (or 1 without one)."""

    def __init__(self) -> None:
        self.priors: list[np.ndarray | None] = []

    def predict(self, frame, steps=None, key=None, prior=None, prior_weight=None):
        from types import SimpleNamespace

        self.priors.append(prior)
        h, w = frame.shape[:2]
        value = 1 if prior is None else int(prior[0, 0]) + 1
        maps = [np.full((h, w), value, np.uint8) for _ in range((steps or 0) + 1)]
        return SimpleNamespace(zero_shot=np.zeros((h, w), np.uint8), steps=maps, entropy=[0.5])


def test_propagation_option_passes_previous_frame(
    make_napari_viewer, qtbot, predictors, small_clip, tmp_path
):
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    predictor = PriorPredictor()
    widget = make_widget(viewer, FixedCache(predictor), tmp_path / "s")
    widget._run.set_propagate(True)
    widget.run()
    wait_run(qtbot, widget)
    assert predictor.priors[0] is None and all(p is not None for p in predictor.priors[1:])
    corrected = widget.session.array("corrected")
    assert [int(corrected[i][0, 0]) for i in range(N_FRAMES)] == [1, 2, 3, 4]

    widget._predictors = predictors  # the real tiny model, with or without prior= support
    before = n_records()
    widget.run()
    wait_run(qtbot, widget)
    from napari.utils.notifications import notification_manager

    assert widget.session.predicted == list(range(N_FRAMES))
    messages = [n.message for n in notification_manager.records[before:]]
    # every predictor takes a prior (the Predictor protocol): no "predicted independently"
    assert not any("predicted independently" in m for m in messages)
