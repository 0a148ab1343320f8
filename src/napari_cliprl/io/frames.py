"""Frame sources: random access to the frames of a sequence, decoded on demand.

Every source follows the :class:`FrameSource` protocol: ``len(src)``, ``src[i]`` (H x W x 3
uint8 RGB), ``src.shape`` (T, H, W, 3), ``src.fps`` (float or None), ``src.frame_names`` (output
file stems such as ``frame000``), ``src.path``, ``src.close()``, and use as a context manager.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from napari_cliprl.io._png import image_size, list_images, read_image
from napari_cliprl.io.errors import data_error

# The common EndoVis 2017 crop (TernausNet / ISINet): 1080 x 1920 -> 1024 x 1280.
CROP_2017 = (28, 320, 1024, 1280)  # row, column, height, width


@runtime_checkable
class FrameSource(Protocol):
    """Random access to T frames of H x W x 3 uint8 RGB."""

    path: Path

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...

    @property
    def shape(self) -> tuple[int, int, int, int]: ...

    @property
    def fps(self) -> float | None: ...

    @property
    def frame_names(self) -> Sequence[str]: ...

    def close(self) -> None: ...


class FrameNames(Sequence[str]):
    """``frame000``, ``frame001``, ... for ``count`` frames, made when indexed (a video of a
    million frames needs no list of a million names). At least 3 digits, more when needed."""

    def __init__(self, count: int) -> None:
        self._count = int(count)
        self._digits = max(3, len(str(max(self._count - 1, 0))))

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        i = int(index) + self._count if int(index) < 0 else int(index)
        if not 0 <= i < self._count:
            raise IndexError(f"frame name index {index} out of range 0..{self._count - 1}")
        return f"frame{i:0{self._digits}d}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameNames):
            return len(other) == self._count
        return isinstance(other, list | tuple) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"FrameNames({self._count})"


class _SourceBase:
    """Shared behaviour: index checks, iteration, context manager."""

    path: Path

    def __len__(self) -> int:
        raise NotImplementedError

    def _get(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not isinstance(index, int | np.integer):
            raise TypeError(f"frame index must be an int, got {type(index).__name__}")
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"{self.path}: frame index {index} out of range 0..{n - 1}")
        return i

    def __getitem__(self, index: int) -> np.ndarray:
        return self._get(self._check_index(index))

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        """Release open files (nothing to release by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, frames={len(self)})"


class FrameFolder(_SourceBase):
    """Frames stored as image files (a folder, or an explicit ordered list of files).

    ``names`` overrides the frame names (default: the file stems). Files are read when
    indexed; the frame size is taken from the first file's header.
    """

    def __init__(
        self,
        path_or_files: str | os.PathLike | Sequence[str | os.PathLike],
        names: Sequence[str] | None = None,
        fps: float | None = None,
    ) -> None:
        if isinstance(path_or_files, str | os.PathLike):
            self.path = Path(path_or_files)
            self.files = list_images(self.path)
            if not self.files:
                raise data_error(self.path, "folder holds no image files (.png, .jpg, ...)")
        else:
            self.files = [Path(p) for p in path_or_files]
            if not self.files:
                raise ValueError("FrameFolder needs at least one image file")
            self.path = self.files[0].parent
        self._names = list(names) if names is not None else [p.stem for p in self.files]
        if len(self._names) != len(self.files):
            raise ValueError(f"{len(self._names)} names for {len(self.files)} files")
        self._fps = fps
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def _get(self, index: int) -> np.ndarray:
        return read_image(self.files[index])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        if self._size is None:
            self._size = image_size(self.files[0])
        return (len(self), *self._size, 3)

    @property
    def fps(self) -> float | None:
        return self._fps

    @property
    def frame_names(self) -> Sequence[str]:
        return list(self._names)


class CroppedFrames(_SourceBase):
    """A window of every frame of ``source``: rows ``top:top+height``, cols ``left:left+width``."""

    def __init__(self, source: FrameSource, top: int, left: int, height: int, width: int):
        self.source = source
        self.path = source.path
        self.box = (top, left, height, width)

    def __len__(self) -> int:
        return len(self.source)

    def _get(self, index: int) -> np.ndarray:
        frame = self.source[index]
        return crop_array(frame, self.box, str(self.path))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.box[2], self.box[3], 3)

    @property
    def fps(self) -> float | None:
        return self.source.fps

    @property
    def frame_names(self) -> Sequence[str]:
        return self.source.frame_names

    def close(self) -> None:
        self.source.close()


class SubsetFrames(_SourceBase):
    """The frames of ``source`` at ``indices`` (in that order), with their own names."""

    def __init__(
        self, source: FrameSource, indices: Sequence[int], names: Sequence[str] | None = None
    ):
        self.source = source
        self.path = source.path
        n = len(source)
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise data_error(source.path, f"frame index {bad[0]} out of range 0..{n - 1}")
        self.indices = [int(i) for i in indices]
        all_names = source.frame_names
        self._names = list(names) if names is not None else [all_names[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def _get(self, index: int) -> np.ndarray:
        return self.source[self.indices[index]]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        _, h, w, c = self.source.shape
        return (len(self), h, w, c)

    @property
    def fps(self) -> float | None:
        return self.source.fps

    @property
    def frame_names(self) -> Sequence[str]:
        return list(self._names)

    def close(self) -> None:
        self.source.close()


def crop_array(
    array: np.ndarray, box: tuple[int, int, int, int], source: str = "<array>"
) -> np.ndarray:
    """``array[top:top+height, left:left+width]`` (H x W or H x W x C); too small raises."""
    top, left, height, width = box
    if array.shape[0] < top + height or array.shape[1] < left + width:
        raise data_error(
            source,
            f"frame of {array.shape[0]}x{array.shape[1]} is too small for a {height}x{width} "
            f"crop at row {top}, column {left}",
        )
    return np.ascontiguousarray(array[top : top + height, left : left + width])
