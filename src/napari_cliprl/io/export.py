"""The plugin's export layout: writing label maps and reading them back.

Layout (also the output of ``cliprl predict`` and an input of ``cliprl finetune``)::

    OUT/left_frames/<name>.png   RGB frames (only when ``images`` were given)
    OUT/labels/<name>.png        schema.encoding == "rgb": EndoVis 2018 RGB colours;
                                 "value": single-channel pixel values (EndoVis 2017 test GT)
    OUT/labels.json              EndoVis 2018 list of {"name", "color", "classid"}
    OUT/schema.json              the full LabelSchema (LabelSchema.to_dict)
    OUT/manifest.json            optional: which frames a person reviewed (:mod:`.manifest`)

Ignore pixels (id ``schema.ignore_index``) are stored as white (255, 255, 255) in RGB files
(white is no EndoVis colour; a schema using white as a class colour cannot store them) and
as value 255 in value files (refused when 255 is a class value, e.g. the EndoVis 2017 clasper).

Writing order, so that a kill at any point leaves nothing that reads as more than it is:
schema.json and labels.json first (a folder of label files without them would read as
EndoVis 2018 ground truth), then per frame its image before its label file, and the
manifest last. Reading: a folder without a manifest is not known to be reviewed at all, so
``reviewed_only=True`` refuses it unless ``ground_truth=True`` says every label is ground
truth; with a manifest, only frames marked ``"reviewed": true`` whose label file (and frame
image, when the export has left_frames/) are complete PNGs count.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_cliprl.files import remove_stale_temporaries, write_json_atomic
from napari_cliprl.io._files import file_present
from napari_cliprl.io._png import (
    check_targets_inside,
    check_writable,
    is_complete_png,
    list_images,
    write_png,
)
from napari_cliprl.io.errors import DataError, data_error
from napari_cliprl.io.frames import FrameFolder, FrameSource, SubsetFrames
from napari_cliprl.io.labeled import LabeledSequence, load_schema_labels
from napari_cliprl.io.labels_json import schema_from_labels_json
from napari_cliprl.io.manifest import (
    MANIFEST,
    MANIFEST_VERSION,
    frame_source,
    make_manifest,
    read_manifest,
    unmark_reviewed,
    validate_manifest,
)
from napari_cliprl.io.sources import open_frames
from napari_cliprl.schemas import LabelSchema, SchemaError, get_schema

__all__ = [
    "IGNORE_RGB",
    "encode_labels",
    "make_manifest",
    "read_export",
    "read_export_schema",
    "read_manifest",
    "validate_manifest",
    "write_json_atomic",
    "write_labels",
]

IGNORE_RGB = (255, 255, 255)
NO_MANIFEST = (
    "no manifest.json, so no frame is known to be reviewed by a person; if every label file "
    "here is ground truth, declare it with --ground-truth (ground_truth=True)"
)


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
    listed unreviewed at its position); None writes no manifest.json, and an existing one
    loses the reviewed flags of the labels replaced. Every existing target is checked before
    anything is written: FileExistsError names it unless ``overwrite``; a target reached
    through a symbolic link that leads out of ``out_dir`` is a DataError. Files are written
    in the order of the module doc. The mappings are read one item at a time, so they may
    load lazily. ``progress(done, total, message)`` is called after each label file.
    """
    schema = get_schema(schema)
    out = Path(out_dir)
    names = list(labels)
    if not names:
        raise DataError(f"{out}: no label maps to write")
    full = _complete_manifest(manifest, schema, names) if manifest is not None else None
    targets = {n: out / "labels" / f"{n}.png" for n in names}
    image_targets = {n: out / "left_frames" / f"{n}.png" for n in images or {}}
    meta = [out / "schema.json", out / "labels.json"]
    meta += [out / MANIFEST] if full is not None else []
    every = [*targets.values(), *image_targets.values(), *meta]
    check_writable(every, overwrite)
    check_targets_inside(out, every)
    encoded = encode_labels(labels[names[0]], schema, str(targets[names[0]]))  # fail early
    for folder in (out, out / "labels", out / "left_frames"):
        remove_stale_temporaries(folder)
    if full is not None:
        (out / MANIFEST).unlink(missing_ok=True)  # the new one comes last; none until then
    else:
        unmark_reviewed(out, names)
    written = [
        write_json_atomic(meta[0], schema.to_dict(), True),
        write_json_atomic(meta[1], schema.labels_json(), True),
    ]
    for k, name in enumerate(names):
        if k:
            encoded = encode_labels(labels[name], schema, str(targets[name]))
        if name in image_targets:
            frame = np.asarray(images[name])  # type: ignore[index]
            written.append(write_png(image_targets.pop(name), frame, True))
        written.append(write_png(targets[name], encoded, True))
        if progress is not None:
            progress(k + 1, len(names), name)
    for name, target in image_targets.items():  # images without a label map
        written.append(write_png(target, np.asarray(images[name]), True))  # type: ignore[index]
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


def read_export_schema(path: str | os.PathLike) -> LabelSchema:
    """schema.json of an export folder, else a schema built from its labels.json."""
    path = Path(path)
    if file_present(path / "schema.json"):
        try:
            return LabelSchema.load(path / "schema.json")
        except SchemaError as e:
            raise DataError(str(e)) from e
    if file_present(path / "labels.json"):
        return schema_from_labels_json(path / "labels.json")
    raise data_error(path, "export folder has neither schema.json nor labels.json")


def read_export(
    path: str | os.PathLike, *, reviewed_only: bool = False, ground_truth: bool = False
) -> LabeledSequence:
    """Read an export folder as a :class:`LabeledSequence` (see the module doc for options)."""
    path = Path(path)
    schema = read_export_schema(path)
    manifest = read_manifest(path)
    files = list_images(path / "labels", "*.png")
    if not files:
        raise data_error(path / "labels", "folder holds no label PNGs")
    names = [f.stem for f in files]
    reviewed = None
    keep = list(range(len(names)))
    if manifest is None and reviewed_only and not ground_truth:
        raise data_error(path, NO_MANIFEST)
    if manifest is not None:
        entries = {f["name"]: f for f in manifest["frames"]}
        reviewed = [bool(entries.get(n, {}).get("reviewed", False)) for n in names]
        if reviewed_only:
            keep = _complete_reviewed(path, files, reviewed)
    frames, indices = _export_frames(path, [names[i] for i in keep], manifest)
    return LabeledSequence(
        frames,
        [files[i] for i in keep],
        schema,
        loader=functools.partial(load_schema_labels, schema=schema, ignore_rgb=IGNORE_RGB),
        name=path.name,
        reviewed=[reviewed[i] for i in keep] if reviewed is not None else None,
        indices=indices,
    )


def _complete_reviewed(path: Path, files: list[Path], reviewed: list[bool]) -> list[int]:
    """Positions of frames marked reviewed whose label file (and frame image, when the export
    has left_frames/) are complete; DataError naming manifest.json when there is none."""
    left = path / "left_frames"
    with_frames = left.is_dir()
    keep = [
        i
        for i, f in enumerate(files)
        if reviewed[i]
        and is_complete_png(f)
        and (not with_frames or is_complete_png(left / f.name))
    ]
    if not keep:
        marked = sum(reviewed)
        detail = (
            f"{marked} frames are marked reviewed, but none has a complete label file"
            + (" and frame image" if with_frames else "")
            if marked
            else "no frame is marked reviewed"
        )
        raise data_error(path / MANIFEST, detail)
    return keep


def _export_frames(
    path: Path, names: list[str], manifest: dict[str, Any] | None
) -> tuple[FrameSource, list[int]]:
    """Frames for labels ``names``: left_frames/<name>.png, else the manifest's source."""
    entries = {f["name"]: f for f in (manifest or {}).get("frames", [])}
    left = path / "left_frames"
    if left.is_dir():
        files = [left / f"{n}.png" for n in names]
        missing = [f for f in files if not file_present(f)]
        if missing:
            raise data_error(missing[0], "frame file missing for a label file")
        indices = [int(entries.get(n, {}).get("index", i)) for i, n in enumerate(names)]
        return FrameFolder(files, names=names), indices
    if manifest is None:
        raise data_error(path, "export has no left_frames/ and no manifest source to read frames")
    src_path = frame_source(path, manifest)
    absent = [n for n in names if n not in entries]
    if absent:
        raise data_error(path / MANIFEST, f"frame {absent[0]!r} has no manifest entry")
    indices = [int(entries[n]["index"]) for n in names]
    return SubsetFrames(open_frames(src_path), indices, names=names), indices
