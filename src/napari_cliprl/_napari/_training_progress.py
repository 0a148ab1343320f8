"""A fine-tune as the user watches it: the time it will take, measured on this machine, and
the curves of its loss and validation score. Pure Python (no Qt): the clock is told when each
unit of work ended and extrapolates from the measured durations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Measured on the development machine (tiny-test, sample clip): one RL update costs about
# this many trained frames' worth per episode (0.33-0.55), and caching the decoder outputs
# before the first update about one pass over the training frames. Only these ratios are
# assumed: the costs themselves are timed on this machine while the fine-tune runs.
RL_FRAMES_PER_EPISODE = 0.5
METRIC_NAMES = {"miou": "mIoU", "iou": "IoU", "mciou": "mcIoU", "challenge_iou": "challenge IoU"}


@dataclass
class TrainingClock:
    """Time left of a fine-tune of ``epochs`` supervised epochs (on up to ``train_frames``
    frames each: the curriculum starts with fewer) and ``rl_units`` RL updates of
    ``episodes`` episodes each, plus a final T* choice, from the times at which units ended.

    An epoch costs a fixed part (validation and checkpoint: its wall time beyond the training
    seconds it reports) plus its frames times the training seconds per frame; both are timed,
    so the estimate waits for a second epoch. An RL update costs in proportion to its episode
    length ``rl_steps[k]`` (the curriculum lengthens episodes: T = 1, 2, 3 cost about 1 : 2 : 3
    or more), normalised to a mean of 1: once three updates have ended, the measured gaps
    between updates per unit of that weight; before that RL_FRAMES_PER_EPISODE frames per
    episode for an update of mean length.
    """

    epochs: int
    rl_units: int
    start: float
    train_frames: int = 1
    episodes: int = 4
    rl_steps: Sequence[int] | None = None  # episode length of each RL update (None: equal)
    _epochs: list[tuple[float, int, float]] = field(default_factory=list)
    _rl_ends: list[float] = field(default_factory=list)

    def unit_done(
        self, done: int, now: float, frames: int | None = None, seconds: float | None = None
    ) -> None:
        """Unit ``done`` (1-based progress count) ended at ``now``; for an epoch, the
        ``frames`` it trained on and the training ``seconds`` it reported."""
        if 1 <= done <= self.epochs and done > len(self._epochs):
            self._epochs.append((now, max(int(frames or self.train_frames), 1), seconds or 0.0))
        elif self.epochs < done <= self.epochs + self.rl_units:
            if done - self.epochs > len(self._rl_ends):
                self._rl_ends.append(now)

    def frame_cost(self) -> float | None:
        """Training seconds per frame (None before the first epoch has ended)."""
        costs = [seconds / frames for _, frames, seconds in self._epochs if seconds > 0]
        return sum(costs) / len(costs) if costs else None

    def fixed_cost(self) -> float | None:
        """Seconds of an epoch beyond its training (None before a second epoch has ended)."""
        e = self._epochs
        extra = [max(b[0] - a[0] - b[2], 0.0) for a, b in zip(e, e[1:])]
        return sum(extra) / len(extra) if extra else None

    def rl_weights(self) -> list[float]:
        """Relative cost of each RL update (mean 1): its episode length."""
        steps = list(self.rl_steps or [])[: self.rl_units]
        if len(steps) != self.rl_units or not steps or min(steps) <= 0:
            return [1.0] * self.rl_units
        mean = sum(steps) / len(steps)
        return [t / mean for t in steps]

    def rl_cost(self) -> float | None:
        """Seconds of an RL update of mean weight (None before the first epoch has ended)."""
        ends = self._rl_ends
        if len(ends) >= 3:  # the first update holds the caching: time from the second on
            return (ends[-1] - ends[1]) / sum(self.rl_weights()[2 : len(ends)])
        frame = self.frame_cost()
        return None if frame is None else RL_FRAMES_PER_EPISODE * self.episodes * frame

    def seconds_left(self, now: float) -> float | None:
        """Estimated seconds until the end (None while too little has been timed)."""
        frame, fixed, rl = self.frame_cost(), self.fixed_cost(), self.rl_cost()
        epochs_left = self.epochs - len(self._epochs)
        if rl is None or (fixed is None and epochs_left > 0):
            return None
        fixed = fixed or 0.0
        latest = self._epochs[-1][1] if self._epochs else self.train_frames
        upcoming = (latest + self.train_frames) / 2  # the curriculum adds frames as it goes
        left = epochs_left * (fixed + (frame or 0.0) * upcoming)
        if self.rl_units and not self._rl_ends:
            left += (frame or 0.0) * self.train_frames  # caching the decoder outputs
        left += sum(self.rl_weights()[len(self._rl_ends) :]) * rl
        left += fixed or rl  # the final validation and checkpoint
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
