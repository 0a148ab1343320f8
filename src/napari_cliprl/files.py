"""Safe file access shared by io, model checkpoints and sessions.

- :func:`check_regular_file`: refuse FIFOs, devices, sockets and symlink loops before opening
  (opening a FIFO blocks forever; /dev/zero never ends).
- :func:`read_json`: a bounded read of a regular JSON file, one-line errors naming it.
- :func:`present` / :func:`check_regular_file` refuse FIFOs, devices, sockets, symlink loops
  and dangling links where a regular file is expected (a missing file is not an error for
  :func:`present`: it answers False).
- :func:`write_bytes_atomic` / :func:`write_json_atomic`: temporary name in the same folder,
  fsync, then ``os.replace``; a kill leaves the old file or the new one, never half of one;
  :func:`remove_stale_temporaries` deletes what a killed writer left (on the next run).
- :func:`check_inside` (a path, symbolic links resolved, stays inside a folder) and
  :func:`check_separate` (an output folder neither equals, contains nor lies inside an input).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from napari_cliprl.limits import check_limit, limit

TMP_PREFIX = ".cliprl-tmp-"  # temporary files written here start with this (cleaned on reruns)
# temporaries of earlier versions: ".<name>.<8 random chars of mkstemp>.tmp"
_LEGACY_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


class FileProblemError(ValueError):
    """A file that cannot be used; the message is one line starting with its path."""


def problem(path: str | os.PathLike, message: str) -> FileProblemError:
    return FileProblemError(f"{os.fspath(path)}: {' '.join(message.split())}")


def check_regular_file(path: str | os.PathLike, what: str = "file") -> os.stat_result:
    """The stat of ``path`` if it is a regular file (symlinks followed); else FileProblemError
    (``what`` names the kind of file in the message, e.g. "schema file not found")."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        dangling = os.path.islink(path)
        raise problem(path, "dangling symbolic link" if dangling else f"{what} not found") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise problem(path, "symbolic link loop") from None
        raise problem(path, f"cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise problem(path, f"is a folder, expected a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise problem(path, "not a regular file (a FIFO, device or socket); refusing to read it")
    return st


def present(path: str | os.PathLike, what: str = "file") -> bool:
    """False if nothing is at ``path``; True for a regular file (symlinks followed); otherwise
    (FIFO, device, socket, folder, symlink loop, dangling link) FileProblemError naming it."""
    if not os.path.lexists(path):
        return False
    check_regular_file(path, what)
    return True


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
    st = check_regular_file(path, what)
    check_limit("MAX_JSON_BYTES", st.st_size, os.fspath(path), f"size of this {what} in bytes")
    data = read_bytes_bounded(path, bound, f"size of this {what}")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise problem(path, f"not a {what}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise problem(path, f"not a valid {what}: {e.msg} at line {e.lineno}") from None
    except ValueError:  # an integer of more than sys.get_int_max_str_digits() digits
        raise problem(path, f"not a valid {what}: a number with too many digits") from None
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
    """Delete temporary files a killed writer left in ``folder``; returns how many.

    Only regular files named by this program's writers: ``.cliprl-tmp-*`` and the
    ``.<name>.XXXXXXXX.tmp`` names of earlier versions. Call it when a run starts writing
    into a folder of its own, never while another writer may be using the folder.
    """
    removed = 0
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return 0
    with os.scandir(folder) as entries:
        for entry in entries:
            ours = entry.name.startswith(TMP_PREFIX) or _LEGACY_TMP.match(entry.name)
            if ours and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


def check_inside(root: str | os.PathLike, path: str | os.PathLike, action: str = "write") -> Path:
    """``path`` with symbolic links and ``..`` resolved, if that lies inside ``root`` (also
    resolved); else FileProblemError naming ``path``. Missing trailing parts are allowed."""
    base = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real != base and base not in real.parents:
        raise problem(
            path,
            f"resolves to {real}, outside {base} (a symbolic link or '..'); refusing to "
            f"{action} there",
        )
    return real


def check_separate(
    output: str | os.PathLike, inputs: list[str | os.PathLike], what: str = "output folder"
) -> None:
    """FileProblemError unless ``output`` neither equals, contains nor lies inside an input
    (symbolic links resolved), so that writing it can never touch the inputs."""
    out = Path(os.path.realpath(output))
    for item in inputs:
        src = Path(os.path.realpath(item))
        if out == src or out in src.parents or src in out.parents:
            relation = "is" if out == src else "contains" if out in src.parents else "lies inside"
            raise problem(output, f"{what} {relation} the input {os.fspath(item)}; choose another")


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK
