"""Fixtures for the GUI tests: a small clip in a viewer with the annotator docked.

Every test here needs a display (run under ``xvfb-run -a``); a shared predictor cache builds
the tiny-test model once per session so each run takes milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cliprl_gui import N_FRAMES, SIZE, add_clip, make_dock, run_all, tiny_spec

from napari_cliprl.annotation.models import PredictorCache


@pytest.fixture(scope="session")
def predictors() -> PredictorCache:
    """One tiny-test model for the whole session."""
    cache = PredictorCache()
    cache.get(tiny_spec())
    return cache


@pytest.fixture
def small_clip() -> Any:
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
    """(viewer, widget) after Run was clicked on all frames of the small clip and the run
    and its layers are done (session in tmp_path)."""
    viewer = make_napari_viewer()
    add_clip(viewer, small_clip)
    widget = make_dock(viewer, qtbot, predictors, tmp_path / "session")
    run_all(qtbot, widget)
    assert widget.sections.run.status().startswith("Done"), widget.sections.run.status()
    return viewer, widget
