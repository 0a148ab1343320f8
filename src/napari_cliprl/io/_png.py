"""Reading and writing single images: RGB frames, value masks, RGB label maps.

Every reader turns a missing, corrupt or truncated file into a one-line :class:`DataError`
naming the file; every writer is atomic (temporary name in the same folder, then
``os.replace``) and refuses to replace an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from napari_cliprl.io.errors import DataError, data_error

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: written files get the usual 0o666 & ~umask mode


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def list_images(folder: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """Image files in ``folder`` matching ``pattern``, in natural order (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise data_error(folder, "folder not found")
    files = [
        p
        for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _open(path: Path) -> Image.Image:
    """Open and fully decode ``path``; any decoding failure becomes a DataError."""
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError as e:
        raise data_error(path, "file not found") from e
    except IsADirectoryError as e:
        raise data_error(path, "is a folder, expected an image file") from e
    except UnidentifiedImageError as e:
        raise data_error(path, "not a readable image (corrupt or unknown format)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise data_error(path, f"corrupt or truncated image ({e})") from e
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB (grayscale, palette and RGBA converted)."""
    path = Path(path)
    img = _open(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img)
        if arr.max(initial=0) > 255:
            arr = (arr.astype(np.float64) * (255.0 / 65535.0)).round()
        arr = arr.astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel value mask as H x W uint8.

    Multi-channel files (RGB, RGBA, LA) give channel 0; palette files give the palette
    indices. 16-bit files are accepted when every value fits in 0..255.
    """
    path = Path(path)
    img = _open(path)
    if img.mode == "1":
        img = img.convert("L")
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise data_error(path, f"mask values out of 0..255 (max {int(arr.max())})")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def read_rgb_label(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB label image (EndoVis 2018 colours) as H x W x 3 uint8."""
    path = Path(path)
    img = _open(path)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
    except FileNotFoundError as e:
        raise data_error(path, "file not found") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise data_error(path, f"not a readable image ({e})") from e
    return height, width


def check_writable(paths: Iterable[str | os.PathLike], overwrite: bool) -> None:
    """Raise FileExistsError naming the first existing path unless ``overwrite``."""
    if overwrite:
        return
    for p in paths:
        if os.path.lexists(p):
            raise FileExistsError(
                f"{os.fspath(p)}: already exists (use overwrite=True or --overwrite to replace it)"
            )


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    check_writable([path], overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_png(path: str | os.PathLike, array: np.ndarray, overwrite: bool = False) -> Path:
    """Write H x W (grayscale) or H x W x 3 (RGB) uint8 ``array`` as a PNG, atomically."""
    import io

    array = np.asarray(array)
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] != 3)
    ):
        raise DataError(
            f"{os.fspath(path)}: expected H x W or H x W x 3 uint8, got {array.shape} {array.dtype}"
        )
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return write_bytes_atomic(path, buf.getvalue(), overwrite)
