"""The label stacks of a session on disk (``labels.zarr``): creating, checking and reading them.

One zarr v3 array per layer, T x H x W uint8, one chunk per frame, stored at
``labels.zarr/<key>/c/<frame>/0/0``. Every written chunk is stored, also one equal to the fill
value (zarr skips those by default), so "this frame's chunk exists" means "this frame was
written": a reviewed frame without its ``corrected`` chunk is damage, never a blank frame.

Before zarr reads anything, its metadata files are read bounded (:func:`files.read_json`) and
checked against session.json (shape, chunks, dtype); chunk files must be regular files. A read
that fails (a corrupt chunk) raises :class:`SessionError` naming the layer, frame and folder.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BytesCodec, ZstdCodec

from napari_cliprl.annotation.session_info import (
    CORRECTED,
    SESSION_FILE,
    SessionError,
    SessionInfo,
)
from napari_cliprl.errors import first_line
from napari_cliprl.files import (
    FileProblemError,
    check_regular_file,
    read_json,
    remove_stale_temporaries,
)
from napari_cliprl.limits import LimitError
from napari_cliprl.steps import key_of, proposal_labels

STORE_NAME = "labels.zarr"
ZARR_CONFIG = {"write_empty_chunks": True}  # a written frame always has its chunk file
_PARTIAL = re.compile(r"^\d+\.[0-9a-f]{32}\.partial$")  # zarr's temporary chunk files
_OLD_TMP = re.compile(r"^\.session\.json\.\d+\.\d+\.tmp$")  # session.json temporaries (0.1)


def read_only_message(folder: Path, why: str | None) -> str:
    """The one line for a session folder that cannot be written."""
    return (
        f"{folder}: session folder is read-only ({why or 'not writable'}); open it read-only "
        "to look at it, or copy it somewhere writable to continue"
    )


def chunk_path(folder: Path, name: str, index: int) -> Path:
    """The chunk file of frame ``index`` of layer ``name``."""
    return folder / STORE_NAME / key_of(name) / "c" / str(int(index)) / "0" / "0"


def create_array(
    folder: Path, name: str, shape: tuple[int, int, int], fill_value: int = 0
) -> zarr.Array:
    """A new T x H x W uint8 array for layer ``name``, every pixel ``fill_value`` until written
    (replaces one of that name)."""
    t, h, w = shape
    group = zarr.open_group(folder / STORE_NAME, mode="a")
    return group.create_array(
        key_of(name),
        shape=(t, h, w),
        chunks=(1, h, w),
        dtype="uint8",
        fill_value=fill_value,
        overwrite=True,
        config=ZARR_CONFIG,
    )


def open_arrays(
    folder: Path, names: Iterable[str], shape: tuple[int, int, int], read_only: bool
) -> dict[str, zarr.Array]:
    """The arrays of layers ``names``, each checked against ``shape`` before zarr opens it."""
    store = folder / STORE_NAME
    _read_meta(store / "zarr.json", "group")
    arrays = {}
    for name in names:
        meta_file = store / key_of(name) / "zarr.json"
        if not os.path.lexists(meta_file):
            raise SessionError(
                f"{store / key_of(name)}: the label stack of layer {name!r} is missing; "
                "the session is damaged"
            )
        _check_array_meta(meta_file, _read_meta(meta_file, "array"), shape)
        try:
            array = zarr.open_array(store=store, path=key_of(name), mode="r" if read_only else "r+")
            arrays[name] = array.with_config(ZARR_CONFIG)
        except Exception as e:  # noqa: BLE001 - any zarr failure here is a broken store
            raise SessionError(f"{meta_file}: unreadable label stack ({first_line(e)})") from e
    return arrays


def _read_meta(file: Path, node: str) -> dict[str, Any]:
    try:
        data = read_json(file, "zarr metadata JSON file")
    except (FileProblemError, LimitError) as e:
        raise SessionError(str(e)) from None
    if not isinstance(data, dict) or data.get("node_type") != node or data.get("zarr_format") != 3:
        raise SessionError(f"{file}: not zarr v3 {node} metadata; the session is damaged")
    return data


def _check_array_meta(file: Path, meta: dict[str, Any], shape: tuple[int, int, int]) -> None:
    t, h, w = shape
    grid = meta.get("chunk_grid") or {}
    chunks = (grid.get("configuration") or {}).get("chunk_shape")
    encoding = meta.get("chunk_key_encoding") or {}
    separator = (encoding.get("configuration") or {}).get("separator", "/")
    problems = []
    if meta.get("shape") != [t, h, w]:
        problems.append(f"shape {meta.get('shape')} is not session.json's {[t, h, w]}")
    if grid.get("name") != "regular" or chunks != [1, h, w]:
        problems.append(f"chunks {chunks} are not one frame {[1, h, w]}")
    if meta.get("data_type") != "uint8":
        problems.append(f"data type {meta.get('data_type')!r} is not uint8")
    if encoding.get("name") != "default" or separator != "/":
        problems.append("chunk keys are not the default c/<frame>/0/0")
    if problems:
        raise SessionError(f"{file}: {'; '.join(problems)}; the session is damaged")


def stored_frames(folder: Path, name: str, t: int) -> set[int]:
    """Frames of layer ``name`` whose chunk file exists; SessionError for a chunk that is not
    a regular file (a symbolic link, a folder, a device) or a frame outside 0..t-1."""
    base = folder / STORE_NAME / key_of(name) / "c"
    frames: set[int] = set()
    if not base.is_dir():
        return frames
    with os.scandir(base) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            index = int(entry.name)
            chunk = Path(entry.path) / "0" / "0"
            if index >= t:
                raise SessionError(f"{chunk}: a chunk beyond the session's {t} frames")
            if not os.path.lexists(chunk):
                continue
            if chunk.is_symlink() or not chunk.is_file():
                raise SessionError(f"{chunk}: not a regular file; the session is damaged")
            frames.add(index)
    return frames


def remove_partial_chunks(folder: Path, names: Iterable[str]) -> int:
    """Delete the temporary chunk files a killed zarr writer left (``<n>.<hex>.partial``)."""
    removed = 0
    for name in names:
        base = folder / STORE_NAME / key_of(name) / "c"
        if not base.is_dir():
            continue
        for root, _dirs, files in os.walk(base):
            for file in files:
                path = Path(root) / file
                if _PARTIAL.match(file) and not path.is_symlink() and path.is_file():
                    path.unlink(missing_ok=True)
                    removed += 1
    return removed


def check_chunk(folder: Path, name: str, index: int, why: str) -> None:
    """SessionError unless frame ``index`` of layer ``name`` has a regular chunk file."""
    path = chunk_path(folder, name, index)
    try:
        check_regular_file(path)
    except FileProblemError as e:
        raise SessionError(f"{e}: frame {index} {why}; the session is damaged") from None


def check_writable(folder: Path, names: list[str], read_only: bool) -> None:
    if read_only:
        return
    store = folder / STORE_NAME
    for path in (folder, store, *(store / key_of(n) for n in names)):
        if not os.access(path, os.W_OK):
            raise SessionError(read_only_message(folder, f"{path} is not writable"))


def check_stored(folder: Path, info: SessionInfo) -> set[int]:
    """Check the stored chunks against session.json; returns the frames whose proposal chunks
    are all stored (predicted, also when session.json was not saved since)."""
    t = info.shape[0]
    corrected = stored_frames(folder, CORRECTED, t)
    for i in info.reviewed:
        if i not in corrected:
            raise SessionError(
                f"{chunk_path(folder, CORRECTED, i)}: frame {i} is marked reviewed in "
                f"{SESSION_FILE} but its corrected labels are missing; the session is damaged"
            )
    complete: set[int] | None = None
    for name in proposal_labels(info.steps):
        stored = stored_frames(folder, name, t)
        for i in info.predicted:
            if i not in stored:
                raise SessionError(
                    f"{chunk_path(folder, name, i)}: frame {i}, listed as predicted in "
                    f"{SESSION_FILE}, has no stored {name!r} labels; the session is damaged"
                )
        complete = stored if complete is None else complete & stored
    return complete or set()


def check_no_orphan_store(folder: Path) -> None:
    """SessionError when ``folder`` holds a label store with chunks but no session.json (the
    edits of a session whose session.json is gone): never replace it."""
    store = folder / STORE_NAME
    if not os.path.lexists(store):
        return
    for _root, _dirs, files in os.walk(store):
        if any(f != "zarr.json" for f in files):
            raise SessionError(
                f"{store}: holds stored labels but {SESSION_FILE} is missing; choose another "
                "session folder (nothing was changed)"
            )


def remove_temporaries(folder: Path, names: list[str]) -> None:
    """Temporary files a killed writer of this session left (ours only)."""
    remove_stale_temporaries(folder)
    for path in folder.iterdir():
        if _OLD_TMP.match(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
    remove_partial_chunks(folder, names)


class SessionArray:
    """A layer's T x H x W uint8 zarr array (chunk = one frame) with errors that name it.

    Indexing reads or writes frames like the zarr array it wraps (napari layers index it
    directly); a failed read raises SessionError naming the layer, the frame and the folder,
    and a write to a read-only session raises SessionError before anything changes.
    :meth:`write_frame` stores a whole frame at a third of zarr's cost.
    """

    def __init__(self, array: zarr.Array, name: str, folder: Path, read_only: bool) -> None:
        self._array = array
        self.name = name
        self.folder = folder
        self.read_only = read_only
        self._encoder = _chunk_encoder(array)

    def write_frame(self, index: int, labels: np.ndarray) -> None:
        """Store frame ``index`` (H x W uint8, the array's frame shape) as one chunk file.

        For the layout and codecs this module creates (bytes + zstd, keys c/<i>/0/0) the chunk
        is encoded here and renamed into place (a temporary ``<n>.<hex>.partial``, as zarr's
        own, so a kill leaves the old chunk or the new one); otherwise zarr writes it.
        """
        if self._encoder is None:
            self[index] = labels
            return
        if self.read_only:
            self[index] = labels  # raises the read-only SessionError
        data = self._encoder.encode(np.ascontiguousarray(labels, dtype=np.uint8))
        path = chunk_path(self.folder, self.name, index)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise SessionError(
                f"{self.folder}: cannot write layer {self.name!r} at frame {index} "
                f"({first_line(e)})"
            ) from e

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._array.dtype)

    @property
    def ndim(self) -> int:
        return len(self._array.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self._array.shape))

    def __len__(self) -> int:
        return int(self._array.shape[0])

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._array, attr)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = np.asarray(self[...])
        return data if dtype is None else data.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._array[key]
        except (RuntimeError, ValueError, OSError) as e:
            raise SessionError(
                f"{self.folder}: cannot read layer {self.name!r} at {_frames_of(key)} "
                f"({first_line(e)}); the session's stored labels are damaged"
            ) from e

    def __setitem__(self, key: Any, value: Any) -> None:
        if self.read_only:
            raise SessionError(
                f"{self.folder}: session is open read-only; layer {self.name!r} cannot change"
            )
        try:
            self._array[key] = value
        except OSError as e:
            raise SessionError(
                f"{self.folder}: cannot write layer {self.name!r} at {_frames_of(key)} "
                f"({first_line(e)})"
            ) from e

    def __repr__(self) -> str:
        return f"SessionArray({self.name!r}, shape={self.shape}, folder={str(self.folder)!r})"


def _chunk_encoder(array: zarr.Array) -> Any:
    """A numcodecs Zstd encoder equal to ``array``'s codecs (bytes, then zstd without
    checksum, default chunk keys), or None when the array is stored any other way."""
    meta = array.metadata
    codecs = getattr(meta, "codecs", ())
    encoding = getattr(meta, "chunk_key_encoding", None)
    if (
        len(codecs) == 2
        and isinstance(codecs[0], BytesCodec)
        and isinstance(codecs[1], ZstdCodec)
        and not codecs[1].checksum
        and getattr(encoding, "name", None) == "default"
        and getattr(encoding, "separator", None) == "/"
        and np.dtype(array.dtype) == np.uint8
    ):
        return numcodecs.Zstd(level=codecs[1].level)
    return None


def _frames_of(key: Any) -> str:
    """``"frame 3"``, ``"frames 2..5"`` or ``"frames [...]"`` for an index expression."""
    first = key[0] if isinstance(key, tuple) and key else key
    if isinstance(first, int | np.integer):
        return f"frame {int(first)}"
    if isinstance(first, slice):
        return f"frames {first.start or 0}..{'' if first.stop is None else first.stop - 1}"
    if isinstance(first, np.ndarray) and first.size:
        frames = np.unique(first)
        return f"frame {int(frames[0])}" if frames.size == 1 else f"frames {frames[:5].tolist()}"
    return "the selected frames"
