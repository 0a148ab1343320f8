"""Errors raised by :mod:`napari_cliprl.io` for bad input data."""

from __future__ import annotations

import os

from napari_cliprl.limits import LimitError, check_limit


class DataError(ValueError):
    """Bad or missing input data; the message is one line starting with the offending path."""


class DataLimitError(DataError, LimitError):
    """Input data over a named limit (:mod:`napari_cliprl.limits`), found from a header."""


def data_error(path: str | os.PathLike, message: str) -> DataError:
    """A :class:`DataError` whose one-line message starts with ``path``."""
    return DataError(f"{os.fspath(path)}: {' '.join(message.split())}")


def check_data_limit(
    name: str, value: int, path: str | os.PathLike, what: str | None = None
) -> int:
    """``value`` unless over the limit ``name``: then :class:`DataLimitError` naming ``path``."""
    return check_limit(name, value, os.fspath(path), what, error=DataLimitError)
