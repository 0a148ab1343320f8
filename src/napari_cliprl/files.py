"""Safe file access shared by io, model checkpoints and sessions.

- :func:`check_regular_file`: refuse FIFOs, devices, sockets and symlink loops before opening
  (opening a FIFO blocks forever; /dev/zero never ends).
- :func:`read_json`: a bounded read of a regular JSON file, one-line errors naming it.
- :func:`write_bytes_atomic` / :func:`write_json_atomic`: temporary name in the same folder,
  fsync, then ``os.replace``; a kill leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from napari_cliprl.limits import check_limit, limit

TMP_PREFIX = ".cliprl-tmp-"  # temporary files written here start with this (cleaned on reruns)


class FileProblemError(ValueError):
    """A file that cannot be used; the message is one line starting with its path."""


def problem(path: str | os.PathLike, message: str) -> FileProblemError:
    return FileProblemError(f"{os.fspath(path)}: {' '.join(message.split())}")


def check_regular_file(path: str | os.PathLike) -> os.stat_result:
    """The stat of ``path`` if it is a regular file (symlinks followed); else FileProblemError."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise problem(path, "file not found") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise problem(path, "symbolic link loop") from None
        raise problem(path, f"cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise problem(path, "is a folder, expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise problem(path, "not a regular file (a FIFO, device or socket); refusing to read it")
    return st


def read_bytes_bounded(path: str | os.PathLike, max_bytes: int, what: str = "file size") -> bytes:
    """The bytes of regular file ``path``, refusing more than ``max_bytes``."""
    st = check_regular_file(path)
    check_limit_value(st.st_size, max_bytes, path, what)
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    check_limit_value(len(data), max_bytes, path, what)
    return data


def check_limit_value(value: int, bound: int, path: str | os.PathLike, what: str) -> None:
    if value > bound:
        raise problem(path, f"{what} is {value:,} bytes, over the limit of {bound:,}")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parse the JSON file ``path`` (bounded by MAX_JSON_BYTES); FileProblemError naming it."""
    bound = limit("MAX_JSON_BYTES")
    st = check_regular_file(path)
    check_limit("MAX_JSON_BYTES", st.st_size, os.fspath(path), f"size of this {what} in bytes")
    data = read_bytes_bounded(path, bound, f"size of this {what}")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise problem(path, f"not a {what}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise problem(path, f"not a valid {what}: {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise problem(path, f"not a valid {what}: nested too deeply") from None


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; FileExistsError if it exists and not ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, data: Any, overwrite: bool = False) -> Path:
    """``data`` as indented JSON, written atomically (see :func:`write_bytes_atomic`)."""
    text = json.dumps(data, indent=1) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"), overwrite=overwrite)


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files a killed writer left in ``folder`` (our prefix only)."""
    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for tmp in folder.glob(f"{TMP_PREFIX}*"):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK
