"""Predictor on tiny-test: label maps at the frame's size, feature cache, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cliprl.model import build_model
from napari_cliprl.predictor import Predictor, as_rgb_frame


@pytest.fixture(scope="module")
def model():
    return build_model("tiny-test")


def _frame(seed: int = 0, size: tuple[int, int] = (90, 117)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def test_labels_per_step_at_the_frames_own_size(model):
    predictor = Predictor(model, device="cpu")
    pred = predictor.predict(_frame(), steps=3, return_probabilities=True)
    assert pred.zero_shot.shape == (90, 117) and pred.zero_shot.dtype == np.uint8
    assert len(pred.steps) == 4 and pred.num_steps == 3
    assert all(s.shape == (90, 117) and s.dtype == np.uint8 for s in pred.steps)
    assert all(int(s.max()) < model.num_classes for s in [pred.zero_shot, *pred.steps])
    assert pred.labels is pred.steps[-1]
    assert len(pred.entropy) == 4
    assert all(0.0 <= e <= np.log(model.num_classes) + 1e-5 for e in pred.entropy)
    assert [a.shape for a in pred.actions] == [(32, 40)] * 3
    assert pred.probabilities.shape == (model.num_classes, 32, 40)
    np.testing.assert_allclose(pred.probabilities.sum(0), 1.0, rtol=1e-5)
    assert set(pred.seconds) == {"backbone", "decoder", "agent", "labels"}


def test_default_steps_come_from_the_model(model):
    pred = Predictor(model, device="cpu").predict(_frame())
    assert pred.num_steps == model.config.steps


def test_cached_and_uncached_predictions_are_identical(model):
    frame = _frame(1)
    cold = Predictor(model, cache_size=0, device="cpu").predict(frame, steps=2)
    predictor = Predictor(model, cache_size=4, device="cpu")
    first = predictor.predict(frame, steps=2)
    again = predictor.predict(frame.copy(), steps=2)  # same pixels -> same cache key
    assert not cold.cached and not first.cached and again.cached
    for p in (first, again):
        assert np.array_equal(p.zero_shot, cold.zero_shot)
        assert all(np.array_equal(a, b) for a, b in zip(p.steps, cold.steps))
    more = predictor.predict(frame, steps=4)  # another T re-uses the features
    assert more.cached and all(np.array_equal(a, b) for a, b in zip(more.steps, cold.steps))


def test_cache_is_bounded_lru_and_keys_name_frames(model):
    predictor = Predictor(model, cache_size=2, device="cpu")
    for i in range(3):
        predictor.predict(_frame(i), key=("clip", i))
    assert predictor.cache_len() == 2
    assert predictor.predict(_frame(2), key=("clip", 2)).cached
    assert not predictor.predict(_frame(0), key=("clip", 0)).cached  # evicted first
    predictor.clear_cache()
    assert predictor.cache_len() == 0


def test_cache_survives_a_new_decoder_but_not_a_new_backbone():
    model = build_model("tiny-test")
    predictor = Predictor(model, device="cpu")
    frame = _frame(3)
    before = predictor.predict(frame, steps=1)
    with torch.no_grad():
        model.decoder.bias.add_(torch.linspace(-5, 5, model.num_classes))  # "fine-tuned"
    after = predictor.predict(frame, steps=1)
    assert after.cached
    assert not np.array_equal(after.steps[0], before.steps[0])
    with torch.no_grad():
        model.backbone.visual.conv1.weight.mul_(1.1)  # backbone fine-tuned in place
    assert not predictor.predict(frame, steps=1).cached
    predictor.model = build_model("tiny-test")  # swap: original backbone again
    assert predictor.predict(frame, steps=1).cached


def test_grey_and_rgba_frames_are_converted(model):
    predictor = Predictor(model, device="cpu")
    rgb = _frame(4)
    grey = rgb[..., 0]
    assert np.array_equal(as_rgb_frame(grey), np.repeat(grey[..., None], 3, axis=-1))
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=-1)
    a, b = predictor.predict(rgb, steps=1), predictor.predict(rgba, steps=1)
    assert all(np.array_equal(x, y) for x, y in zip(a.steps, b.steps))
    assert predictor.predict(grey, steps=0).steps[0].shape == grey.shape


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (np.zeros((8, 8, 3), np.float32), "must be uint8.*float32"),
        (np.zeros((8, 8, 3), np.uint16), "must be uint8.*uint16"),
        (np.zeros((8, 8, 2), np.uint8), "got shape \\(8, 8, 2\\)"),
        (np.zeros((2, 8, 8, 3), np.uint8), "got shape"),
        ([[0, 1]], "numpy array"),
    ],
)
def test_bad_frames_are_refused_clearly(model, frame, match):
    with pytest.raises(ValueError, match=match):
        Predictor(model, device="cpu").predict(frame)


def test_predict_frames_reports_progress_and_stops(model):
    frames = [_frame(i, (40, 50)) for i in range(5)]
    seen = []
    predictor = Predictor(model, device="cpu")
    out = list(
        predictor.predict_frames(frames, steps=1, progress=lambda d, t, m="": seen.append((d, t)))
    )
    assert [i for i, _ in out] == [0, 1, 2, 3, 4]
    assert seen[-1] == (5, 5)
    calls = iter([False, False, True])
    stopped = list(
        predictor.predict_frames(frames, indices=[4, 0, 2], should_stop=lambda: next(calls))
    )
    assert [i for i, _ in stopped] == [4, 0]
    batched = dict(predictor.predict_frames(frames, steps=1, batch_size=2))
    single = dict(out)
    assert all(np.array_equal(batched[i].steps[1], single[i].steps[1]) for i in range(5))


@pytest.mark.parametrize("size", [(90, 117), (1024, 1280), (20, 30), (32, 40)])
def test_fast_upsampling_equals_bilinear_then_argmax(size):
    import torch.nn.functional as F

    from napari_cliprl.model.inference import upsample_labels as _labels

    g = torch.Generator().manual_seed(0)
    coarse = torch.randn(1, 5, 9, 11, generator=g) * 3
    logits = F.interpolate(coarse, size=(32, 40), mode="bilinear")[0]
    expected = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)
    assert np.array_equal(_labels(logits, size), expected[0].argmax(0).numpy())


def test_a_model_without_fusion_predicts_a_frame_with_a_context_on_its_own(model):
    from napari_cliprl.fusion.context import FrameContext, SideMaps

    predictor = Predictor(model, device="cpu")
    frame = _frame(5)
    plain = predictor.predict(frame, steps=1)
    H, W = frame.shape[:2]
    carried = SideMaps(np.full((H, W), 4, np.uint8), np.ones((H, W), np.float32), 1, 0)
    pred = predictor.predict(frame, steps=1, context=FrameContext(1, carried, None))
    assert all(np.array_equal(a, b) for a, b in zip(pred.steps, plain.steps)) and pred.cached
    assert (pred.propagated == 4).all()  # the propagated labels are still there to show
    bad = FrameContext(
        1, SideMaps(np.zeros((9, 9), np.uint8), np.ones((9, 9), np.float32), 1, 0), None
    )
    with pytest.raises(ValueError, match="context of size"):
        predictor.predict(frame, context=bad)
