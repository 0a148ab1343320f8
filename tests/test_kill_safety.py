"""``cliprl predict --save-frames`` and ``cliprl finetune`` killed with SIGKILL at random points:
a few rounds of benchmarks/kill_safety.py (which runs many more), asserting its invariants."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _kill_safety():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "kill_safety.py"
    spec = importlib.util.spec_from_file_location("kill_safety", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_killed_predict_never_leaves_a_broken_or_falsely_reviewed_export(tmp_path):
    report = _kill_safety().kill_predict(tmp_path, iterations=2, seed=1, frames=6)
    assert report["violations"] == []
    assert report["runs"] >= 4


def test_killed_finetune_leaves_a_loadable_checkpoint_and_never_trains_on_unreviewed(tmp_path):
    report = _kill_safety().kill_finetune(tmp_path, iterations=3, seed=1)
    assert report["violations"] == []
    assert report["runs"] == 5
