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


def test_clock_extrapolates_measured_units_and_knows_nothing_before_them():
    clock = TrainingClock(epochs=5, rl_units=30, start=0.0, train_frames=4, episodes=4)
    assert clock.seconds_left(2.0) is None  # set-up: nothing measured yet
    clock.unit_done(1, now=3.0, frames=2, seconds=0.2)  # the set-up took ~2.8 s
    assert clock.seconds_left(3.0) is None  # an epoch's fixed part is not known yet
    clock.unit_done(2, now=3.5, frames=3, seconds=0.3)  # 0.1 s per frame + 0.2 s fixed
    assert clock.frame_cost() == pytest.approx(0.1)
    assert clock.fixed_cost() == pytest.approx(0.2)
    epoch = 0.2 + 0.1 * (3 + 4) / 2  # fixed + frames growing from 3 to 4
    rl = 0.5 * 4 * 0.1  # per RL update of 4 episodes
    expected = 3 * epoch + 0.1 * 4 + 30 * rl + 0.2  # epochs, RL cache, updates, final
    assert clock.seconds_left(3.5) == pytest.approx(expected)
    assert clock.seconds_left(3.6) == pytest.approx(expected - 0.1)  # the unit in progress
    for k, now in ((3, 4.1), (4, 4.7), (5, 5.3)):
        clock.unit_done(k, now=now, frames=4, seconds=0.4)
    for k, now in ((6, 5.9), (7, 5.95), (8, 6.0)):  # RL: the first holds the caching
        clock.unit_done(k, now=now)
    assert clock.rl_cost() == pytest.approx(0.05)  # timed now
    left = clock.seconds_left(6.0)
    assert left == pytest.approx(27 * 0.05 + clock.fixed_cost())
    assert clock.seconds_total(6.0) == pytest.approx(6.0 + left)
    assert format_seconds(40.2) == "about 41 s" and format_seconds(600) == "about 10 min"


def test_clock_weights_rl_updates_by_their_episode_length():
    steps = [1, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # the curriculum lengthens episodes
    clock = TrainingClock(epochs=1, rl_units=10, start=0.0, train_frames=4, rl_steps=steps)
    assert sum(clock.rl_weights()) == pytest.approx(10)  # mean 1: the prior total is kept
    clock.unit_done(1, now=1.0, frames=4, seconds=0.4)
    for k, now in ((2, 2.0), (3, 2.1), (4, 2.2)):  # three T = 1 updates: 0.1 s each
        clock.unit_done(k, now=now)
    mean = sum(steps) / len(steps)
    assert clock.rl_cost() == pytest.approx(0.1 * mean)  # an update of mean length
    later = 0.1 * (1 + 2 + 2 + 2 + 3 + 3 + 3)  # the longer episodes still to come
    assert clock.seconds_left(2.2) == pytest.approx(later + clock.rl_cost())
    assert TrainingClock(epochs=1, rl_units=3, start=0.0, rl_steps=[1]).rl_weights() == [1.0] * 3


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
