"""One inference path: what ``cliprl evaluate`` measures is what the Predictor shows a user.

The demo checkpoint (trained, so label maps have real boundaries) on synthetic frames of odd
sizes: evaluation, in-training validation and the Predictor share one step-prediction function
and one upsampling, so their label maps are identical, not merely close.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cliprl.annotation.models import demo_checkpoint
from napari_cliprl.io.sample import synthetic_clip
from napari_cliprl.metrics import evaluate_frames, pixels_to_change
from napari_cliprl.model import build_model
from napari_cliprl.predictor import Predictor
from napari_cliprl.steps import ZERO_SHOT_KEY, proposal_keys, step_key
from napari_cliprl.training.evaluate import evaluate_model, predict_labelled, predict_steps


@pytest.fixture(scope="module")
def model():
    folder = demo_checkpoint()
    if folder is None:
        pytest.skip("the demo checkpoint is not part of this build")
    return build_model(checkpoint=folder)


@pytest.fixture(scope="module")
def sequence():
    clip = synthetic_clip(n_frames=3, size=(90, 117), seed=2)
    return list(zip(clip.frames, clip.labels))  # seq[f] -> (frame, ground truth)


def _predictor_maps(model, frame: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    pred = Predictor(model, cache_size=0, device="cpu").predict(frame, steps=steps)
    return {ZERO_SHOT_KEY: pred.zero_shot} | {step_key(t): m for t, m in enumerate(pred.steps)}


def test_evaluation_and_the_predictor_give_identical_label_maps(model, sequence):
    T = 3
    seen = 0
    for maps, gt, _ in predict_labelled(model, [sequence], [(0, f) for f in range(3)], T):
        frame, truth = sequence[seen]
        assert np.array_equal(gt, truth)
        expected = _predictor_maps(model, frame, T)
        assert list(maps) == proposal_keys(T) == list(expected)
        for key in maps:
            assert maps[key].shape == frame.shape[:2]
            assert np.array_equal(maps[key], expected[key]), key
        seen += 1
    assert seen == 3


def test_evaluate_model_reports_the_metrics_of_the_predictors_maps(model, sequence):
    T = 2
    result = evaluate_model(model, [sequence], steps=T)
    per_key = {k: [] for k in proposal_keys(T)}
    for frame, _ in sequence:
        for key, m in _predictor_maps(model, frame, T).items():
            per_key[key].append(m)
    gts = [gt for _, gt in sequence]
    for key, maps in per_key.items():
        expected = evaluate_frames(maps, gts, model.num_classes)
        assert result[key]["miou"] == expected["miou"], key
        assert result["pixels_to_change"][key] == pixels_to_change(maps, gts)
    assert result["steps"] == T and result["frames"] == 3


def test_validation_on_resized_frames_matches_the_predictor(model):
    """``validate`` (early stop, T*) sees frames already at the input size, as floats."""
    h, w = model.input_size
    frames = synthetic_clip(n_frames=2, size=(h, w), seed=4).frames
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    labels, entropy = predict_steps(model, images, steps=2)
    assert len(labels) == 4 and len(entropy) == 3
    for i, frame in enumerate(frames):
        expected = _predictor_maps(model, frame, 2)
        for key, got in zip(proposal_keys(2), labels):
            assert np.array_equal(got[i].numpy(), expected[key]), key
    pred = Predictor(model, device="cpu").predict(frames[0], steps=2)
    assert [float(e[0].mean()) for e in entropy] == pytest.approx(pred.entropy, rel=1e-5)


def test_greedy_refinement_equals_replaying_its_actions(model):
    """CLIPRL.refine, the training replay and the rollout run one episode loop."""
    from napari_cliprl.training.rl import AgentReplay

    frames = synthetic_clip(n_frames=2, size=(64, 80), seed=5).frames
    with torch.no_grad():
        features = model.encode(model.preprocess(torch.from_numpy(frames)))
        _, L0, pixel = model.decode(features)
        refined, actions = model.refine(L0, pixel, 3)
        action_logits, values = AgentReplay(model.agent)(L0, pixel, torch.stack(actions))
    assert action_logits.shape[:2] == (3, 2) and values.shape[:2] == (3, 2)
    assert torch.equal(action_logits.argmax(2), torch.stack(actions))
    current = L0
    for t in range(3):
        current = model.agent.transition(current, actions[t])
        assert torch.equal(current, refined[t])
