"""Closing the loop from the dock's controls: Fine-tune (and Cancel), the command line and
Copy, Re-run unreviewed frames and Evaluate (propagation: test_propagation_gui)."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from cliprl_gui import (
    N_FRAMES,
    STEPS,
    TIMEOUT_MS,
    choose,
    click,
    messages,
    n_records,
    wait_idle,
)
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_cliprl._napari._session_layers import layer_order
from napari_cliprl.annotation.finetune_job import LINEAGE_FILE
from napari_cliprl.metrics import evaluate_frames

pytestmark = pytest.mark.gui


def review(qtbot, widget, viewer, frame: int) -> None:
    """Accept step 0 of ``frame`` (it differs from the last step: "corrected" changes)."""
    viewer.dims.set_current_step(0, frame)
    controls = widget.sections.review.controls
    controls["Step"].setValue(0)
    click(qtbot, controls["Accept step"])


def option(command: str, name: str) -> str | None:
    """The value of option ``name`` in a command line."""
    args = shlex.split(command)
    return args[args.index(name) + 1] if name in args else None


def set_budget(widget, epochs: int, rl_iters: int) -> None:
    controls = widget.sections.finetune.controls
    controls["Epochs"].setValue(epochs)
    controls["RL iterations"].setValue(rl_iters)
    choose(controls["Device"], "cpu")


def test_finetune_click_swaps_the_model_and_rerun_predicts_only_unreviewed(annotator, qtbot):
    viewer, widget = annotator
    for frame in (0, 2):
        review(qtbot, widget, viewer, frame)
    session = widget.controller.session
    kept = {i: np.asarray(session.array("corrected")[i]).copy() for i in (0, 2)}
    finetune = widget.sections.finetune
    controls = finetune.controls
    set_budget(widget, 1, 1)
    command = finetune.command()
    assert "cliprl finetune --data" in command and "ft-001" in command
    assert option(command, "--epochs") == "1" and option(command, "--rl-iters") == "1"
    assert option(command, "--device") == "cpu"
    seen: list[str] = []
    timer = QTimer()
    timer.timeout.connect(lambda: seen.append(finetune.status()))
    timer.start(20)
    since = n_records()
    click(qtbot, controls["Fine-tune"])
    assert not controls["Fine-tune"].isEnabled() and controls["Cancel"].isEnabled()
    wait_idle(qtbot, widget)
    timer.stop()
    checkpoint = session.folder / "checkpoints" / "ft-001"
    assert widget.sections.model.spec().checkpoint == str(checkpoint), finetune.status()
    assert finetune.status().startswith("New model ft-001 selected (T* = ")
    assert any("Fine-tuning on the CPU (2 frames):" in m for m in messages(since))
    assert any(" left" in s for s in seen)  # the measured estimate was shown while training
    assert widget.controller.training.first_estimate is not None
    lineage = json.loads((checkpoint / LINEAGE_FILE).read_text())
    assert lineage["frames"] == [0, 2] and lineage["base_architecture"] == "tiny-test"
    plot = finetune.plot()
    assert plot.loss  # the live curve received the losses
    assert plot.labels == {
        "x": "epoch, then RL update",
        "y": "loss",
        "y2": "validation mIoU (1 frame)",
    }
    assert "ft-002" in finetune.command()  # the next run's folders

    click(qtbot, controls["Re-run unreviewed frames"])
    qtbot.waitUntil(lambda: widget.busy, timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget)
    assert session.info.checkpoint == str(checkpoint)
    assert widget.sections.run.status() == "Done: 2 frames predicted."
    for i, labels in kept.items():
        np.testing.assert_array_equal(np.asarray(session.array("corrected")[i]), labels)
    last = np.asarray(session.array(f"step {session.steps}")[1])
    np.testing.assert_array_equal(np.asarray(session.array("corrected")[1]), last)
    names = [layer.name for layer in viewer.layers]
    assert names == ["clip", *layer_order(session)]  # the re-run propagated: "propagated" too
    assert layer_order(session) == [
        "propagated",
        "zero-shot",
        *(f"step {t}" for t in range(session.steps + 1)),
        "corrected",
    ]


def test_cancelled_finetune_offers_nothing(annotator, qtbot):
    viewer, widget = annotator
    review(qtbot, widget, viewer, 1)
    finetune = widget.sections.finetune
    controls = finetune.controls
    spec = widget.sections.model.spec()
    set_budget(widget, 200, 500)
    click(qtbot, controls["Fine-tune"])
    qtbot.waitUntil(lambda: "epoch" in finetune.status(), timeout=TIMEOUT_MS)
    click(qtbot, controls["Cancel"])
    wait_idle(qtbot, widget)
    assert widget.sections.model.spec() == spec  # still the tiny-test architecture
    assert finetune.status().startswith("Fine-tune cancelled: no new model")
    assert not controls["Re-run unreviewed frames"].isEnabled()
    assert controls["Fine-tune"].isEnabled() and not controls["Cancel"].isEnabled()


def test_command_follows_the_options_and_copy_exports_its_data(annotator, qtbot):
    viewer, widget = annotator
    review(qtbot, widget, viewer, 1)
    finetune = widget.sections.finetune
    controls = finetune.controls
    controls["Epochs"].setValue(7)
    assert option(finetune.command(), "--epochs") == "7"  # it follows the options, no click
    controls["RL iterations"].setValue(3)
    assert option(finetune.command(), "--rl-iters") == "3"
    assert option(finetune.command(), "--imitation-iters") == "3"
    choose(controls["Device"], "cpu")
    assert option(finetune.command(), "--device") == "cpu"
    model = widget.sections.model.controls
    choose(model["Model from"], "checkpoint")
    assert "--from" in finetune.command()
    choose(model["Model from"], "architecture")
    assert "--arch tiny-test" in finetune.command()
    click(qtbot, controls["Copy"])
    data = widget.controller.session.folder / "training" / "ft-001"
    qtbot.waitUntil(lambda: (data / "manifest.json").is_file(), timeout=TIMEOUT_MS)
    qtbot.waitUntil(
        lambda: QApplication.clipboard().text() == finetune.command(), timeout=TIMEOUT_MS
    )
    assert sorted(p.name for p in (data / "labels").iterdir()) == ["frame001.png"]


def test_evaluate_click_shows_table_and_chart(annotator, qtbot, small_clip):
    from napari_cliprl._napari._layers import labels_layer_data

    viewer, widget = annotator
    data, kwargs, _ = labels_layer_data(small_clip.labels, small_clip.schema, "ground truth")
    viewer.add_labels(data, **kwargs)
    evaluate = widget.sections.evaluate
    assert evaluate.truth_layer() == "ground truth"
    click(qtbot, evaluate.controls["Evaluate"])
    qtbot.waitUntil(lambda: bool(evaluate.table_values()), timeout=TIMEOUT_MS)
    wait_idle(qtbot, widget)
    shown = evaluate.table_values()
    layers = ["zero-shot", *(f"step {t}" for t in range(STEPS + 1))]
    assert list(shown) == layers
    session, k = widget.controller.session, small_clip.schema.num_classes
    for name in layers:
        preds = [np.asarray(session.array(name)[i]) for i in range(N_FRAMES)]
        expected = evaluate_frames(preds, small_clip.labels, k)
        assert shown[name] == pytest.approx(
            [expected[c] for c in ("challenge_iou", "iou", "mciou", "miou")], nan_ok=True
        )
    assert list(evaluate.chart().series) == layers
    assert evaluate.chart().classes  # grouped bars for the classes present
    assert evaluate.status() == "4 frames with predictions and ground truth."
