"""A fine-tune as the user watches it: the time it will take, measured on this machine, and
the curves of its loss and validation score. Pure Python (no Qt): the clock is told when each
unit of work ended and extrapolates from the measured durations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Before the first RL update has been timed, one update is assumed to cost this fraction of
# a supervised epoch (measured on the development machine for the default budget on the
# sample clip: 0.3-0.5); the first timed updates replace it.
RL_UPDATE_PER_EPOCH = 0.5
METRIC_NAMES = {"miou": "mIoU", "iou": "IoU", "mciou": "mcIoU", "challenge_iou": "challenge IoU"}


@dataclass
class TrainingClock:
    """Time left of a fine-tune of ``epochs`` supervised epochs and ``rl_units`` RL updates,
    plus a final T* choice, from the times at which each unit ended.

    Work before the first unit (export, model, curriculum) is measured as it happens; an
    epoch's cost is the mean gap between epoch reports (the first epoch, whose gap includes
    the set-up, counts by its own reported training seconds); an RL update's likewise.
    """

    epochs: int
    rl_units: int
    start: float
    _epoch_ends: list[float] = field(default_factory=list)
    _epoch_seconds: list[float] = field(default_factory=list)
    _rl_ends: list[float] = field(default_factory=list)

    def unit_done(self, done: int, now: float, seconds: float | None = None) -> None:
        """Unit ``done`` (1-based progress count) ended at ``now``; ``seconds``: the training
        time the unit reported itself (supervised epochs do)."""
        if 1 <= done <= self.epochs and done > len(self._epoch_ends):
            self._epoch_ends.append(now)
            if seconds is not None:
                self._epoch_seconds.append(float(seconds))
        elif self.epochs < done <= self.epochs + self.rl_units:
            if done - self.epochs > len(self._rl_ends):
                self._rl_ends.append(now)

    def epoch_cost(self) -> float | None:
        ends = self._epoch_ends
        if len(ends) >= 2:
            return (ends[-1] - ends[0]) / (len(ends) - 1)
        if self._epoch_seconds:
            return self._epoch_seconds[0]
        return None

    def rl_cost(self) -> float | None:
        ends = self._rl_ends
        if len(ends) >= 2:
            return (ends[-1] - ends[0]) / (len(ends) - 1)
        epoch = self.epoch_cost()
        return None if epoch is None else RL_UPDATE_PER_EPOCH * epoch

    def seconds_left(self, now: float) -> float | None:
        """Estimated seconds until the end (None until the first unit has been timed)."""
        epoch, rl = self.epoch_cost(), self.rl_cost()
        if self.epochs and epoch is None:
            return None
        if not self.epochs and not self._rl_ends:
            return None
        epochs_left = self.epochs - len(self._epoch_ends)
        rl_left = self.rl_units - len(self._rl_ends)
        left = epochs_left * (epoch or 0.0) + rl_left * (rl or 0.0)
        left += epoch or rl or 0.0  # the final validation and checkpoint (about one unit)
        return max(left - self._since_last(now), 0.0)

    def seconds_total(self, now: float) -> float | None:
        left = self.seconds_left(now)
        return None if left is None else (now - self.start) + left

    def _since_last(self, now: float) -> float:
        """Seconds since the last unit ended (the unit in progress has run that long)."""
        ends = self._epoch_ends + self._rl_ends
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
