"""EndoVis 2018 robotic scene segmentation: ``seq_N/left_frames`` + ``seq_N/labels``.

Label files are RGB PNGs; classes are matched by colour (names vary between releases, e.g.
"intestine" vs "small-intestine"). ``labels.json`` (a list of ``{"name", "color": [R, G, B],
"classid"}``) sits inside the sequence folder or beside the sequences. A label pixel whose
colour is in no class is an error naming the file, the pixel count and the colour
(labels.json itself is read by :mod:`.labels_json`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_cliprl.io._files import file_present
from napari_cliprl.io._png import list_images
from napari_cliprl.io.errors import DataError, data_error
from napari_cliprl.io.export import write_labels
from napari_cliprl.io.frames import FrameFolder
from napari_cliprl.io.labeled import LabeledSequence
from napari_cliprl.io.labels_json import find_labels_json, schema_from_labels_json
from napari_cliprl.schemas import ENDOVIS2018, LabelSchema, get_schema


def read_endovis2018_sequence(
    path: str | os.PathLike, schema: LabelSchema | str | None = None
) -> LabeledSequence:
    """Read ``seq_N/left_frames/*.png`` with ``seq_N/labels/*.png`` (RGB label PNGs).

    ``schema``: colours are matched to it (default: the schema of the sequence's labels.json,
    else EndoVis 2018). Only frames that have a label file are included.
    """
    path = Path(path)
    if not path.is_dir():
        raise data_error(path, "sequence folder not found")
    if schema is None:
        labels_json = find_labels_json(path)
        schema = schema_from_labels_json(labels_json) if labels_json else ENDOVIS2018
    schema = get_schema(schema)
    if schema.encoding != "rgb":
        schema = dataclasses.replace(schema, encoding="rgb")
    label_files = list_images(path / "labels", "*.png")
    if not label_files:
        raise data_error(path / "labels", "folder holds no label PNGs")
    left = path / "left_frames"
    if not left.is_dir():
        raise data_error(left, "folder not found (EndoVis 2018 frames)")
    frame_files = [left / f.name for f in label_files]
    missing = [f for f in frame_files if not file_present(f)]
    if missing:
        raise data_error(missing[0], "frame file missing for a label file")
    frames = FrameFolder(frame_files)
    return LabeledSequence(frames, label_files, schema, name=path.name)


def write_endovis2018_sequence(
    out_dir: str | os.PathLike,
    labels: Mapping[str, np.ndarray],
    schema: LabelSchema | str = ENDOVIS2018,
    *,
    images: Mapping[str, np.ndarray] | None = None,
    manifest: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Path]:
    """Write H x W uint8 id maps as EndoVis 2018 RGB label PNGs (+ labels.json, schema.json).

    Like :func:`napari_cliprl.io.export.write_labels`, with the schema's colours used even
    when its own encoding is "value".
    """
    schema = get_schema(schema)
    if schema.encoding != "rgb":
        schema = dataclasses.replace(schema, encoding="rgb")
    if not labels:
        raise DataError(f"{out_dir}: no label maps to write")
    return write_labels(
        out_dir,
        labels,
        schema,
        images=images,
        manifest=manifest,
        overwrite=overwrite,
        progress=progress,
    )
