"""``manifest.json`` of the export layout: which frames a person reviewed, and where from.

Format (version 1)::

    {"version": 1,
     "source": "path/of/the/video/or/frames",      # str; relative paths are relative to OUT
     "schema": "endovis2018",                        # LabelSchema.name
     "checkpoint": "sha256:..." or null,             # model that made the proposals
     "created": "2025-01-01T12:00:00+00:00",         # ISO 8601 time of writing
     "frames": [{"name": "frame000", "index": 0, "reviewed": true}, ...]}

``name`` is the file stem under labels/, ``index`` the frame's index in ``source``,
``reviewed`` whether a person checked or corrected it. A relative ``source`` must stay inside
the export folder once symbolic links and ``..`` are resolved (readers never follow it out);
an absolute one is where the frames were read from when the export was made.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_cliprl.files import write_json_atomic
from napari_cliprl.io._files import check_inside, read_json_file
from napari_cliprl.io.errors import check_data_limit, data_error
from napari_cliprl.schemas import LabelSchema, get_schema

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def make_manifest(
    source: str | os.PathLike,
    schema: LabelSchema | str,
    frames: Sequence[tuple[str, int, bool]],
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """A version-1 manifest dict; ``frames`` are (name, index, reviewed) triples."""
    return {
        "version": MANIFEST_VERSION,
        "source": os.fspath(source),
        "schema": get_schema(schema).name,
        "checkpoint": checkpoint,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "frames": [{"name": n, "index": int(i), "reviewed": bool(r)} for n, i, r in frames],
    }


def _frame_ok(f: Any) -> bool:
    index = f.get("index") if isinstance(f, dict) else None
    return (
        isinstance(f, dict)
        and isinstance(f.get("name"), str)
        and isinstance(index, int)
        and not isinstance(index, bool)
        and index >= 0
        and isinstance(f.get("reviewed", False), bool)
    )


def validate_manifest(data: Any, source: str | os.PathLike) -> dict[str, Any]:
    """Check a manifest dict against the version-1 format; DataError names the bad field."""
    if not isinstance(data, dict):
        raise data_error(source, "manifest must be a JSON object")
    if data.get("version") != MANIFEST_VERSION:
        raise data_error(source, f"unsupported manifest version {data.get('version')!r}")
    if not isinstance(data.get("source", ""), str):
        raise data_error(source, "manifest field 'source' must be a string")
    frames = data.get("frames", [])
    if not isinstance(frames, list):
        raise data_error(source, "manifest field 'frames' must be a list")
    check_data_limit("MAX_FRAMES", len(frames), source, "number of frames in this manifest")
    for k, f in enumerate(frames):
        if not _frame_ok(f):
            text = repr(f)
            text = text if len(text) <= 80 else text[:77] + "..."
            raise data_error(
                source,
                f"manifest field 'frames[{k}]' must be {{name: str, index: int >= 0, "
                f"reviewed: bool}}, got {text}",
            )
    return data


def read_manifest(path: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of export folder ``path`` (validated), or None if nothing is there.

    A manifest.json that exists but cannot be read (a symbolic link loop, a dangling link, a
    FIFO, bad JSON) is a DataError, never "no manifest".
    """
    file = Path(path) / MANIFEST
    if not os.path.lexists(file):
        return None
    return validate_manifest(read_json_file(file, "manifest"), file)


def frame_source(path: str | os.PathLike, manifest: Mapping[str, Any]) -> Path:
    """Where the frames of export ``path`` are read from when it has no left_frames/.

    A relative source must stay inside ``path`` (symbolic links resolved): DataError naming
    manifest.json otherwise.
    """
    path = Path(path)
    source = manifest.get("source") or ""
    if not source:
        raise data_error(path, "export has no left_frames/ and no manifest source to read frames")
    if os.path.isabs(source):
        return Path(source)
    try:
        return Path(check_inside(path, path / source, "read frames"))
    except ValueError as e:
        raise data_error(
            path / MANIFEST, f"source {source!r} leads outside the export folder; refusing to read"
        ) from e


def unmark_reviewed(path: str | os.PathLike, names: Sequence[str]) -> None:
    """Clear the reviewed flag of ``names`` in export ``path``'s manifest, if it has one.

    Called before those label files are replaced: a new file no longer holds what a person
    checked, and a kill while writing must not leave the old flag on the new content.
    """
    manifest = read_manifest(path)
    if manifest is None:
        return
    gone = set(names)
    hit = [f for f in manifest["frames"] if f.get("reviewed") and f["name"] in gone]
    if hit:
        for f in hit:
            f["reviewed"] = False
        write_json_atomic(Path(path) / MANIFEST, manifest, overwrite=True)
