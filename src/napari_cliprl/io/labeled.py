"""Labelled sequences: frames plus label maps loaded on demand (the readers' common result).

The readers (:mod:`.endovis2018`, :mod:`.endovis2017`, :mod:`.cholec`, :mod:`.export`) build a
:class:`LabeledSequence`; :mod:`.read` picks the reader for a folder.
"""

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
    def frame_names(self) -> Sequence[str]:
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
