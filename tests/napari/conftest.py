"""Fixtures for the GUI tests: a small clip in a viewer with the annotator docked.

Every test here needs a display (run under ``xvfb-run -a``); a shared predictor cache builds
the tiny-test model once per session so each run takes milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cliprl_gui import add_clip, make_widget, tiny_spec, wait_run

from napari_cliprl.annotation.models import PredictorCache


@pytest.fixture(scope="session")
def predictors() -> PredictorCache:
    """One tiny-test model for the whole session."""
    cache = PredictorCache()
    cache.get(tiny_spec())
    return cache


@pytest.fixture
def small_clip() -> Any:
    from cliprl_gui import N_FRAMES, SIZE

    from napari_cliprl.io.sample import synthetic_clip

    return synthetic_clip(n_frames=N_FRAMES, size=SIZE, seed=1)


@pytest.fixture
def annotator(
    make_napari_viewer: Any,
    qtbot: Any,
    predictors: PredictorCache,
    small_clip: Any,
    tmp_path: Path,
) -> tuple[Any, Any]:
    """(viewer, widget) after a finished run on the small clip (session in tmp_path)."""
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_widget(viewer, predictors, tmp_path / "session")
    widget.run()
    wait_run(qtbot, widget)
    return viewer, widget
