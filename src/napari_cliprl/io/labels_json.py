"""EndoVis 2018 ``labels.json``: a list of ``{"name", "color": [R, G, B], "classid"}``.

Read by the EndoVis 2018 reader and by the export reader (a folder without schema.json), so it
lives apart from both. Every entry is checked: a missing field, a colour outside 0..255, a
``classid`` used twice or more than ``MAX_CLASSES`` entries is a DataError naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_cliprl.io._files import file_present, read_json_file
from napari_cliprl.io.errors import check_data_limit, data_error
from napari_cliprl.schemas import (
    ENDOVIS2018,
    LabelClass,
    LabelSchema,
    SchemaError,
    get_schema,
    list_schemas,
)

SHAPE = "a non-empty list of {name, color: [R, G, B], classid}"


def find_labels_json(seq_dir: str | os.PathLike) -> Path | None:
    """``seq_dir/labels.json``, else ``labels.json`` beside the sequence folder, else None.

    Something at either place that is not a regular file (a FIFO, a symbolic link loop) is a
    DataError, never passed over.
    """
    seq_dir = Path(seq_dir)
    for candidate in (seq_dir / "labels.json", seq_dir.parent / "labels.json"):
        if file_present(candidate):
            return candidate
    return None


def _entry_ok(entry: Any) -> bool:
    color = entry.get("color") if isinstance(entry, dict) else None
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("classid"), int)
        and not isinstance(entry.get("classid"), bool)
        and isinstance(color, list)
        and len(color) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)
    )


def read_labels_json(file: str | os.PathLike) -> list[dict[str, Any]]:
    """The validated entries of an EndoVis 2018 labels.json: name, color (3 ints), classid."""
    file = Path(file)
    data = read_json_file(file, "labels.json")
    if not isinstance(data, list) or not data:
        raise data_error(file, f"labels.json must be {SHAPE}")
    check_data_limit("MAX_CLASSES", len(data), file, "number of classes in this labels.json")
    seen: dict[int, int] = {}
    for k, entry in enumerate(data):
        if not _entry_ok(entry):
            text = repr(entry)
            text = text if len(text) <= 80 else text[:77] + "..."
            raise data_error(file, f"entry {k} must be {{name, color: [R, G, B], classid}}: {text}")
        cid = entry["classid"]
        if cid in seen:
            raise data_error(file, f"classid {cid} is used twice (entries {seen[cid]} and {k})")
        seen[cid] = k
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
