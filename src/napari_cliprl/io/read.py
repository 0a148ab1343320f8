"""Which reader a labelled folder needs: :func:`detect_format`, :func:`find_labeled`,
:func:`read_labeled` (export, EndoVis 2018, EndoVis 2017, CholecSeg8k)."""

from __future__ import annotations

import os
from pathlib import Path

from napari_cliprl.io._png import natural_key
from napari_cliprl.io.cholec import read_cholecseg8k_sequence
from napari_cliprl.io.endovis2017 import read_endovis2017_sequence, task_of
from napari_cliprl.io.endovis2018 import read_endovis2018_sequence
from napari_cliprl.io.errors import DataError, data_error
from napari_cliprl.io.export import read_export
from napari_cliprl.io.labeled import LabeledSequence
from napari_cliprl.schemas import LabelSchema

FORMATS = ("export", "endovis2018", "endovis2017", "cholecseg8k")
TEST_GT_NAMES = ("ground_truth", "BinarySegmentation", "PartsSegmentation", "TypeSegmentation")


def detect_format(path: str | os.PathLike) -> str:
    """The labelled layout of folder ``path``: "export", "endovis2018", "endovis2017" or
    "cholecseg8k"; DataError if it is none of them.

    Anything named schema.json or manifest.json (even a broken link) makes an export: a
    manifest that cannot be read must be reported, never make the folder ground truth.
    """
    path = Path(path)
    if not path.is_dir():
        raise data_error(path, "no such folder")
    if any(os.path.lexists(path / n) for n in ("schema.json", "manifest.json")):
        return "export"
    if any((path / n).is_dir() for n in TEST_GT_NAMES):
        return "endovis2017"
    if (path / "labels").is_dir():
        return "endovis2018"
    if any(path.glob("*_endo_watershed_mask.png")):
        return "cholecseg8k"
    raise data_error(
        path,
        "not a labelled sequence: expected labels/ (EndoVis 2018 or export), ground_truth/ "
        "(EndoVis 2017) or *_endo_watershed_mask.png files (CholecSeg8k)",
    )


def find_labeled(path: str | os.PathLike) -> list[Path]:
    """``path`` if it is a labelled sequence, else its sub-folders that are (sorted)."""
    path = Path(path)
    try:
        detect_format(path)
        return [path]
    except DataError:
        if not path.is_dir():
            raise
    found = []
    for sub in sorted(path.iterdir(), key=lambda p: natural_key(p.name)):
        if sub.is_dir() and not sub.name.startswith("."):
            try:
                detect_format(sub)
                found.append(sub)
            except DataError:
                continue
    if not found:
        detect_format(path)  # raises the explanatory error
    return found


def read_labeled(
    path: str | os.PathLike,
    schema: LabelSchema | str | None = None,
    *,
    reviewed_only: bool = False,
    crop: bool = False,
    ground_truth: bool = False,
) -> LabeledSequence:
    """Read any labelled sequence folder (export, EndoVis 2018/2017, CholecSeg8k).

    ``schema``: for EndoVis 2018 the schema the colours are matched to (default: from
    labels.json); for EndoVis 2017 an ``endovis2017-parts/-type/-binary`` schema or its task
    name (default: parts); ignored where the folder names its own schema. ``reviewed_only``:
    from an export, only the frames its manifest marks reviewed (and whose files are
    complete); an export without manifest.json is then a DataError unless ``ground_truth``
    declares all its labels ground truth. The dataset layouts are ground truth: read whole.
    ``crop``: the EndoVis 2017 crop.
    """
    kind = detect_format(path)
    if kind == "export":
        return read_export(path, reviewed_only=reviewed_only, ground_truth=ground_truth)
    if kind == "endovis2018":
        return read_endovis2018_sequence(path, schema)
    if kind == "endovis2017":
        task = task_of(schema) if schema is not None else "parts"
        return read_endovis2017_sequence(path, task, crop=crop)
    return read_cholecseg8k_sequence(path)
