"""Converting label folders between encodings: the core of ``cliprl convert``.

Targets, one sub-folder of OUT per sequence:

- ``"index"``: ``OUT/<sequence>/<frame>.png`` single-channel uint8 class ids of the source's
  schema (255 = ignore) and ``OUT/<sequence>/schema.json`` (what the ids mean).
- ``"endovis2018"``: the export layout (``labels/`` RGB PNGs, labels.json, schema.json); with
  frames also ``left_frames/`` and, where the source says which frames are ground truth (a
  dataset layout, or an export's manifest), a ``manifest.json`` carrying that over.

What a conversion may touch:

- OUT never equals, contains or lies inside SRC (symbolic links resolved).
- An OUT that exists must be empty or an earlier conversion's output: every entry in it a
  folder with a schema.json. Anything else is refused, with or without ``overwrite``.
- Every target is checked before anything is written: an existing one stops the run unless
  ``overwrite``, which replaces only the files this conversion writes, never a folder.
- Everything is written to ``OUT/.cliprl-staging-*`` first and moved into place only once
  every input has been read; a bad input stops the run with nothing of it left in OUT (the
  staging folder of a killed run is removed by the next one). A label value outside the
  schema is reported against the input file it came from.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_cliprl.files import check_separate, write_json_atomic
from napari_cliprl.io._files import file_present
from napari_cliprl.io._png import (
    check_targets_inside,
    check_writable,
    list_images,
    natural_key,
    read_mask,
    write_png,
)
from napari_cliprl.io.endovis2018 import write_endovis2018_sequence
from napari_cliprl.io.errors import data_error
from napari_cliprl.io.manifest import MANIFEST, make_manifest, unmark_reviewed
from napari_cliprl.io.read import detect_format, find_labeled, read_labeled
from napari_cliprl.schemas import LabelSchema, get_schema

SOURCES = ("endovis2017", "endovis2018", "cholecseg8k", "export", "index")
TARGETS = ("index", "endovis2018")
STAGING_PREFIX = ".cliprl-staging-"
GROUND_TRUTH_LAYOUTS = ("endovis2017", "endovis2018", "cholecseg8k")
LAYOUT_HELP = {
    "endovis2017": "instrument_dataset_N folders (left_frames/ + ground_truth/)",
    "endovis2018": "seq_N folders (left_frames/ + labels/)",
    "cholecseg8k": "clip folders (*_endo.png + *_endo_watershed_mask.png)",
    "export": "export folders (labels/ + schema.json or manifest.json)",
}
Progress = Callable[[int, int, str], None]  # (done, total, message), as everywhere


@dataclass
class ConvertJob:
    """One sequence to convert: ``labels(i)`` is frame i's H x W uint8 ids of ``schema``."""

    name: str  # sub-folder of OUT
    frame_names: list[str]  # file stems, in order
    labels: Callable[[int], np.ndarray]
    schema: LabelSchema
    source: Path  # the input sequence folder
    frames: Callable[[int], np.ndarray] | None = None  # H x W x 3 uint8, when written
    reviewed: list[bool] | None = None  # ground-truth flags to carry into a manifest
    indices: list[int] | None = None  # frame indices for the manifest (default: positions)

    def targets(self, out: Path, target: str) -> list[Path]:
        """Every file this job writes under ``out``, in the order they are moved in."""
        folder = out / self.name
        if target == "index":
            return [folder / "schema.json", *(folder / f"{n}.png" for n in self.frame_names)]
        files = [folder / "schema.json", folder / "labels.json"]
        if self.frames is not None:
            files += [folder / "left_frames" / f"{n}.png" for n in self.frame_names]
        files += [folder / "labels" / f"{n}.png" for n in self.frame_names]
        return files + ([folder / MANIFEST] if self.manifest_rows() else [])

    def manifest_rows(self) -> list[tuple[str, int, bool]] | None:
        if self.frames is None or self.reviewed is None:
            return None
        indices = self.indices or list(range(len(self.frame_names)))
        return list(zip(self.frame_names, indices, self.reviewed))


class _LazyMap(Mapping):
    """name -> array, computed on access (so a sequence is never held in memory whole)."""

    def __init__(self, names: list[str], get: Callable[[int], np.ndarray]) -> None:
        self._index = {n: i for i, n in enumerate(names)}
        self._get = get

    def __getitem__(self, name: str) -> np.ndarray:
        return self._get(self._index[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


# -- planning: what to read -------------------------------------------------------------------
def plan_conversion(
    src: str | os.PathLike,
    source: str,
    *,
    task: str = "parts",
    crop: bool = False,
    schema: LabelSchema | str | None = None,
    frames: bool = False,
) -> list[ConvertJob]:
    """The sequences of ``src`` in layout ``source`` (one of SOURCES) as jobs; nothing is
    decoded yet. DataError when SRC holds no such sequence."""
    if source == "index":
        return _index_jobs(Path(src), schema)
    found = [p for p in find_labeled(src) if detect_format(p) == source]
    if not found:
        raise data_error(src, f"no {LAYOUT_HELP[source]} found")
    jobs = []
    for path in found:
        seq = read_labeled(path, task if source == "endovis2017" else schema, crop=crop)
        flags = [True] * len(seq) if source in GROUND_TRUTH_LAYOUTS else seq.reviewed
        jobs.append(
            ConvertJob(
                seq.name,
                list(seq.frame_names),
                seq.labels,
                seq.schema,
                Path(path),
                frames=seq.frames.__getitem__ if frames else None,
                reviewed=flags,
                indices=list(seq.indices),
            )
        )
    return jobs


def _index_jobs(src: Path, schema: LabelSchema | str | None) -> list[ConvertJob]:
    """Folders of index PNGs in ``src`` (itself, or its sub-folders); the schema comes from
    ``schema``, else the folder's schema.json (an earlier conversion's), else EndoVis 2018."""
    if not src.is_dir():
        raise data_error(src, "no such folder")
    folders = [src]
    if not list_images(src, "*.png"):
        subs = [p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")]
        folders = sorted(subs, key=lambda p: natural_key(p.name))
    jobs = []
    for folder in folders:
        files = list_images(folder, "*.png")
        if not files:
            continue
        given = schema or (folder / "schema.json" if file_present(folder / "schema.json") else None)
        job_schema = get_schema(given or "endovis2018")
        read = _IndexReader(files, job_schema)
        jobs.append(ConvertJob(folder.name, [f.stem for f in files], read, job_schema, folder))
    if not jobs:
        raise data_error(src, "no index PNGs found (in the folder or its sub-folders)")
    return jobs


@dataclass
class _IndexReader:
    files: list[Path]
    schema: LabelSchema

    def __call__(self, i: int) -> np.ndarray:
        """H x W uint8 ids of index PNG ``files[i]``; values outside the schema name it."""
        ids = read_mask(self.files[i])
        bad = (ids >= self.schema.num_classes) & (ids != self.schema.ignore_index)
        if bad.any():
            raise data_error(
                self.files[i],
                f"values {sorted(set(np.unique(ids[bad]).tolist()))} are no class ids of schema "
                f"{self.schema.name!r} (0..{self.schema.num_classes - 1}, ignore "
                f"{self.schema.ignore_index})",
            )
        return ids


# -- the output folder ------------------------------------------------------------------------
def check_output_folder(out: Path) -> bool:
    """True if ``out`` exists. Refused (DataError): a file, or a folder that is neither empty
    nor an earlier conversion's output (every entry a folder holding a schema.json)."""
    if not os.path.lexists(out):
        return False
    if not out.is_dir():
        raise data_error(out, "exists and is not a folder")
    for entry in sorted(out.iterdir()):
        if entry.name.startswith(STAGING_PREFIX):
            continue
        if not (entry.is_dir() and file_present(entry / "schema.json")):
            raise data_error(
                out,
                f"exists and is not an output of cliprl convert ({entry.name!r} is not one of "
                "its sequence folders); choose a new or empty folder",
            )
    return True


def _remove_stale_staging(out: Path) -> None:
    for entry in out.glob(f"{STAGING_PREFIX}*"):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)


# -- writing ----------------------------------------------------------------------------------
def convert_labels(
    jobs: list[ConvertJob],
    out: str | os.PathLike,
    target: str,
    *,
    inputs: list[str | os.PathLike],
    overwrite: bool = False,
    progress: Progress | None = None,
) -> int:
    """Write ``jobs`` under ``out`` in layout ``target`` (module doc); returns frames written.

    ``inputs``: the folders read, which ``out`` must stay clear of.
    ``progress(done, total, message)`` is called after each frame.
    """
    out = Path(out)
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
    check_separate(out, list(inputs))
    existed = check_output_folder(out)
    targets = [p for job in jobs for p in job.targets(out, target)]
    data_first = sorted(targets, key=lambda p: p.suffix != ".png")  # name a frame's file first
    check_writable(data_first, overwrite)
    check_targets_inside(out, targets)
    created = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        total = sum(len(j.frame_names) for j in jobs)
        done = 0
        for job in jobs:
            done = _stage(job, staging, target, done, total, progress)
        for job in jobs:
            _move_into_place(job, staging, out, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not existed and created is not None:
            shutil.rmtree(created, ignore_errors=True)  # made by this run, holds nothing else
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return total


def _stage(
    job: ConvertJob, staging: Path, target: str, done: int, total: int, progress: Progress | None
) -> int:
    folder = staging / job.name
    if target == "index":
        for i, name in enumerate(job.frame_names):
            write_png(folder / f"{name}.png", job.labels(i))
            done += 1
            if progress is not None:
                progress(done, total, job.name)
        write_json_atomic(folder / "schema.json", job.schema.to_dict())
        return done
    rows = job.manifest_rows()
    write_endovis2018_sequence(
        folder,
        _LazyMap(job.frame_names, job.labels),
        job.schema,
        images=_LazyMap(job.frame_names, job.frames) if job.frames else None,
        manifest=make_manifest(job.source.resolve(), job.schema, rows) if rows else None,
        progress=None if progress is None else (lambda k, n, m: progress(done + k, total, m)),
    )
    return done + len(job.frame_names)


def _move_into_place(job: ConvertJob, staging: Path, out: Path, target: str) -> None:
    """Move the staged files of ``job`` to their targets: metadata first, then frames, then
    labels, the manifest last; an old manifest is removed (or loses the reviewed flags of the
    replaced labels) before any label is replaced."""
    final = out / job.name
    if target == "endovis2018" and os.path.lexists(final / MANIFEST):
        if job.manifest_rows():
            (final / MANIFEST).unlink()
        else:
            unmark_reviewed(final, job.frame_names)
    for path in job.targets(out, target):
        staged = staging / path.relative_to(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, path)
