"""Errors raised by :mod:`napari_cliprl.io` for bad input data."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad or missing input data; the message is one line starting with the offending path."""


def data_error(path: str | os.PathLike, message: str) -> DataError:
    """A :class:`DataError` whose one-line message starts with ``path``."""
    return DataError(f"{os.fspath(path)}: {' '.join(message.split())}")
