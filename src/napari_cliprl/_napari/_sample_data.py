"""Sample data contribution: the synthetic surgical clip with its ground truth."""

from __future__ import annotations

from typing import Any

from ._layers import labels_layer_data

SAMPLE_FRAMES = 16
SAMPLE_SIZE = (256, 320)


def make_sample_data(
    n_frames: int = SAMPLE_FRAMES, size: tuple[int, int] = SAMPLE_SIZE, seed: int = 0
) -> list[tuple[Any, dict, str]]:
    """The synthetic clip (T x H x W x 3 image) and its "ground truth" Labels layer."""
    from napari_cliprl.io.sample import synthetic_clip

    clip = synthetic_clip(n_frames=n_frames, size=size, seed=seed)
    image = (clip.frames, {"name": "synthetic clip", "rgb": True}, "image")
    return [image, labels_layer_data(clip.labels, clip.schema, "ground truth")]
