"""Sizes a model commits memory for are bounded before anything is allocated.

``steps`` (T) everywhere a model or predictor takes it (limits.MAX_STEPS), input sizes
(limits.MAX_INPUT_SIDE, a multiple of the patch size) before any layer is built.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cliprl.cli import main
from napari_cliprl.limits import LimitError
from napari_cliprl.model import build_model
from napari_cliprl.predictor import Predictor
from napari_cliprl.training.evaluate import evaluate_model

HUGE = 10**6


@pytest.fixture(scope="module")
def tiny():
    return build_model("tiny-test")


def _frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)


def test_steps_over_the_limit_are_refused_by_every_entry(tiny):
    predictor = Predictor(tiny, device="cpu")
    with pytest.raises(LimitError, match="steps.*over the limit of 10"):
        predictor.predict(_frame(), steps=HUGE)
    with pytest.raises(LimitError, match="over the limit of 10"):
        predictor.predict_batch([_frame()], steps=11)
    with pytest.raises(LimitError, match="over the limit of 10"):
        tiny(torch.zeros(1, 3, 128, 160), steps=HUGE)
    with pytest.raises(LimitError, match="over the limit of 10"):
        evaluate_model(tiny, [[(_frame(), np.zeros((40, 50), np.uint8))]], steps=HUGE)
    with pytest.raises(ValueError, match="steps must be a whole number >= 0, got -1"):
        predictor.predict(_frame(), steps=-1)
    assert predictor.predict(_frame(), steps=10).num_steps == 10  # the limit itself is fine


def test_the_steps_limit_can_be_raised_by_the_user(tiny, monkeypatch):
    monkeypatch.setenv("CLIPRL_MAX_STEPS", "12")
    assert Predictor(tiny, device="cpu").predict(_frame(), steps=12).num_steps == 12


@pytest.mark.parametrize(
    ("size", "pattern"),
    [
        ((100000, 100000), "over the limit of 2,048"),
        ((130, 160), r"input size \(130, 160\).*multiple of the patch size 16"),
        ((0, 160), r"input size \(0, 160\)"),
    ],
)
def test_input_sizes_are_checked_before_building(size, pattern, monkeypatch):
    import napari_cliprl.model.build as build

    def never(*args, **kwargs):
        raise AssertionError("built a model of a refused size")

    monkeypatch.setattr(build, "_create_clip", never)
    with pytest.raises(ValueError, match=pattern):
        build_model("ViT-B-16", input_size=size)


def test_huge_steps_on_the_command_line_is_one_line(tmp_path, capsys):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (40, 32)).save(frames / "a.png")
    args = ["predict", str(frames), "--out", str(tmp_path / "out"), "--arch", "tiny-test"]
    assert main([*args, "--steps", str(HUGE), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "over the limit of 10" in err, err
