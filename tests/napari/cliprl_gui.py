"""Helpers shared by the GUI tests (imported by name: tests/napari is on sys.path)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_cliprl.annotation.models import ModelSpec, PredictorCache

N_FRAMES, SIZE, STEPS = 4, (64, 80), 2
RUN_TIMEOUT_MS = 60_000


def tiny_spec() -> ModelSpec:
    return ModelSpec(arch="tiny-test", schema="endovis2018", device="cpu", steps=STEPS)


def add_clip(viewer: Any, clip: Any, name: str = "clip") -> Any:
    return viewer.add_image(clip.frames, name=name, rgb=True)


def make_widget(viewer: Any, predictors: PredictorCache, session_dir: Path | None = None) -> Any:
    """The annotator docked in ``viewer``, set to the tiny model with 2 steps on all frames."""
    from napari_cliprl._napari._widget import AnnotatorWidget

    widget = AnnotatorWidget(viewer)
    viewer.window.add_dock_widget(widget, name="CLIP-RL annotator")
    widget._predictors = predictors
    widget._model.set_architecture("tiny-test")
    widget._model._device.setCurrentText("cpu")
    widget._model.set_steps(STEPS)
    widget._data.set_range("all frames")
    if session_dir is not None:
        widget._data.set_session_dir(str(session_dir))
    return widget


def wait_run(qtbot: Any, widget: Any, timeout: int = RUN_TIMEOUT_MS) -> None:
    qtbot.waitUntil(lambda: not widget.is_running, timeout=timeout)


def wait_export(qtbot: Any, widget: Any) -> None:
    qtbot.waitUntil(lambda: widget._export_worker is None, timeout=RUN_TIMEOUT_MS)


class SlowPredictor:
    """Stands in for a model: sleeps per frame so a run lasts long enough to observe."""

    def __init__(self, seconds: float = 0.15) -> None:
        self.seconds = seconds
        self.calls = 0

    def predict(
        self,
        frame: np.ndarray,
        steps: int | None = None,
        key: Any = None,
        prior: Any = None,
        prior_weight: Any = None,
    ) -> Any:
        from types import SimpleNamespace

        time.sleep(self.seconds)
        self.calls += 1
        h, w = frame.shape[:2]
        maps = [np.full((h, w), t + 1, np.uint8) for t in range((steps or 0) + 1)]
        return SimpleNamespace(zero_shot=np.zeros((h, w), np.uint8), steps=maps, entropy=[0.0])


class FixedCache:
    """A PredictorCache that always returns the given predictor."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor

    def get(self, spec: ModelSpec) -> Any:
        return self.predictor


def error_messages(since: int = 0) -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [
        n.message
        for n in notification_manager.records[since:]
        if n.severity == NotificationSeverity.ERROR
    ]


def n_records() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)
