"""Small matplotlib charts embedded in the dock: the fine-tune curves and per-class IoU."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy, QWidget

FOREGROUND = "#d0d0d0"  # readable on napari's dark theme
LOSS_COLOUR = "#ff7f0e"
VAL_COLOUR = "#1f9fff"


def _style(ax: object) -> None:
    ax.set_facecolor("none")  # type: ignore[attr-defined]
    ax.tick_params(colors=FOREGROUND, labelsize=7)  # type: ignore[attr-defined]
    for spine in ax.spines.values():  # type: ignore[attr-defined]
        spine.set_color(FOREGROUND)


class _Chart(FigureCanvasQTAgg):
    def __init__(self, height: float, parent: QWidget | None = None) -> None:
        figure = Figure(figsize=(3.2, height), dpi=90, facecolor="none", layout="constrained")
        super().__init__(figure)
        self.setParent(parent)
        self.setStyleSheet("background-color: transparent;")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(int(height * 90))


class LossPlot(_Chart):
    """A fine-tune's loss (left axis) and validation score (right axis): x is the epoch,
    then, right of the dotted line, the RL update (numbered on after the epochs)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(1.9, parent)
        self.curves: Any = None
        self.labels: dict[str, str] = {}
        self.set_curves(None)

    @property
    def loss(self) -> list[tuple[float, float]]:
        if self.curves is None:
            return []
        return list(self.curves.loss) + list(self.curves.rl_loss)

    def set_curves(self, curves: Any) -> None:
        """Show ``curves`` (``_training_progress.Curves``; None: empty axes)."""
        self.curves = curves
        self._draw()

    def _draw(self) -> None:
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        _style(ax)
        c = self.curves
        rl = bool(c is not None and c.rl_loss)
        self.labels = {
            "x": "epoch, then RL update" if rl else "epoch",
            "y": "loss",
            "y2": _val_label(c),
        }
        ax.set_xlabel(self.labels["x"], color=FOREGROUND, fontsize=7)
        ax.set_ylabel("loss", color=LOSS_COLOUR, fontsize=7)
        if c is not None:
            for points, style, label in ((c.loss, "-", "supervised"), (c.rl_loss, ":", "RL")):
                if points:
                    ax.plot(*zip(*points), style, color=LOSS_COLOUR, lw=1.2, label=label)
            if rl and c.loss:
                ax.axvline(c.epochs + 0.5, color=FOREGROUND, lw=0.6, ls=":")
            if self.loss:
                ax.legend(fontsize=6, frameon=False, labelcolor=FOREGROUND, loc="upper right")
        twin = ax.twinx()
        _style(twin)
        twin.set_ylabel(self.labels["y2"], color=VAL_COLOUR, fontsize=7)
        twin.set_ylim(0, 1)
        if c is not None and c.val:
            twin.plot(*zip(*c.val), "o-", color=VAL_COLOUR, lw=1.2, ms=3)
        self.draw_idle()


def _val_label(curves: Any) -> str:
    metric = getattr(curves, "metric", "mIoU")
    n = getattr(curves, "val_frames", None)
    if n is None:
        return f"validation {metric}"
    return f"validation {metric} ({n} frame{'' if n == 1 else 's'})"


class ClassIoUChart(_Chart):
    """Per-class IoU, one group of bars per class and one bar per proposal layer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(2.4, parent)
        self.series: dict[str, list[float]] = {}
        self.classes: list[str] = []

    def set_data(self, classes: Sequence[str], series: dict[str, Sequence[float]]) -> None:
        """``series``: layer -> per-class IoU (NaN: class absent); classes absent in every
        layer (and the background) are left out."""
        keep = [
            k for k in range(1, len(classes)) if any(not math.isnan(v[k]) for v in series.values())
        ]
        self.classes = [classes[k] for k in keep]
        self.series = {name: [float(v[k]) for k in keep] for name, v in series.items()}
        self._draw()

    def _draw(self) -> None:
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        _style(ax)
        ax.set_ylabel("IoU", color=FOREGROUND, fontsize=7)
        ax.set_ylim(0, 1)
        n = max(len(self.series), 1)
        width = 0.8 / n
        x = np.arange(len(self.classes))
        for j, (name, values) in enumerate(self.series.items()):
            heights = np.nan_to_num(np.asarray(values, dtype=float))
            ax.bar(x + (j - (n - 1) / 2) * width, heights, width, label=name)
        ax.set_xticks(x, self.classes, rotation=35, ha="right", fontsize=6)
        if self.series:
            ax.legend(fontsize=6, ncols=min(n, 3), frameon=False, labelcolor=FOREGROUND)
        self.draw_idle()
