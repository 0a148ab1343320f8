"""Reading and writing single images: RGB frames, value masks, RGB label maps.

Every reader checks the file first (a regular file: no FIFO, device or symbolic link loop),
then bounds the image's width and height from its header (``MAX_IMAGE_SIDE``,
``MAX_IMAGE_PIXELS`` of :mod:`napari_cliprl.limits`) before a single pixel is decoded, and
turns a missing, corrupt, truncated or oversized file into a one-line :class:`DataError`
naming it. Label files must be 8-bit: a 16-bit value above 255 is an error, never clipped.
Every writer is atomic (:func:`napari_cliprl.files.write_bytes_atomic`) and refuses to
replace an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from napari_cliprl.files import write_bytes_atomic
from napari_cliprl.io._files import check_file, check_inside
from napari_cliprl.io.errors import DataError, check_data_limit, data_error
from napari_cliprl.limits import limit

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every complete PNG ends with
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def list_images(folder: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """Image files in ``folder`` matching ``pattern``, in natural order (hidden files skipped).

    An entry with an image extension that is not a regular file (a FIFO, a device, a symbolic
    link loop or a dangling link) is an error naming it, never skipped in silence; more than
    ``MAX_FRAMES`` files is an error too.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise data_error(folder, "folder not found")
    files = []
    for p in folder.glob(pattern):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS or p.is_dir():
            continue
        check_file(p)
        files.append(p)
        check_data_limit("MAX_FRAMES", len(files), folder, "number of image files")
    return sorted(files, key=lambda p: natural_key(p.name))


def check_image_size(width: int, height: int, path: str | os.PathLike, what: str = "image") -> None:
    """DataLimitError naming ``path`` if a side or the pixel count is over its limit."""
    size = f"{width} x {height} {what}"
    check_data_limit("MAX_IMAGE_SIDE", max(width, height), path, f"longest side of this {size}")
    check_data_limit("MAX_IMAGE_PIXELS", width * height, path, f"pixel count of this {size}")


def _open(path: Path) -> Image.Image:
    """Open ``path`` lazily (the header only) and bound its size; DataError on failure."""
    check_file(path)
    bound = limit("MAX_IMAGE_PIXELS")
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < bound:
        Image.MAX_IMAGE_PIXELS = bound  # a user raised our bound past PIL's own: follow it
    try:
        with warnings.catch_warnings():  # our bound, checked below, replaces PIL's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(found[1]) if found else bound + 1
        check_data_limit("MAX_IMAGE_PIXELS", pixels, path, "pixel count of this image")
        raise data_error(path, "image too large to decode") from e
    except UnidentifiedImageError as e:
        raise data_error(path, "not a readable image (corrupt or unknown format)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise data_error(path, f"not a readable image ({e})") from e
    try:
        check_image_size(*img.size, path)
    except DataError:
        img.close()
        raise
    return img


def _decode(path: Path) -> tuple[Image.Image, bool]:
    """(fully decoded image, whether the file stores 16-bit samples); DataError on failure."""
    img = _open(path)
    sixteen = img.mode in _SIXTEEN_BIT_MODES or any(";16" in str(t[3]) for t in img.tile)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        img.close()
        raise data_error(path, f"corrupt or truncated image ({e})") from e
    return img, sixteen


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB (grayscale, palette and RGBA converted;
    16-bit grey rescaled to 8 bits)."""
    path = Path(path)
    img, _ = _decode(path)
    if img.mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img)
        if arr.max(initial=0) > 255:
            arr = (arr.astype(np.float64) * (255.0 / 65535.0)).round()
        arr = np.clip(arr, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def _eight_bit(arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` as uint8 when every value is an integer in 0..255; else DataError."""
    if arr.dtype == np.uint8:
        return arr
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise data_error(
            path, f"label values out of 0..255 (max {arr.max()}): label files must be 8-bit"
        )
    if np.issubdtype(arr.dtype, np.floating) and not np.array_equal(arr, np.round(arr)):
        raise data_error(path, "label values are not integers")
    return arr.astype(np.uint8)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel value mask as H x W uint8.

    Multi-channel files (RGB, RGBA, LA) give channel 0; palette files give the palette
    indices. 16-bit files are accepted when every value fits in 0..255 (else DataError).
    """
    path = Path(path)
    img, _ = _decode(path)
    if img.mode == "1":
        img = img.convert("L")
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return np.ascontiguousarray(_eight_bit(arr, path))


def read_rgb_label(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB label image (EndoVis 2018 colours) as H x W x 3 uint8.

    Grey files give grey colours; a 16-bit grey value above 255 or a 16-bit colour file is a
    DataError (clipping would turn it into another class or into ignore).
    """
    path = Path(path)
    img, sixteen = _decode(path)
    if img.mode in _SIXTEEN_BIT_MODES:
        grey = _eight_bit(np.asarray(img), path)
        return np.repeat(grey[..., None], 3, axis=2)
    if sixteen:
        raise data_error(path, "label file stores 16-bit colours: label colours must be 8-bit")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only (and bounded)."""
    path = Path(path)
    with _open(path) as img:
        width, height = img.size
    return height, width


def is_complete_png(path: str | os.PathLike) -> bool:
    """True for a regular file that starts with the PNG signature and ends with IEND (what an
    atomic writer leaves); False for a missing, special, truncated or half-copied file."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size < len(PNG_SIGNATURE) + len(PNG_END):
            return False
        with open(path, "rb") as f:
            head = f.read(len(PNG_SIGNATURE))
            f.seek(-len(PNG_END), os.SEEK_END)
            return head == PNG_SIGNATURE and f.read() == PNG_END
    except OSError:
        return False


def check_writable(paths: Iterable[str | os.PathLike], overwrite: bool) -> None:
    """Raise FileExistsError naming the first existing path unless ``overwrite``."""
    if overwrite:
        return
    for p in paths:
        if os.path.lexists(p):
            raise FileExistsError(
                f"{os.fspath(p)}: already exists (use overwrite=True or --overwrite to replace it)"
            )


def check_targets_inside(out: str | os.PathLike, paths: Iterable[str | os.PathLike]) -> None:
    """DataError if a target, or a folder on its way, is a symbolic link that leads out of
    ``out``: writing must never follow a ``labels/`` link into someone else's folder."""
    parents: set[str] = set()
    for p in paths:
        parent = os.path.dirname(os.fspath(p))
        if parent not in parents:
            parents.add(parent)
            check_inside(out, parent, "write")
        if os.path.islink(p):
            check_inside(out, p, "write")


def write_png(path: str | os.PathLike, array: np.ndarray, overwrite: bool = False) -> Path:
    """Write H x W (grayscale) or H x W x 3 (RGB) uint8 ``array`` as a PNG, atomically."""
    array = np.asarray(array)
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] != 3)
    ):
        raise DataError(
            f"{os.fspath(path)}: expected H x W or H x W x 3 uint8, got {array.shape} {array.dtype}"
        )
    check_writable([path], overwrite)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return write_bytes_atomic(path, buf.getvalue(), overwrite=True)
