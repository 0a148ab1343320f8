"""Helpers of the training tests: tiny synthetic data (64 x 80) in the export layout."""

from pathlib import Path

import numpy as np

SIZE = (64, 80)
UNREVIEWED = 4  # frame position marked not reviewed in the manifest


def write_export(folder: Path, n_frames: int = 6, seed: int = 3, unreviewed=(UNREVIEWED,)) -> Path:
    """A synthetic clip as an export folder; frames in ``unreviewed`` carry nonsense labels."""
    from napari_cliprl.io.export import make_manifest, write_labels
    from napari_cliprl.io.sample import synthetic_clip

    clip = synthetic_clip(n_frames, SIZE, seed=seed)
    names = [f"frame{k:03d}" for k in range(n_frames)]
    labels = {n: clip.labels[k] for k, n in enumerate(names)}
    for k in unreviewed:
        labels[names[k]] = np.full(SIZE, 7, np.uint8)  # "clamps" everywhere: never ground truth
    frames = [(n, k, k not in unreviewed) for k, n in enumerate(names)]
    write_labels(
        folder,
        labels,
        clip.schema,
        images=dict(zip(names, clip.frames)),
        manifest=make_manifest("synthetic", clip.schema, frames),
    )
    return folder


def tiny_config(data: Path, out: Path, **overrides):
    """A FinetuneConfig that trains tiny-test at 64 x 80 in about a second."""
    from napari_cliprl.training.config import (
        CurriculumConfig,
        FinetuneConfig,
        RLConfig,
        SupervisedConfig,
    )

    sup = overrides.pop("supervised", SupervisedConfig(epochs=2, batch_size=2, learning_rate=3e-3))
    rl = overrides.pop(
        "rl", RLConfig(iterations=2, imitation_iters=2, num_envs=2, augment_copies=1)
    )
    return FinetuneConfig(
        data=[str(data)],
        out=str(out),
        arch="tiny-test",
        input_size=SIZE,
        device="cpu",
        supervised=sup,
        rl=rl,
        curriculum=overrides.pop("curriculum", CurriculumConfig()),
        warmup_epochs=1,
        checkpoint_every=2,
        log_every=1,
        **overrides,
    )
