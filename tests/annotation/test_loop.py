"""The annotation loop's core (no GUI): run folders, command line, estimates, lineage,
suggestions from stored uncertainty, the evaluation table and propagation."""

from __future__ import annotations

import argparse
import shlex
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from napari_cliprl.annotation.evaluate import evaluate_session
from napari_cliprl.annotation.finetune_job import (
    WIDGET_FIELDS,
    estimate_seconds,
    finetune_command,
    finetune_job,
    format_duration,
    job_config,
    loss_curves,
    next_run_dirs,
    read_lineage,
    widget_preset,
)
from napari_cliprl.annotation.models import ModelSpec
from napari_cliprl.annotation.run import predict_sequence
from napari_cliprl.annotation.session import CORRECTED, Session
from napari_cliprl.annotation.suggest import suggest_frames
from napari_cliprl.io.sample import synthetic_clip
from napari_cliprl.metrics import evaluate_frames
from napari_cliprl.schemas import get_schema
from napari_cliprl.training.config import get_field, replace_fields

T, H, W, STEPS = 4, 64, 80, 2


class EntropyPredictor:
    """Frame i gets entropy ``scores[i]``; step t is filled with t; records contexts."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.contexts: list = []

    def predict(self, frame, steps=None, key=None, context=None):
        self.contexts.append(context)
        i = int(frame[0, 0, 0])
        maps = [np.full((H, W), t, np.uint8) for t in range(steps + 1)]
        return SimpleNamespace(
            zero_shot=np.zeros((H, W), np.uint8), steps=maps, entropy=[0.0, self.scores[i]]
        )


@pytest.fixture
def session(tmp_path) -> Session:
    return Session.create(
        tmp_path / "s", source=None, shape=(T, H, W), schema=get_schema("endovis2018"), steps=STEPS
    )


def index_frames() -> np.ndarray:
    return np.stack([np.full((H, W, 3), i, np.uint8) for i in range(T)])


def test_run_dirs_count_up(tmp_path):
    data, ckpt = next_run_dirs(tmp_path)
    assert (data.name, ckpt.name) == ("ft-001", "ft-001")
    assert ckpt.parent.name == "checkpoints" and data.parent.name == "training"
    (tmp_path / "checkpoints" / "ft-007").mkdir(parents=True)
    assert next_run_dirs(tmp_path)[1].name == "ft-008"


def test_command_line_describes_the_same_run(tmp_path):
    from napari_cliprl._commands.finetune import add_arguments, make_config

    options = replace_fields(
        widget_preset(),
        {
            "supervised.epochs": 3,
            "rl.iterations": 7,
            "rl.imitation_iters": 2,
            "device": "cpu",
            "data": ["/x/extra"],
        },
    )
    spec = ModelSpec(checkpoint=str(tmp_path / "base ckpt"))
    config = job_config(spec, options, tmp_path / "data", tmp_path / "out")
    assert config.data == [str(tmp_path / "data"), "/x/extra"]
    command = finetune_command(config)
    assert command.startswith("cliprl finetune --data ")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parsed = make_config(parser.parse_args(shlex.split(command)[2:]))
    assert parsed.data == config.data and parsed.out == config.out
    assert parsed.from_checkpoint == str(tmp_path / "base ckpt")
    assert parsed.supervised.epochs == 3 and parsed.rl.iterations == 7
    assert parsed.rl.imitation_iters == 2 and parsed.device == "cpu"
    # the whole run, not a few fields: the widget's num_envs=4 and warmup_epochs=1 included
    assert parsed == config
    assert (parsed.rl.num_envs, parsed.warmup_epochs, parsed.log_every) == (4, 1, 1)


def test_widget_preset_is_a_small_view_of_the_config():
    preset = widget_preset()
    assert [get_field(preset, f) for f in WIDGET_FIELDS] == [5, 20, "auto", []]
    assert preset.supervised.batch_size == 2 and preset.rl.imitation_iters == 10
    with pytest.raises(ValueError, match="epochs"):
        replace_fields(preset, {"supervised.epochs": -1})


def test_cpu_estimate_grows_with_frames_and_measured_speed():
    options = replace_fields(widget_preset(), {"supervised.epochs": 5, "rl.iterations": 20})
    few = estimate_seconds(2, options, "ViT-B-16")
    many = estimate_seconds(20, options, "ViT-B-16")
    assert many > few > estimate_seconds(2, options, "tiny-test")
    assert estimate_seconds(20, options, "ViT-B-16", inference_seconds=10.0) > many
    assert format_duration(40) == "about 40 s"
    assert format_duration(600) == "about 10 min"
    assert format_duration(3 * 3600) == "about 3.0 h"


def test_uncertainty_is_stored_persisted_and_drives_suggestions(session):
    predictor = EntropyPredictor([0.1, 0.9, 0.5, 0.3])
    list(predict_sequence(predictor, index_frames(), range(T), session))
    # entropy of the last step + fraction of pixels changed between step 0 and step T (all)
    np.testing.assert_allclose(session.uncertainty(), [1.1, 1.9, 1.5, 1.3])
    assert suggest_frames(session) == [1, 2, 3, 0]
    session.mark_reviewed([1])
    assert suggest_frames(session) == [2, 3, 0]  # a reviewed frame drops out
    # spreading favours frames far from frame 1 (frame 3 over frame 0 at equal distance)
    assert suggest_frames(session, distance_weight=8.0)[0] == 3
    reopened = Session.open(session.folder)
    np.testing.assert_allclose(reopened.uncertainty(), session.uncertainty())
    reopened.set_model(steps=STEPS, checkpoint="other")  # kept until a run replaces them
    np.testing.assert_allclose(reopened.uncertainty(), session.uncertainty())


def test_propagation_passes_the_reviewed_labels_as_each_frames_context(session):
    predictor = EntropyPredictor([0.1] * T)
    list(predict_sequence(predictor, index_frames(), [0, 1], session, propagate=True))
    assert predictor.contexts == [None, None]  # nothing reviewed yet: each frame on its own
    edited = np.full((H, W), 5, np.uint8)
    session.array(CORRECTED)[1] = edited
    session.mark_reviewed([1])
    done = list(predict_sequence(predictor, index_frames(), [0, 1, 2], session, propagate=True))
    assert [d.index for d in done] == [0, 2] and all(d.propagated for d in done)
    before, after = predictor.contexts[-2:]
    assert before.forward is None and before.backward.anchor == 1  # frame 0: from frame 1
    assert after.backward is None and after.forward.anchor == 1  # frame 2: from frame 1
    np.testing.assert_array_equal(after.propagated, edited)  # still frames: no motion
    list(predict_sequence(predictor, index_frames(), [3], session, propagate=False))
    assert predictor.contexts[-1] is None  # only with propagate


def test_evaluation_table_matches_evaluate_frames(session):
    clip = synthetic_clip(T, (H, W), seed=2)
    for i in range(3):  # frame 3 is never predicted
        steps = [clip.labels[i] if t == STEPS else clip.labels[(i + 1) % T] for t in range(3)]
        session.write_prediction(i, np.zeros((H, W), np.uint8), steps)
    truth = clip.labels.copy()
    truth[1] = 255  # no ground truth for frame 1
    table = evaluate_session(session, truth)
    assert table.frames == [0, 2]
    assert [name for name, _ in table.rows()] == ["zero-shot", "step 0", "step 1", "step 2"]
    k = session.schema.num_classes
    expected = evaluate_frames([clip.labels[(i + 1) % T] for i in (0, 2)], truth[[0, 2]], k)
    assert table.rows()[1][1] == pytest.approx(
        [expected[c] for c in ("challenge_iou", "iou", "mciou", "miou")], nan_ok=True
    )
    assert table.rows()[-1][1][0] == 1.0  # the last step is the ground truth itself
    assert len(table.per_class_iou()["step 2"]) == k == len(table.class_names)
    with pytest.raises(ValueError, match="ground truth has shape"):
        evaluate_session(session, truth[:2])


def test_loss_curves_split_phases_and_follow_tstar():
    history = [
        {"phase": "supervised", "loss": 2.0, "val": {"zero_shot": 0.1, "step_0": 0.3}},
        {"phase": "rl", "loss": 9.0},
        {"phase": "tstar", "val": {"step_0": 0.3, "step_1": 0.4, "step_2": 0.2}, "tstar": 1},
        {"phase": "rl", "val": {"step_0": 0.5, "step_1": 0.6}},
    ]
    assert loss_curves(history) == {
        "loss": [(0, 2.0)],
        "rl_loss": [(1, 9.0)],
        "val": [(0, 0.3), (2, 0.4), (3, 0.6)],
    }


def test_finetune_job_exports_trains_and_writes_lineage(session):
    clip = synthetic_clip(T, (H, W), seed=1)
    for i in (0, 2):
        session.array(CORRECTED)[i] = clip.labels[i]
    session.mark_reviewed([0, 2])
    spec = ModelSpec(arch="tiny-test", device="cpu", steps=STEPS)
    options = replace_fields(
        widget_preset(),
        {
            "supervised.epochs": 1,
            "rl.iterations": 1,
            "rl.imitation_iters": 1,
            "device": "cpu",
            "rl.num_envs": 2,
            "input_size": (64, 80),
        },
    )
    job = finetune_job(session, clip.frames, spec, options, threading.Event())
    events = []
    try:
        while True:
            events.append(next(job))
    except StopIteration as stop:
        outcome = stop.value
    assert outcome.error is None and not outcome.stopped
    assert outcome.checkpoint == session.folder / "checkpoints" / "ft-001"
    assert (outcome.checkpoint / "weights.safetensors").is_file()
    lineage = read_lineage(outcome.checkpoint)
    assert lineage["frames"] == [0, 2] and lineage["base_architecture"] == "tiny-test"
    assert lineage["data"] == [str(session.folder / "training" / "ft-001")]
    assert any(kind == "metrics" and "loss" in m for kind, m in events)
    assert len(list((session.folder / "training" / "ft-001" / "labels").glob("*.png"))) == 2

    cancelled = threading.Event()
    cancelled.set()
    job = finetune_job(session, clip.frames, spec, options, cancelled)
    try:
        while True:
            next(job)
    except StopIteration as stop:
        assert stop.value.stopped and stop.value.checkpoint is None
    # what the cancelled run left is refused by loaders, with the way to resume it
    from napari_cliprl.model.build import build_model

    with pytest.raises(ValueError, match="unfinished fine-tune.*--resume"):
        build_model(checkpoint=session.folder / "checkpoints" / "ft-002")
