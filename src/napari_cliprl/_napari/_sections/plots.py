"""Small charts in the dock: the fine-tune curves and per-class IoU.

matplotlib draws them in a worker thread (Agg, no Qt: :func:`render_loss`,
:func:`render_class_iou`) and the dock only shows the picture, so neither importing
matplotlib nor laying out text ever holds up the window. Requests made while a picture is
being drawn are coalesced: the latest one is drawn next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy, QWidget

FOREGROUND = "#d0d0d0"  # readable on napari's dark theme
LOSS_COLOUR = "#ff7f0e"
VAL_COLOUR = "#1f9fff"
DPI = 90


class ChartView(QLabel):
    """Shows a chart drawn in a worker; ``placeholder`` until the first one."""

    def __init__(self, height: float, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(placeholder, parent)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # Ignored: a picture must never widen the dock (it is redrawn to the new width)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(int(height * DPI))
        self._height = height
        self._worker: Any = None
        self._next: tuple[Callable[..., np.ndarray], tuple[Any, ...]] | None = None
        self._last: tuple[Callable[..., np.ndarray], tuple[Any, ...]] | None = None
        self._drawn_width = 0
        self.rendered = 0  # pictures shown so far

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def request(self, render: Callable[..., np.ndarray], *args: Any) -> None:
        """Draw ``render(width_in, height_in, *args)`` (an RGBA array) in a worker."""
        self._next = self._last = (render, args)
        if self._worker is None:
            self._start()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self._last is not None and abs(self.width() - self._drawn_width) > 20:
            self.request(*self._last[:1], *self._last[1])

    def _start(self) -> None:
        render, args = self._next  # type: ignore[misc]
        self._next = None
        self._drawn_width = max(self.width(), 200)
        width = self._drawn_width / DPI
        worker = create_worker(render, width, self._height, *args)
        worker.returned.connect(self._show)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    def _show(self, rgba: np.ndarray) -> None:
        h, w = rgba.shape[:2]
        image = QImage(rgba.tobytes(), w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.setPixmap(QPixmap.fromImage(image))
        self.rendered += 1

    def _on_finished(self) -> None:
        self._worker = None
        if self._next is not None:
            self._start()


class LossPlot(ChartView):
    """A fine-tune's loss (left axis) and validation score (right axis): x is the epoch,
    then, right of the dotted line, the RL update (numbered on after the epochs)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(1.9, "The loss and validation curves appear here.", parent)
        self.curves: Any = None
        self.labels: dict[str, str] = {}

    @property
    def loss(self) -> list[tuple[float, float]]:
        if self.curves is None:
            return []
        return list(self.curves.loss) + list(self.curves.rl_loss)

    def set_curves(self, curves: Any) -> None:
        """Show ``curves`` (``_training_progress.Curves``; None: empty axes)."""
        self.curves = curves
        self.labels = loss_labels(curves)
        self.request(render_loss, curves)


def loss_labels(curves: Any) -> dict[str, str]:
    """What the loss plot's axes say."""
    rl = bool(curves is not None and curves.rl_loss)
    metric = getattr(curves, "metric", "mIoU")
    n = getattr(curves, "val_frames", None)
    y2 = f"validation {metric}"
    if n is not None:
        y2 += f" ({n} frame{'' if n == 1 else 's'})"
    return {"x": "epoch, then RL update" if rl else "epoch", "y": "loss", "y2": y2}


class ClassIoUChart(ChartView):
    """Per-class IoU, one group of bars per class and one bar per proposal layer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(2.6, "The IoU per class and step appears here.", parent)
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
        self.request(render_class_iou, self.classes, self.series)


# -- drawing (worker threads: matplotlib's Agg canvas, no Qt) ------------------------------
def _figure(width: float, height: float, margins: dict[str, float]) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, facecolor="none")
    figure.subplots_adjust(**margins)
    return figure


def _style(ax: Any) -> None:
    ax.set_facecolor("none")
    ax.tick_params(colors=FOREGROUND, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color(FOREGROUND)


def _pixels(figure: Any) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def render_loss(width: float, height: float, curves: Any) -> np.ndarray:
    """The loss plot of ``curves`` as an RGBA picture (H x W x 4 uint8)."""
    margins = {"left": 0.16, "right": 0.84, "bottom": 0.22, "top": 0.95}
    figure = _figure(width, height, margins)
    ax = figure.add_subplot(111)
    twin = ax.twinx()
    for a in (ax, twin):
        _style(a)
    labels = loss_labels(curves)
    ax.set_xlabel(labels["x"], color=FOREGROUND, fontsize=7)
    ax.set_ylabel(labels["y"], color=LOSS_COLOUR, fontsize=7)
    twin.set_ylabel(labels["y2"], color=VAL_COLOUR, fontsize=7)
    twin.set_ylim(0, 1)
    if curves is not None:
        for points, style, label in ((curves.loss, "-", "supervised"), (curves.rl_loss, ":", "RL")):
            if points:
                ax.plot(*zip(*points), style, color=LOSS_COLOUR, lw=1.2, label=label)
        if curves.rl_loss and curves.loss:
            ax.axvline(curves.epochs + 0.5, color=FOREGROUND, lw=0.6, ls=":")
        if curves.loss or curves.rl_loss:
            ax.legend(fontsize=6, frameon=False, labelcolor=FOREGROUND, loc="upper right")
        if curves.val:
            twin.plot(*zip(*curves.val), "o-", color=VAL_COLOUR, lw=1.2, ms=3)
    return _pixels(figure)


def render_class_iou(
    width: float, height: float, classes: Sequence[str], series: dict[str, Sequence[float]]
) -> np.ndarray:
    """Grouped bars of per-class IoU as an RGBA picture (H x W x 4 uint8)."""
    figure = _figure(width, height, {"left": 0.12, "right": 0.98, "bottom": 0.42, "top": 0.95})
    ax = figure.add_subplot(111)
    _style(ax)
    ax.set_ylabel("IoU", color=FOREGROUND, fontsize=7)
    ax.set_ylim(0, 1)
    n = max(len(series), 1)
    width_bar = 0.8 / n
    x = np.arange(len(classes))
    for j, (name, values) in enumerate(series.items()):
        heights = np.nan_to_num(np.asarray(values, dtype=float))
        ax.bar(x + (j - (n - 1) / 2) * width_bar, heights, width_bar, label=name)
    ax.set_xticks(x, list(classes), rotation=35, ha="right", fontsize=6)
    if series:
        ax.legend(fontsize=6, ncols=min(n, 3), frameon=False, labelcolor=FOREGROUND)
    return _pixels(figure)
