"""Array-like views that read frames and labels on demand, for viewers that index lazily.

napari accepts any object with ``shape``, ``dtype``, ``ndim`` and ``__getitem__`` as layer
data and only ever asks for the slice it shows, so a 10,000-frame video wrapped in
:class:`LazyFrames` opens at once and holds a few decoded frames at most.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from napari_cliprl.io.frames import FrameSource


class LazyArray:
    """A T x ... array whose frame ``i`` comes from ``get(i)``; ``frame_shape`` is per frame.

    Indexing with an int/slice/list on axis 0 reads only those frames; the remaining indices
    are applied to the stacked numpy result. ``np.asarray`` reads every frame (avoid it).
    """

    def __init__(
        self,
        get: Callable[[int], np.ndarray],
        length: int,
        frame_shape: Sequence[int],
        dtype: Any = np.uint8,
    ) -> None:
        self._get = get
        self._length = int(length)
        self._frame_shape = tuple(int(s) for s in frame_shape)
        self.dtype = np.dtype(dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._length, *self._frame_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self._frame_shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self._length

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (negative indices count from the end) as a numpy array."""
        i = int(index)
        i = i + self._length if i < 0 else i
        if not 0 <= i < self._length:
            raise IndexError(f"frame index {index} out of range 0..{self._length - 1}")
        return np.asarray(self._get(i), dtype=self.dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = _expand_key(key, self.ndim)
        first, rest = key[0], key[1:]
        if isinstance(first, int | np.integer):
            return self.frame(int(first))[rest]
        if isinstance(first, slice):
            indices: Sequence[int] = range(*first.indices(self._length))
        else:
            sel = np.asarray(first)
            if sel.dtype == bool:
                sel = np.flatnonzero(sel)
            indices = [int(i) for i in sel.ravel()]
        frames = [self.frame(i) for i in indices]
        stacked = np.stack(frames) if frames else np.empty((0, *self._frame_shape), self.dtype)
        return stacked[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class EditableLazyArray(LazyArray):
    """A :class:`LazyArray` that accepts writes: edited frames are kept in memory, others
    are still read on demand (for label layers a user may paint on)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.edited: dict[int, np.ndarray] = {}

    def frame(self, index: int) -> np.ndarray:
        i = int(index) + self._length if int(index) < 0 else int(index)
        if i in self.edited:
            return self.edited[i]
        return super().frame(i)

    def _editable(self, index: int) -> np.ndarray:
        i = int(index) + self._length if int(index) < 0 else int(index)
        if i not in self.edited:
            self.edited[i] = np.array(super().frame(i), copy=True)
        return self.edited[i]

    def __setitem__(self, key: Any, value: Any) -> None:
        key = _expand_key(key, self.ndim)
        first, rest = key[0], key[1:]
        if isinstance(first, int | np.integer):
            self._editable(int(first))[rest] = value
            return
        if isinstance(first, slice):
            indices = list(range(*first.indices(self._length)))
            stack = np.stack([self._editable(i) for i in indices])
            stack[(slice(None), *rest)] = value
        else:
            sel = np.asarray(first)
            indices = [int(i) for i in np.unique(sel)]
            stack = np.stack([self._editable(i) for i in indices])
            stack[(np.searchsorted(indices, sel), *rest)] = value
        for k, i in enumerate(indices):
            self.edited[i][...] = stack[k]


class LazyFrames(LazyArray):
    """T x H x W x 3 uint8 frames of a :class:`FrameSource`, decoded when indexed."""

    def __init__(self, source: FrameSource) -> None:
        t, h, w, c = source.shape
        super().__init__(source.__getitem__, t, (h, w, c), np.uint8)
        self.source = source

    @property
    def frame_names(self) -> Sequence[str]:
        return self.source.frame_names


def _expand_key(key: Any, ndim: int) -> tuple:
    """Normalise an index to a tuple of length ``ndim`` (Ellipsis expanded)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (ndim - len(key) + 1)
        key = key[:at] + fill + key[at + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices: {len(key)} for {ndim} dimensions")
    return key + (slice(None),) * (ndim - len(key))


def frame_names_of(data: Any) -> list[str]:
    """Output file stems for the frames of ``data``: the source's names, else ``frameNNN``."""
    names = getattr(data, "frame_names", None)
    if names is not None:
        return list(names)
    n = len(data)
    width = max(3, len(str(n - 1)))
    return [f"frame{i:0{width}d}" for i in range(n)]


def as_frames(data: Any, rgb: bool = True) -> LazyArray:
    """Any image data (T x H x W x 3, H x W x 3, T x H x W, H x W) as T x H x W x 3 uint8 frames.

    Frames are read on demand from ``data``; grey frames are repeated to 3 channels and
    non-uint8 data is rescaled by its dtype's range (floats are assumed in [0, 1]).
    """
    if isinstance(data, LazyFrames):
        return data
    shape = tuple(data.shape)
    if rgb and shape[-1] in (3, 4):
        spatial = shape[:-1]
    else:
        spatial, rgb = shape, False
    if len(spatial) == 2:
        length, getter = 1, (lambda i: data[...])
    elif len(spatial) == 3:
        length, getter = spatial[0], (lambda i: data[i])
    else:
        raise ValueError(f"image data of shape {shape} is not a frame or a sequence of frames")
    h, w = spatial[-2:]

    def get(i: int) -> np.ndarray:
        return _to_rgb8(np.asarray(getter(i)), rgb)

    out = LazyArray(get, length, (h, w, 3), np.uint8)
    out.frame_names = frame_names_of(data) if len(spatial) == 3 else ["frame000"]  # type: ignore[attr-defined]
    return out


def _to_rgb8(frame: np.ndarray, rgb: bool) -> np.ndarray:
    if rgb:
        frame = frame[..., :3]
    else:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    if frame.dtype == np.uint8:
        return frame
    if np.issubdtype(frame.dtype, np.floating):
        return (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
    top = np.iinfo(frame.dtype).max
    return (frame.astype(np.float64) * (255 / top) + 0.5).astype(np.uint8)
