"""Reader contribution: videos, frame folders and labelled sequences as lazy layers.

Frames become a T x H x W x 3 image layer read on demand (:class:`LazyFrames`), so a long
video opens at once without filling memory. A labelled sequence (EndoVis 2017/2018, an export
of this plugin, CholecSeg8k) adds a "ground truth" Labels layer, also read frame by frame.
Paths this plugin does not handle give None; a file it should handle but cannot read gives
an error notification and no layer, never an exception.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_error

from napari_cliprl.io.errors import DataError
from napari_cliprl.io.lazy import EditableLazyArray, LazyFrames
from napari_cliprl.io.sources import is_video, open_frames
from napari_cliprl.schemas import SchemaError

from ._layers import SOURCE_KEY, labels_layer_data

LayerData = list[tuple[Any, ...]]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NULL_LAYER: LayerData = [(None,)]  # napari's sentinel: "read, but nothing to add"


def get_reader(path: str | list[str]) -> Callable[[Any], LayerData] | None:
    """The reader for ``path`` (a video file or a folder of frames), or None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_file() or not p.exists():
        return read_video if is_video(p) else None
    if _is_sequence_folder(p):
        return read_folder
    return None


def _is_sequence_folder(path: Path) -> bool:
    """A folder with left_frames/, *_endo.png frames, or image files directly inside."""
    if (path / "left_frames").is_dir():
        return True
    try:
        return any(f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() for f in path.iterdir())
    except OSError:
        return False


def read_video(path: str | list[str]) -> LayerData:
    """A video file as a lazy image layer (error notification and no layer if unreadable)."""
    return _guarded(path, _frames_layers)


def read_folder(path: str | list[str]) -> LayerData:
    """A frame folder or labelled sequence: the frames, plus "ground truth" when present."""
    return _guarded(path, _folder_layers)


def _guarded(path: str | list[str], read: Callable[[Path], LayerData]) -> LayerData:
    p = Path(path[0] if isinstance(path, list) else path)
    try:
        return read(p)
    except (DataError, SchemaError, OSError, ValueError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        show_error(f"Cannot open {p.name}: {message}")
        return NULL_LAYER


def _frames_layers(path: Path) -> LayerData:
    source = open_frames(path)
    frames = LazyFrames(source)
    meta = {
        "name": path.stem if path.is_file() else path.name,
        "rgb": True,
        "metadata": {SOURCE_KEY: os.fspath(path)},
    }
    return [(frames, meta, "image")]


def _folder_layers(path: Path) -> LayerData:
    from napari_cliprl.io import detect_format, read_labeled

    try:
        detect_format(path)
    except DataError:
        return _frames_layers(path)
    seq = read_labeled(path)
    frames = LazyFrames(seq.frames)
    _, h, w, _ = seq.frames.shape
    labels = EditableLazyArray(_reported_labels(seq, h, w), len(seq), (h, w))
    image = (
        frames,
        {"name": path.name, "rgb": True, "metadata": {SOURCE_KEY: os.fspath(path)}},
        "image",
    )
    return [image, labels_layer_data(labels, seq.schema, "ground truth")]


def _reported_labels(seq: Any, h: int, w: int) -> Callable[[int], np.ndarray]:
    """``seq.labels`` that turns an unreadable label file into a notification and an
    all-ignore frame (id 255) instead of an exception while napari draws."""
    reported: set[int] = set()

    def get(index: int) -> np.ndarray:
        try:
            return seq.labels(index)
        except (DataError, SchemaError, OSError) as e:
            if index not in reported:
                reported.add(index)
                show_error(f"Cannot read the labels of frame {index}: {e}")
            return np.full((h, w), seq.schema.ignore_index, np.uint8)

    return get
