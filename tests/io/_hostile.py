"""Builders of hostile inputs for the io tests: PNG bombs, lying videos, special files."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from _io_builders import write_video
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bomb(path: Path, width: int, height: int, *, full: bool = True) -> Path:
    """An all-black 8-bit grey PNG of ``width`` x ``height``: with ``full`` a valid file that
    decodes to width * height bytes (10000 x 9000 is about 88 KB on disk); without, the header
    and a single row only (what a reader sees before decoding)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = [comp.compress(row) for _ in range(height if full else 1)]
    body.append(comp.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
    data += _chunk(b"IDAT", b"".join(body)) + _chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png_rgb16(path: Path, value: int = 1000, h: int = 2, w: int = 3) -> Path:
    """A 16-bit-per-channel RGB PNG whose every sample is ``value`` (PIL reads it as 8 bits)."""
    raw = b"".join(b"\x00" + struct.pack(">H", value) * 3 * w for _ in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
    data += _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png_grey16(path: Path, values: np.ndarray) -> Path:
    """A 16-bit grey PNG holding ``values`` (H x W)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to a fraction of its bytes (a half-copied file)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def lying_avi(path: Path, frames: int = 6, claim: int | None = None, size=None) -> Path:
    """A small lossless AVI whose header claims ``claim`` frames and/or a frame ``size``
    (width, height) that the file does not hold."""
    write_video(path, frames, h=32, w=48, codec="ffv1")
    data = bytearray(path.read_bytes())
    if claim is not None:
        avih = data.find(b"avih")
        struct.pack_into("<I", data, avih + 8 + 16, claim)  # dwTotalFrames
        strh = data.find(b"strh")
        struct.pack_into("<I", data, strh + 8 + 32, claim)  # dwLength of the video stream
    if size is not None:
        strf = data.find(b"strf")
        struct.pack_into("<ii", data, strf + 12, *size)  # biWidth, biHeight
    path.write_bytes(bytes(data))
    return path


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)
    return path


def link_loop(path: Path) -> Path:
    """``path`` -> ``path.loop`` -> ``path``: a symbolic link loop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    other = path.with_name(path.name + ".loop")
    os.symlink(other.name, path)
    os.symlink(path.name, other)
    return path


@contextlib.contextmanager
def deadline(seconds: int = 20) -> Iterator[None]:
    """Fail instead of hanging (a reader that opens a FIFO blocks forever)."""

    def fail(*_: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s (a FIFO opened?)")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def assert_one_line(message: str, *names: str) -> None:
    """``message`` is one line (no traceback) that names every one of ``names``."""
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message, message
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
