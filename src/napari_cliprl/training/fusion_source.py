"""Where the fusion phase gets a training sequence's video, and what it keeps per run.

The reviewed frames of an export are frames ``seq.indices`` of the video its manifest names
(``source``); propagating between them needs that whole video (the frames in between).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from napari_cliprl.io import open_frames
from napari_cliprl.io.manifest import frame_source, read_manifest
from napari_cliprl.training.fusion_config import FusionConfig
from napari_cliprl.training.fusion_data import FusionData


@dataclass
class FusionRun:
    """The fusion phase's data (rebuilt on resume; nothing here is checkpointed)."""

    videos: list[Any]  # per training sequence: its video's frames, or None
    train: FusionData | None = None  # samples whose target is a training frame
    val: FusionData | None = None  # samples whose target is a validation frame
    views: list[tuple[Any, Any, Any]] = field(default_factory=list)  # per ``val`` sample:
    # (FusionSample, its frame H x W x 3, its target H x W) for validating at full size
    notes: list[str] = field(default_factory=list)  # why a sequence has no samples


def sequence_video(seq: Any, config: FusionConfig) -> Any:
    """The frames of the video ``seq``'s reviewed frames come from, or None when unreadable.

    ``config.video`` when given; else, for an export with a manifest, its source (frame
    ``seq.indices[i]`` of it is the reviewed frame i). Other folders (datasets labelled on
    every frame) have no reviewed frames to propagate between: None.
    """
    try:
        if config.video is not None:
            return open_frames(config.video)
        label = seq.label_paths[0]
        folder = label.parent.parent if hasattr(label, "parent") else None
        if folder is not None and (folder / "manifest.json").is_file():
            return open_frames(frame_source(folder, read_manifest(folder) or {}))
    except (OSError, ValueError):
        pass
    return None


def fusion_videos(sequences: list[Any], config: FusionConfig) -> list[Any]:
    """Per sequence: its video (None when fusion is off or the video is unreadable)."""
    if not config.enabled:
        return [None] * len(sequences)
    return [sequence_video(seq, config) for seq in sequences]
