"""io's use of :mod:`napari_cliprl.files`: the same checks, reported as :class:`DataError`.

Every file the readers open goes through :func:`check_file` (or :func:`file_present`) first:
a FIFO would block the reader forever, a device never ends, and a symbolic link loop or a
dangling link must be reported, never read as "no such file".
"""

from __future__ import annotations

import os
from typing import Any

from napari_cliprl import files
from napari_cliprl.io.errors import DataError, DataLimitError
from napari_cliprl.limits import LimitError


def _as_data_error(e: Exception) -> DataError:
    if isinstance(e, LimitError):
        return DataLimitError(str(e))
    return DataError(str(e))


def check_file(path: str | os.PathLike, what: str = "file") -> os.stat_result:
    """The stat of regular file ``path``; DataError for anything else (one line naming it)."""
    try:
        return files.check_regular_file(path, what)
    except files.FileProblemError as e:
        raise _as_data_error(e) from e


def file_present(path: str | os.PathLike) -> bool:
    """False if nothing is at ``path``, True for a regular file, else DataError naming it."""
    try:
        return files.present(path)
    except files.FileProblemError as e:
        raise _as_data_error(e) from e


def read_json_file(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The parsed JSON of regular file ``path`` (bounded by MAX_JSON_BYTES); DataError."""
    try:
        return files.read_json(path, what)
    except (files.FileProblemError, LimitError) as e:
        raise _as_data_error(e) from e


def check_inside(root: str | os.PathLike, path: str | os.PathLike, action: str) -> os.PathLike:
    """``path`` resolved, if inside ``root`` (symbolic links resolved); else DataError."""
    try:
        return files.check_inside(root, path, action)
    except files.FileProblemError as e:
        raise _as_data_error(e) from e
