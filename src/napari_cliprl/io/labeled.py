"""Labelled sequences (frames + lazily loaded label maps) and the ``read_labeled`` dispatcher."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cliprl.io._png import read_mask, read_rgb_label
from napari_cliprl.io.errors import DataError, data_error
from napari_cliprl.io.frames import FrameSource, SubsetFrames
from napari_cliprl.schemas import LabelSchema, SchemaError, get_schema

LabelLoader = Callable[[Any], np.ndarray]


def load_schema_labels(
    path: str | os.PathLike,
    schema: LabelSchema,
    ignore_rgb: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """One label file -> H x W uint8 class ids, decoded by ``schema.encoding``.

    ``"rgb"``: colours matched to the schema's classes (pixels of colour ``ignore_rgb``, when
    given and no class colour, become ``schema.ignore_index``); ``"value"``: single-channel
    pixel values (channel 0 of an RGB file). A colour or value in no class raises DataError.
    """
    try:
        if schema.encoding != "rgb":
            return schema.values_to_ids(read_mask(path), source=path)
        rgb = read_rgb_label(path)
        if ignore_rgb is None or ignore_rgb in [c.color for c in schema.classes]:
            return schema.rgb_to_ids(rgb, source=path)
        ignore = (rgb == np.array(ignore_rgb, dtype=np.uint8)).all(axis=-1)
        rgb[ignore] = schema.classes[0].color
        ids = schema.rgb_to_ids(rgb, source=path)
        ids[ignore] = schema.ignore_index
        return ids
    except SchemaError as e:
        raise DataError(str(e)) from e


class LabeledSequence:
    """Frames with one label map per frame, loaded on demand.

    ``frames[i]`` is H x W x 3 uint8; ``labels(i)`` is H x W uint8 class ids of ``schema``
    (255 = ignore). ``label_paths[i]`` is whatever ``loader`` takes (a path by default, read by
    :func:`load_schema_labels`). ``reviewed[i]`` says whether a person checked frame i
    (None when unknown, i.e. no manifest).
    """

    def __init__(
        self,
        frames: FrameSource,
        label_paths: Sequence[Any],
        schema: LabelSchema | str,
        *,
        loader: LabelLoader | None = None,
        name: str | None = None,
        reviewed: Sequence[bool] | None = None,
        indices: Sequence[int] | None = None,
    ) -> None:
        if len(label_paths) != len(frames):
            raise DataError(
                f"{frames.path}: {len(frames)} frames but {len(label_paths)} label files"
            )
        self.frames = frames
        self.label_paths = list(label_paths)
        self.schema = get_schema(schema)
        self.name = name or Path(frames.path).name
        self.reviewed = list(reviewed) if reviewed is not None else None
        self.indices = list(indices) if indices is not None else list(range(len(frames)))
        self._loader = loader or (lambda p: load_schema_labels(p, self.schema))

    @property
    def path(self) -> Path:
        return Path(self.frames.path)

    @property
    def frame_names(self) -> list[str]:
        return self.frames.frame_names

    def __len__(self) -> int:
        return len(self.frames)

    def labels(self, index: int) -> np.ndarray:
        """H x W uint8 class ids of frame ``index``; checked against the frame size."""
        ids = self._loader(self.label_paths[index])
        _, h, w, _ = self.frames.shape
        if ids.shape != (h, w):
            where = self.label_paths[index]
            where = where[0] if isinstance(where, tuple | list) and where else where
            raise data_error(
                str(where), f"label map is {ids.shape[0]}x{ids.shape[1]}, frames are {h}x{w}"
            )
        return ids

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame H x W x 3 uint8, labels H x W uint8) of frame ``index``."""
        return self.frames[index], self.labels(index)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def subset(self, positions: Sequence[int]) -> LabeledSequence:
        """The frames at ``positions`` (positions in this sequence), same schema and loader."""
        positions = list(positions)
        return LabeledSequence(
            SubsetFrames(self.frames, positions),
            [self.label_paths[p] for p in positions],
            self.schema,
            loader=self._loader,
            name=self.name,
            reviewed=[self.reviewed[p] for p in positions] if self.reviewed else None,
            indices=[self.indices[p] for p in positions],
        )

    def close(self) -> None:
        self.frames.close()

    def __enter__(self) -> LabeledSequence:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabeledSequence({self.name!r}, frames={len(self)}, schema={self.schema.name!r})"


def detect_format(path: str | os.PathLike) -> str:
    """The labelled layout of folder ``path``: "export", "endovis2018", "endovis2017" or
    "cholecseg8k"; DataError if it is none of them."""
    path = Path(path)
    if not path.is_dir():
        raise data_error(path, "no such folder")
    if (path / "schema.json").is_file() or (path / "manifest.json").is_file():
        return "export"
    gt_names = ("ground_truth", "BinarySegmentation", "PartsSegmentation", "TypeSegmentation")
    if any((path / n).is_dir() for n in gt_names):
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
    from napari_cliprl.io._png import natural_key

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
) -> LabeledSequence:
    """Read any labelled sequence folder (export, EndoVis 2018/2017, CholecSeg8k).

    ``schema``: for EndoVis 2018 the schema the colours are matched to (default: from
    labels.json); for EndoVis 2017 an ``endovis2017-parts/-type/-binary`` schema or its task
    name (default: parts); ignored where the folder names its own schema. ``reviewed_only``
    keeps only frames marked reviewed in an export's manifest. ``crop``: EndoVis 2017 crop.
    """
    from napari_cliprl.io import cholec, endovis2017, endovis2018, export

    kind = detect_format(path)
    if kind == "export":
        return export.read_export(path, reviewed_only=reviewed_only)
    if kind == "endovis2018":
        return endovis2018.read_endovis2018_sequence(path, schema)
    if kind == "endovis2017":
        task = endovis2017.task_of(schema) if schema is not None else "parts"
        return endovis2017.read_endovis2017_sequence(path, task, crop=crop)
    return cholec.read_cholecseg8k_sequence(path)
