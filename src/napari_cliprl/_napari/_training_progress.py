"""A fine-tune as the user watches it: the time it will take, measured on this machine, and
the curves of its loss and validation score. Pure Python (no Qt): the clock is told when each
unit of work ended and extrapolates from the measured durations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Measured on the development machine (tiny-test, sample clip, default budget): an epoch's
# wall time, validation and checkpoint included, is proportional to the frames it trains
# on; one RL update costs about this many frames' worth per episode (0.35-0.55 measured), and
# caching the decoder outputs before the first update about one epoch. Only the ratios are
# assumed: the costs themselves are timed on this machine as the fine-tune runs.
RL_FRAMES_PER_EPISODE = 0.4
FIRST_EPOCH_OVERHEAD = 1.2  # the first epoch's own training seconds -> its wall time
METRIC_NAMES = {"miou": "mIoU", "iou": "IoU", "mciou": "mcIoU", "challenge_iou": "challenge IoU"}


@dataclass
class TrainingClock:
    """Time left of a fine-tune of ``epochs`` supervised epochs (each on up to
    ``train_frames`` frames) and ``rl_units`` RL updates of ``episodes`` episodes each, plus a
    final T* choice, from the times at which each unit ended.

    The cost of a frame is the gap between two epoch reports over the frames trained in the
    later one (the first epoch's gap holds the set-up: it counts only while no second epoch
    has ended, by its own training seconds). An RL update costs the mean gap between
    updates once three have ended, before that RL_FRAMES_PER_EPISODE frames per episode.
    """

    epochs: int
    rl_units: int
    start: float
    train_frames: int = 1
    episodes: int = 4
    _epochs: list[tuple[float, int, float | None]] = field(default_factory=list)
    _rl_ends: list[float] = field(default_factory=list)

    def unit_done(
        self, done: int, now: float, frames: int | None = None, seconds: float | None = None
    ) -> None:
        """Unit ``done`` (1-based progress count) ended at ``now``; for an epoch, ``frames``
        it trained on and the training ``seconds`` it reported."""
        if 1 <= done <= self.epochs and done > len(self._epochs):
            self._epochs.append((now, int(frames or self.train_frames), seconds))
        elif self.epochs < done <= self.epochs + self.rl_units:
            if done - self.epochs > len(self._rl_ends):
                self._rl_ends.append(now)

    def frame_cost(self) -> float | None:
        """Seconds per trained frame (None before the first epoch has ended)."""
        e = self._epochs
        if len(e) >= 2:
            costs = [(b[0] - a[0]) / max(b[1], 1) for a, b in zip(e, e[1:])]
            return sum(costs) / len(costs)
        if e and e[0][2] is not None and self.epochs < 2:  # else wait for a second epoch
            return FIRST_EPOCH_OVERHEAD * e[0][2] / max(e[0][1], 1)
        return None

    def rl_cost(self) -> float | None:
        ends = self._rl_ends
        if len(ends) >= 3:
            return (ends[-1] - ends[1]) / (len(ends) - 2)
        frame = self.frame_cost()
        return None if frame is None else RL_FRAMES_PER_EPISODE * self.episodes * frame

    def seconds_left(self, now: float) -> float | None:
        """Estimated seconds until the end (None while nothing has been timed)."""
        frame, rl = self.frame_cost(), self.rl_cost()
        if rl is None:
            return None
        epoch = (frame or 0.0) * self.train_frames
        left = (self.epochs - len(self._epochs)) * epoch
        if self.rl_units and not self._rl_ends:
            left += epoch  # caching the decoder outputs for phase B
        left += (self.rl_units - len(self._rl_ends)) * rl
        left += frame or rl  # the final validation and checkpoint
        return max(left - self._since_last(now), 0.0)

    def seconds_total(self, now: float) -> float | None:
        left = self.seconds_left(now)
        return None if left is None else (now - self.start) + left

    def _since_last(self, now: float) -> float:
        """Seconds since the last unit ended (the unit in progress has run that long)."""
        ends = [e[0] for e in self._epochs] + self._rl_ends
        return max(now - max(ends), 0.0) if ends else 0.0


def format_seconds(seconds: float) -> str:
    """``"about 40 s"``, ``"about 3 min"``, ``"about 2.5 h"``."""
    if seconds < 90:
        return f"about {max(1, math.ceil(seconds))} s"
    if seconds < 5400:
        return f"about {math.ceil(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


@dataclass
class Curves:
    """What the fine-tune plot shows: x is the epoch (1..E), then E + the RL update."""

    loss: list[tuple[float, float]] = field(default_factory=list)  # supervised loss per epoch
    rl_loss: list[tuple[float, float]] = field(default_factory=list)  # RL loss per update
    val: list[tuple[float, float]] = field(default_factory=list)  # validation score at T*
    epochs: int = 0  # where phase B starts on the x axis (after this epoch)
    metric: str = "mIoU"  # the validation metric's name
    val_frames: int | None = None  # held-out frames it is measured on


def training_curves(
    history: Sequence[dict[str, Any]], epochs: int, val_frames: int | None = None
) -> Curves:
    """The plot's series from the fine-tune's metrics reports (one dict per epoch, per
    logged RL update, and a final T* report)."""
    curves = Curves(epochs=epochs, val_frames=val_frames)
    x = 0.0
    for m in history:
        phase = m.get("phase")
        if phase == "supervised":
            x = float(m.get("epoch", x + 1))
        elif phase == "rl" and "iteration" in m:
            x = float(epochs + m["iteration"])
        curves.metric = METRIC_NAMES.get(str(m.get("metric", "")), curves.metric)
        if isinstance(m.get("val_frames"), int):
            curves.val_frames = m["val_frames"]
        loss = m.get("loss")
        if isinstance(loss, int | float) and math.isfinite(loss):
            (curves.rl_loss if phase == "rl" else curves.loss).append((x, float(loss)))
        value = _score_at_tstar(m)
        if value is not None:
            curves.val.append((x, value))
    return curves


def _score_at_tstar(m: dict[str, Any]) -> float | None:
    val = m.get("val") or {}
    steps = [v for k, v in val.items() if str(k).startswith("step_")]
    tstar = m.get("tstar")
    pick = steps[tstar] if isinstance(tstar, int) and 0 <= tstar < len(steps) else None
    if pick is None and steps:
        pick = steps[-1]
    return float(pick) if isinstance(pick, int | float) and math.isfinite(pick) else None
