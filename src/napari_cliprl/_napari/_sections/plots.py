"""Small matplotlib charts embedded in the dock: the fine-tune curves and per-class IoU."""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    """Training loss (left axis) and the validation metric (right axis) per report."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(1.9, parent)
        self.curves: dict[str, list[tuple[int, float]]] = {}
        self.clear()

    @property
    def loss(self) -> list[tuple[int, float]]:
        return self.curves.get("loss", []) + self.curves.get("rl_loss", [])

    def clear(self) -> None:
        self.curves = {}
        self._draw()

    def set_curves(self, curves: dict[str, Sequence[tuple[int, float]]]) -> None:
        """Replace the curves (``loss_curves``): name -> (report number, value) pairs."""
        self.curves = {name: list(points) for name, points in curves.items()}
        self._draw()

    def _draw(self) -> None:
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        _style(ax)
        ax.set_xlabel("report", color=FOREGROUND, fontsize=7)
        ax.set_ylabel("loss", color=LOSS_COLOUR, fontsize=7)
        for name, style in (("loss", "-"), ("rl_loss", ":")):
            if self.curves.get(name):
                label = "RL loss" if name == "rl_loss" else "supervised loss"
                ax.plot(*zip(*self.curves[name]), style, color=LOSS_COLOUR, lw=1.2, label=label)
        if self.loss:
            ax.legend(fontsize=6, frameon=False, labelcolor=FOREGROUND, loc="upper left")
        twin = ax.twinx()
        _style(twin)
        twin.set_ylabel("val mIoU (T*)", color=VAL_COLOUR, fontsize=7)
        twin.set_ylim(0, 1)
        if self.curves.get("val"):
            twin.plot(*zip(*self.curves["val"]), "o-", color=VAL_COLOUR, lw=1.2, ms=3)
        self.draw_idle()


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
