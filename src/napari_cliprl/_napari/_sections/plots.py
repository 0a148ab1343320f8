"""Small matplotlib charts embedded in the dock: the fine-tune curves and per-class IoU.

Drawing is kept cheap for the main thread: fixed margins instead of a layout engine, the
axes are made once and the curves updated in place, and redraws are coalesced by Qt
(``draw_idle``).
"""

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
DPI = 90


def _style(ax: Any) -> None:
    ax.set_facecolor("none")
    ax.tick_params(colors=FOREGROUND, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color(FOREGROUND)


class _Chart(FigureCanvasQTAgg):
    def __init__(self, height: float, margins: dict[str, float], parent: QWidget | None) -> None:
        figure = Figure(figsize=(3.2, height), dpi=DPI, facecolor="none")
        figure.subplots_adjust(**margins)
        super().__init__(figure)
        self.setParent(parent)
        self.setStyleSheet("background-color: transparent;")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(int(height * DPI))


class LossPlot(_Chart):
    """A fine-tune's loss (left axis) and validation score (right axis): x is the epoch,
    then, right of the dotted line, the RL update (numbered on after the epochs)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(1.9, {"left": 0.16, "right": 0.84, "bottom": 0.22, "top": 0.95}, parent)
        self.curves: Any = None
        self.labels: dict[str, str] = {}
        self._ax = self.figure.add_subplot(111)
        self._twin = self._ax.twinx()
        for ax in (self._ax, self._twin):
            _style(ax)
        self._twin.set_ylim(0, 1)
        self._lines = {
            "loss": self._ax.plot([], [], "-", color=LOSS_COLOUR, lw=1.2, label="supervised")[0],
            "rl_loss": self._ax.plot([], [], ":", color=LOSS_COLOUR, lw=1.2, label="RL")[0],
            "val": self._twin.plot([], [], "o-", color=VAL_COLOUR, lw=1.2, ms=3)[0],
        }
        self._divider = self._ax.axvline(0.5, color=FOREGROUND, lw=0.6, ls=":", visible=False)
        self._legend: Any = None
        self.set_curves(None)

    @property
    def loss(self) -> list[tuple[float, float]]:
        if self.curves is None:
            return []
        return list(self.curves.loss) + list(self.curves.rl_loss)

    def set_curves(self, curves: Any) -> None:
        """Show ``curves`` (``_training_progress.Curves``; None: empty axes)."""
        self.curves = curves
        for name, line in self._lines.items():
            points = getattr(curves, name, None) or []
            line.set_data([p[0] for p in points], [p[1] for p in points])
        rl = bool(curves is not None and curves.rl_loss)
        self._divider.set_visible(rl and bool(curves.loss))
        if rl:
            self._divider.set_xdata([curves.epochs + 0.5] * 2)
        self._set_labels(
            {"x": "epoch, then RL update" if rl else "epoch", "y": "loss", "y2": _val_label(curves)}
        )
        if self.loss and self._legend is None:
            self._legend = self._ax.legend(
                fontsize=6, frameon=False, labelcolor=FOREGROUND, loc="upper right"
            )
        self._ax.relim()
        self._ax.autoscale_view()
        self.draw_idle()

    def _set_labels(self, labels: dict[str, str]) -> None:
        if labels == self.labels:
            return
        self.labels = labels
        self._ax.set_xlabel(labels["x"], color=FOREGROUND, fontsize=7)
        self._ax.set_ylabel(labels["y"], color=LOSS_COLOUR, fontsize=7)
        self._twin.set_ylabel(labels["y2"], color=VAL_COLOUR, fontsize=7)


def _val_label(curves: Any) -> str:
    metric = getattr(curves, "metric", "mIoU")
    n = getattr(curves, "val_frames", None)
    if n is None:
        return f"validation {metric}"
    return f"validation {metric} ({n} frame{'' if n == 1 else 's'})"


class ClassIoUChart(_Chart):
    """Per-class IoU, one group of bars per class and one bar per proposal layer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(2.6, {"left": 0.12, "right": 0.98, "bottom": 0.42, "top": 0.95}, parent)
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
