"""Training the fusion from reviewed frames of a video: the fine-tune's fusion phase, end to end
on a tiny synthetic video, and the rule that keeps a trained head only where it helps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _fusion_data import SIZE, K, ShiftFlows, context, side, stripes

from napari_cliprl.fusion.samples import SampleConfig, fusion_samples
from napari_cliprl.model.fusion_head import FusionHead
from napari_cliprl.training.fusion_data import build_fusion_data, fused_scores_at
from napari_cliprl.training.fusion_fit import HeadSchedule, evaluate_head, fit_head

VIDEO = 8
REVIEWED = (1, 4, 6)


def _export_with_video(tmp_path: Path, source: str | None = None) -> Path:
    """Frames of a synthetic clip as a video folder, and an export of 3 reviewed frames whose
    manifest names that folder as its source (or ``source``)."""
    from napari_cliprl.io._png import write_png
    from napari_cliprl.io.export import make_manifest, write_labels
    from napari_cliprl.io.sample import synthetic_clip

    clip = synthetic_clip(VIDEO, (64, 80), seed=4)
    video = tmp_path / "video"
    names = [f"frame{k:03d}" for k in range(VIDEO)]
    for name, frame in zip(names, clip.frames):
        write_png(video / f"{name}.png", frame)
    picked = {names[k]: clip.labels[k] for k in REVIEWED}
    frames = [(names[k], k, True) for k in REVIEWED]
    manifest = make_manifest(source or str(video), clip.schema, frames)
    images = {names[k]: clip.frames[k] for k in REVIEWED}
    write_labels(tmp_path / "export", picked, clip.schema, images=images, manifest=manifest)
    return tmp_path / "export"


def _config(data: Path, out: Path):
    from napari_cliprl.training.config import (
        FinetuneConfig,
        FusionConfig,
        RLConfig,
        SupervisedConfig,
    )

    return FinetuneConfig(
        data=[str(data)],
        out=str(out),
        arch="tiny-test",
        input_size=(64, 80),
        device="cpu",
        supervised=SupervisedConfig(epochs=2, batch_size=2),
        rl=RLConfig(iterations=2, imitation_iters=2, num_envs=2, augment_copies=1),
        fusion=FusionConfig(head_iterations=6, iterations_per_sample=2),
        val_fraction=0.0,
        warmup_epochs=1,
    )


def test_a_fine_tune_on_reviewed_frames_of_a_video_learns_the_fusion(tmp_path):
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training.finetune import finetune

    result = finetune(_config(_export_with_video(tmp_path), tmp_path / "ckpt"))
    (report,) = [m for m in result.history if m.get("phase") == "fusion"]
    assert report["samples"] == 6 + 1  # 3 frames: 6 pairs, frame 4 seen from both sides
    assert report["trained"] in (0.0, 1.0) and "cv_wrong" in report
    final = result.history[-1]
    assert final["phase"] == "tstar" and "fusion_tstar" in final
    model = build_model(checkpoint=result.checkpoint)
    assert model.config.fusion and model.fusion_head is not None
    assert model.agent.num_actions == model.num_classes + 6
    assert model.config.fusion_steps == final["fusion_tstar"]


def test_without_a_readable_video_a_fine_tune_trains_as_before(tmp_path):
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training.finetune import finetune

    data = _export_with_video(tmp_path, source="gone.mp4")  # the video is not there
    result = finetune(_config(data, tmp_path / "ckpt"))
    assert not [m for m in result.history if m.get("phase") == "fusion"]
    assert not build_model(checkpoint=result.checkpoint).config.fusion


def _data(indices, offset=0):
    anchors = {i: stripes(offset=2 * i + offset) for i in indices}
    samples = list(fusion_samples(anchors, ShiftFlows(12), SampleConfig(round_trips=(1, 2))))
    grid = (12, 20)
    gen = torch.Generator().manual_seed(0)
    outputs = {i: (torch.randn(K, *grid, generator=gen), torch.zeros(4, *grid)) for i in anchors}
    targets = {i: stripes(offset=2 * i) for i in anchors}
    return build_fusion_data(samples, outputs, targets, num_classes=K)


def test_fusion_data_targets_are_the_reviewed_labels_at_the_fusion_resolution():
    data = _data([2, 6, 9])
    assert len(data) == 6 + 1 and sorted(set(data.index)) == [2, 6, 9]
    assert data.target.shape[-2:] == (48, 80)  # 4 x the grid
    head = FusionHead(num_classes=K)  # untrained: trusts the flow
    L0, gains = head(data.logits, data.context)
    scores = fused_scores_at(L0, gains, data.side_labels, data.side_weight)
    carried = data.side_weight.sum(1) > 0.25 + 1e-6  # a side with confidence there
    agree = (scores.argmax(1) == data.target)[carried].float().mean()
    assert agree > 0.99  # exact flows: the carried labels are the targets


def test_a_trained_head_is_kept_only_when_it_beats_trusting_the_flow():
    data = _data([2, 6, 9])
    weight = torch.ones(K)
    head = FusionHead(num_classes=K)
    untrained = evaluate_head(head, data, weight)["wrong"]
    decision = fit_head(head, data, weight, HeadSchedule(iterations=20))
    assert set(decision) >= {"trained", "cv_prior_wrong", "cv_wrong"}
    if not decision["trained"]:  # rejected: the head is the untrained one, unchanged
        assert evaluate_head(head, data, weight)["wrong"] == untrained
    one = _data([5])  # round trips onto one reviewed frame: nothing to validate on
    head = FusionHead(num_classes=K)
    before = [p.detach().clone() for p in head.parameters()]
    assert fit_head(head, one, weight, HeadSchedule(iterations=5)) == {"trained": 0.0}
    assert all(torch.equal(a, b) for a, b in zip(before, head.parameters()))


def test_the_take_image_action_gives_the_cell_to_the_model():
    from napari_cliprl.fusion.grid import cell_index, fused_labels
    from napari_cliprl.model.fusion_head import apply_side_actions

    grid = (12, 20)
    ctx = context(side(np.full(SIZE, 3, np.uint8), 1.0), side(np.full(SIZE, 4, np.uint8), 1.0))
    logits = torch.zeros(1, K, *grid)
    logits[:, 7] = 5.0  # the model says class 7 everywhere
    gains = torch.full((1, 2, *grid), 100.0)
    mask = torch.zeros(1, *grid, dtype=torch.bool)
    mask[0, 5, 5] = True
    none = torch.zeros_like(mask)
    new = apply_side_actions(logits, gains, none, none, 2.0, take_image=mask)
    labels = fused_labels(logits[0], new[0], ctx)
    rows, cols = cell_index(SIZE, grid)
    cell = (rows[:, None] == 5) & (cols[None, :] == 5)
    assert (labels[cell] == 7).all() and (labels[~cell] != 7).mean() > 0.9
