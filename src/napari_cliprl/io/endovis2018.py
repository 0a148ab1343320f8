"""EndoVis 2018 robotic scene segmentation: ``seq_N/left_frames`` + ``seq_N/labels``.

Label files are RGB PNGs; classes are matched by colour (names vary between releases, e.g.
"intestine" vs "small-intestine"). ``labels.json`` (a list of ``{"name", "color": [R, G, B],
"classid"}``) sits inside the sequence folder or beside the sequences. A label pixel whose
colour is in no class is an error naming the file, the pixel count and the colour.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_cliprl.io._png import list_images
from napari_cliprl.io.errors import DataError, data_error
from napari_cliprl.io.frames import FrameFolder
from napari_cliprl.io.labeled import LabeledSequence
from napari_cliprl.schemas import (
    ENDOVIS2018,
    LabelClass,
    LabelSchema,
    SchemaError,
    get_schema,
    list_schemas,
)


def find_labels_json(seq_dir: str | os.PathLike) -> Path | None:
    """``seq_dir/labels.json``, else ``labels.json`` beside the sequence folder, else None."""
    seq_dir = Path(seq_dir)
    for candidate in (seq_dir / "labels.json", seq_dir.parent / "labels.json"):
        if candidate.is_file():
            return candidate
    return None


def read_labels_json(file: str | os.PathLike) -> list[dict[str, Any]]:
    """The validated entries of an EndoVis 2018 labels.json: name, color (3 ints), classid."""
    file = Path(file)
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError as e:
        raise data_error(file, "file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise data_error(file, f"not valid JSON ({e})") from e
    if not isinstance(data, list) or not data:
        raise data_error(file, "labels.json must be a non-empty list of {name, color, classid}")
    for k, entry in enumerate(data):
        color = entry.get("color") if isinstance(entry, dict) else None
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("classid"), int)
            and isinstance(color, list)
            and len(color) == 3
            and all(isinstance(v, int) and 0 <= v <= 255 for v in color)
        )
        if not ok:
            raise data_error(
                file, f"entry {k} must be {{name, color: [R, G, B], classid}}: {entry}"
            )
    return data


def schema_from_labels_json(file: str | os.PathLike) -> LabelSchema:
    """The schema a labels.json describes, matched by colour.

    A registered RGB schema (EndoVis 2018 first) whose colours include every labels.json
    colour is returned as is (names may differ); otherwise a new schema is built from the file,
    ordered by ``classid`` (ids renumbered 0..K-1 if they have gaps).
    """
    entries = read_labels_json(file)
    colours = {tuple(e["color"]) for e in entries}
    candidates = [ENDOVIS2018] + [get_schema(n) for n in list_schemas()]
    for schema in candidates:
        if schema.encoding == "rgb" and colours <= {c.color for c in schema.classes}:
            return schema
    ordered = sorted(entries, key=lambda e: e["classid"])
    classes = tuple(
        LabelClass(i, e["name"], tuple(e["color"]))  # type: ignore[arg-type]
        for i, e in enumerate(ordered)
    )
    try:
        return LabelSchema(f"labels-json:{Path(file).parent.name}", classes)
    except SchemaError as e:
        raise data_error(file, str(e)) from e


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
    missing = [f for f in frame_files if not f.is_file()]
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
    from napari_cliprl.io.export import write_labels

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
