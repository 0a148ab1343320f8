"""The dock's pure parts: the fine-tune clock and curves, review marks, and the run job's
order (the model loads before a session is touched)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from napari_cliprl._napari._jobs import SessionReady, SessionTarget, run_job
from napari_cliprl._napari._review_marks import ReviewMarks
from napari_cliprl._napari._training_progress import (
    TrainingClock,
    format_seconds,
    training_curves,
)
from napari_cliprl.annotation.models import ModelSpec
from napari_cliprl.annotation.session import Session
from napari_cliprl.schemas import get_schema


def test_clock_extrapolates_measured_units_and_knows_nothing_before_the_first():
    clock = TrainingClock(epochs=5, rl_units=30, start=0.0)
    assert clock.seconds_left(2.0) is None  # set-up: nothing measured yet
    clock.unit_done(1, now=3.0, seconds=0.1)  # set-up took ~2.9 s, an epoch 0.1 s
    assert clock.seconds_left(3.0) == pytest.approx(4 * 0.1 + 30 * 0.05 + 0.1)
    clock.unit_done(2, now=3.2)
    clock.unit_done(3, now=3.4)  # epochs really take 0.2 s
    assert clock.epoch_cost() == pytest.approx(0.2)
    clock.unit_done(4, now=3.6)
    clock.unit_done(5, now=3.8)  # the last epoch
    for k, now in ((6, 4.0), (7, 4.05), (8, 4.10)):  # RL updates 1-3: 0.05 s each
        clock.unit_done(k, now=now)
    assert clock.rl_cost() == pytest.approx(0.05)  # from the timed updates now
    left = clock.seconds_left(4.10)
    assert left == pytest.approx(27 * 0.05 + 0.2)
    assert clock.seconds_total(4.10) == pytest.approx(4.10 + left)
    assert format_seconds(40.2) == "about 41 s" and format_seconds(600) == "about 10 min"


def test_curves_put_epochs_then_rl_updates_on_the_x_axis():
    history = [
        {"phase": "supervised", "epoch": 1, "loss": 2.0, "metric": "miou",
         "val": {"step_0": 0.2, "step_1": 0.3}, "tstar": 1},
        {"phase": "supervised", "epoch": 2, "loss": 1.5, "val": {"step_0": 0.4}, "tstar": 0},
        {"phase": "rl", "iteration": 3, "iterations": 10, "loss": 0.7},
        {"phase": "tstar", "metric": "miou", "val": {"step_0": 0.5}, "tstar": 0, "val_frames": 3},
    ]  # fmt: skip
    curves = training_curves(history, epochs=2)
    assert curves.loss == [(1.0, 2.0), (2.0, 1.5)]
    assert curves.rl_loss == [(5.0, 0.7)]
    assert curves.val == [(1.0, 0.3), (2.0, 0.4), (5.0, 0.5)]
    assert curves.metric == "mIoU" and curves.val_frames == 3 and curves.epochs == 2


def test_review_marks_follow_undo_and_redo():
    flags: set[int] = set()

    def mark(frames: list[int], reviewed: bool) -> list[int]:
        changed = [f for f in frames if (f in flags) != reviewed]
        (flags.update if reviewed else flags.difference_update)(changed)
        return changed

    marks = ReviewMarks(mark)
    first = [((np.array([2, 2]), np.array([0, 1]), np.array([0, 0])), 0, 1)]
    second = [((np.array([2, 5]), np.array([0, 0]), np.array([0, 0])), 0, 1)]
    assert marks.edited(first) == [2]
    assert marks.edited(second) == [5]  # frame 2 was reviewed already
    assert marks.undone(list(reversed(second))) == [5]  # napari hands the same atoms back
    assert flags == {2}
    assert marks.undone(first) == [2] and flags == set()
    assert marks.redone(list(reversed(first))) == [2] and flags == {2}


class Counting:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def get(self, spec: ModelSpec):
        if self.fail:
            raise ValueError("Checkpoint folder /nowhere does not exist.")
        return SimpleNamespace(predict=self.predict, device="cpu")

    @staticmethod
    def predict(frame, steps=None, key=None, prior=None, prior_weight=None):
        h, w = frame.shape[:2]
        maps = [np.full((h, w), 1, np.uint8) for _ in range((steps or 0) + 1)]
        return SimpleNamespace(zero_shot=np.zeros((h, w), np.uint8), steps=maps, entropy=[0.1])


def test_run_job_loads_the_model_before_touching_a_session(tmp_path: Path):
    frames = np.zeros((3, 8, 10, 3), np.uint8)
    target = SessionTarget(tmp_path / "s", None, (3, 8, 10), get_schema("endovis2018"))
    spec = ModelSpec(arch="tiny-test", device="cpu", steps=1)
    job = run_job(Counting(fail=True), spec, frames, [0, 1], target)
    with pytest.raises(StopIteration) as stop:
        next(job)
    assert "does not exist" in stop.value.value
    assert not target.folder.exists()  # a failed load created nothing

    items = list(run_job(Counting(fail=False), spec, frames, [0, 1], target))
    assert isinstance(items[0], SessionReady) and [i.index for i in items[1:]] == [0, 1]
    session = Session.open(target.folder)
    assert session.predicted == [0, 1]
    assert (np.asarray(session.array("corrected")[1]) == 1).all()  # seeded from the last step
