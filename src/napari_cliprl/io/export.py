"""The plugin's export layout: writing label maps and reading them back.

Layout (also the output of ``cliprl predict`` and an input of ``cliprl finetune``)::

    OUT/left_frames/<name>.png   RGB frames (only when ``images`` were given)
    OUT/labels/<name>.png        schema.encoding == "rgb": EndoVis 2018 RGB colours;
                                 "value": single-channel pixel values (EndoVis 2017 test GT)
    OUT/labels.json              EndoVis 2018 list of {"name", "color", "classid"}
    OUT/schema.json              the full LabelSchema (LabelSchema.to_dict)
    OUT/manifest.json            optional, see below

Ignore pixels (id ``schema.ignore_index``) are stored as white (255, 255, 255) in RGB files
(white is no EndoVis colour; a schema using white as a class colour cannot store them) and
as value 255 in value files (refused when 255 is a class value, e.g. the EndoVis 2017 clasper).

``manifest.json`` format (version 1)::

    {"version": 1,
     "source": "path/of/the/video/or/frames",      # str; relative paths are relative to OUT
     "schema": "endovis2018",                        # LabelSchema.name
     "checkpoint": "sha256:..." or null,             # model that made the proposals
     "created": "2025-01-01T12:00:00+00:00",         # ISO 8601 time of writing
     "frames": [{"name": "frame000", "index": 0, "reviewed": true}, ...]}

``name`` is the file stem under labels/, ``index`` the frame's index in ``source``,
``reviewed`` whether a person checked or corrected it. Readers treat a missing manifest as
"every frame reviewed" (hand-made ground truth); with ``reviewed_only=True`` and a manifest,
only frames with ``"reviewed": true`` are returned (what fine-tuning uses).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cliprl.io._png import check_writable, list_images, write_bytes_atomic, write_png
from napari_cliprl.io.errors import DataError, data_error
from napari_cliprl.io.frames import FrameFolder, FrameSource, SubsetFrames
from napari_cliprl.io.labeled import LabeledSequence, load_schema_labels
from napari_cliprl.schemas import LabelSchema, SchemaError, get_schema

MANIFEST_VERSION = 1
IGNORE_RGB = (255, 255, 255)


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


def encode_labels(ids: np.ndarray, schema: LabelSchema, name: str = "<array>") -> np.ndarray:
    """H x W uint8 ids -> the file encoding: H x W x 3 RGB or H x W values (see module doc)."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.dtype != np.uint8:
        raise DataError(f"{name}: labels must be H x W uint8, got {ids.shape} {ids.dtype}")
    ignore = ids == schema.ignore_index
    bad = (ids >= schema.num_classes) & ~ignore
    if bad.any():
        raise DataError(
            f"{name}: label ids {sorted(set(np.unique(ids[bad]).tolist()))} are not classes of "
            f"schema {schema.name!r} (0..{schema.num_classes - 1}, ignore {schema.ignore_index})"
        )
    if schema.encoding == "rgb":
        out = schema.ids_to_rgb(ids)
        if ignore.any():
            if IGNORE_RGB in [c.color for c in schema.classes]:
                raise DataError(f"{name}: schema {schema.name!r} uses white, cannot store ignore")
            out[ignore] = IGNORE_RGB
        return out
    out = schema.ids_to_values(ids)
    if ignore.any():
        if 255 in [c.pixel_value for c in schema.classes]:
            raise DataError(
                f"{name}: {int(ignore.sum())} ignore pixels cannot be stored in schema "
                f"{schema.name!r} (value 255 is a class)"
            )
        out[ignore] = 255
    return out


def write_json_atomic(path: str | os.PathLike, data: Any, overwrite: bool = False) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), overwrite)


def write_labels(
    out_dir: str | os.PathLike,
    labels: Mapping[str, np.ndarray],
    schema: LabelSchema | str,
    *,
    images: Mapping[str, np.ndarray] | None = None,
    manifest: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Path]:
    """Write label maps (name -> H x W uint8 ids) in the export layout; returns written paths.

    ``images`` (name -> H x W x 3 uint8) go to left_frames/. ``manifest``: a dict as made by
    :func:`make_manifest` (missing keys are filled in; without ``frames`` every label is
    listed unreviewed at its position); None writes no manifest.json. Every existing target
    is checked before anything is written: FileExistsError names it unless ``overwrite``.
    The mappings are read one item at a time, so they may load lazily.
    ``progress(done, total, message)`` is called after each label file.
    """
    schema = get_schema(schema)
    out = Path(out_dir)
    names = list(labels)
    if not names:
        raise DataError(f"{out}: no label maps to write")
    image_names = list(images or {})
    meta = [out / "labels.json", out / "schema.json"]
    if manifest is not None:
        meta.append(out / "manifest.json")
    full = _complete_manifest(manifest, schema, names) if manifest is not None else None
    targets = [out / "labels" / f"{n}.png" for n in names]
    image_targets = [out / "left_frames" / f"{n}.png" for n in image_names]
    check_writable([*targets, *image_targets, *meta], overwrite)
    written = []
    for k, (name, target) in enumerate(zip(names, targets)):
        written.append(write_png(target, encode_labels(labels[name], schema, str(target)), True))
        if progress is not None:
            progress(k + 1, len(names), name)
    for name, target in zip(image_names, image_targets):
        written.append(write_png(target, np.asarray(images[name]), True))  # type: ignore[index]
    written.append(write_json_atomic(meta[0], schema.labels_json(), True))
    written.append(write_json_atomic(meta[1], schema.to_dict(), True))
    if full is not None:
        written.append(write_json_atomic(meta[2], full, True))
    return written


def _complete_manifest(
    manifest: Mapping[str, Any], schema: LabelSchema, names: list[str]
) -> dict[str, Any]:
    base = make_manifest(
        manifest.get("source", ""), schema, [(n, i, False) for i, n in enumerate(names)]
    )
    base.update({k: v for k, v in manifest.items() if v is not None or k == "checkpoint"})
    base["version"] = MANIFEST_VERSION
    base["schema"] = schema.name
    validate_manifest(base, "<manifest>")
    return base


def validate_manifest(data: Any, source: str | os.PathLike) -> dict[str, Any]:
    """Check a manifest dict against the version-1 format; DataError names the bad field."""
    if not isinstance(data, dict):
        raise data_error(source, "manifest must be a JSON object")
    if data.get("version") != MANIFEST_VERSION:
        raise data_error(source, f"unsupported manifest version {data.get('version')!r}")
    frames = data.get("frames", [])
    if not isinstance(frames, list):
        raise data_error(source, "manifest field 'frames' must be a list")
    for k, f in enumerate(frames):
        ok = (
            isinstance(f, dict)
            and isinstance(f.get("name"), str)
            and isinstance(f.get("index"), int)
            and isinstance(f.get("reviewed", False), bool)
        )
        if not ok:
            raise data_error(
                source,
                f"manifest field 'frames[{k}]' must be {{name: str, index: int, "
                f"reviewed: bool}}, got {f!r}",
            )
    return data


def read_manifest(path: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of export folder ``path`` (validated), or None if it has none."""
    file = Path(path) / "manifest.json"
    if not file.is_file():
        return None
    return validate_manifest(_read_json(file), file)


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise data_error(file, f"not valid JSON ({e})") from e


def read_export_schema(path: str | os.PathLike) -> LabelSchema:
    """schema.json of an export folder, else a schema built from its labels.json."""
    from napari_cliprl.io.endovis2018 import schema_from_labels_json

    path = Path(path)
    if (path / "schema.json").is_file():
        try:
            return LabelSchema.load(path / "schema.json")
        except SchemaError as e:
            raise DataError(str(e)) from e
    if (path / "labels.json").is_file():
        return schema_from_labels_json(path / "labels.json")
    raise data_error(path, "export folder has neither schema.json nor labels.json")


def read_export(path: str | os.PathLike, *, reviewed_only: bool = False) -> LabeledSequence:
    """Read an export folder as a :class:`LabeledSequence` (see the module doc for options)."""
    path = Path(path)
    schema = read_export_schema(path)
    manifest = read_manifest(path)
    files = list_images(path / "labels", "*.png")
    if not files:
        raise data_error(path / "labels", "folder holds no label PNGs")
    names = [f.stem for f in files]
    entries = {f["name"]: f for f in (manifest or {}).get("frames", [])}
    reviewed = [bool(entries.get(n, {}).get("reviewed", False)) for n in names]
    frames, indices = _export_frames(path, names, manifest)
    seq = LabeledSequence(
        frames,
        files,
        schema,
        loader=functools.partial(load_schema_labels, schema=schema, ignore_rgb=IGNORE_RGB),
        name=path.name,
        reviewed=reviewed if manifest is not None else None,
        indices=indices,
    )
    if reviewed_only and manifest is not None:
        seq = seq.subset([i for i, r in enumerate(reviewed) if r])
        if len(seq) == 0:
            raise data_error(path / "manifest.json", "no frame is marked reviewed")
    return seq


def _export_frames(
    path: Path, names: list[str], manifest: dict[str, Any] | None
) -> tuple[FrameSource, list[int]]:
    """Frames for labels ``names``: left_frames/<name>.png, else the manifest's source."""
    entries = {f["name"]: f for f in (manifest or {}).get("frames", [])}
    left = path / "left_frames"
    if left.is_dir():
        files = [left / f"{n}.png" for n in names]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise data_error(missing[0], "frame file missing for a label file")
        indices = [int(entries.get(n, {}).get("index", i)) for i, n in enumerate(names)]
        return FrameFolder(files, names=names), indices
    source = (manifest or {}).get("source") or ""
    if not source:
        raise data_error(path, "export has no left_frames/ and no manifest source to read frames")
    from napari_cliprl.io.sources import open_frames

    src_path = Path(source) if Path(source).is_absolute() else path / source
    absent = [n for n in names if n not in entries]
    if absent:
        raise data_error(path / "manifest.json", f"frame {absent[0]!r} has no manifest entry")
    indices = [int(entries[n]["index"]) for n in names]
    return SubsetFrames(open_frames(src_path), indices, names=names), indices
