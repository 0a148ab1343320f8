"""Keeping the viewer alive: GUI callbacks report failures instead of raising."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from napari_cliprl.errors import describe_error

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(method: F) -> F:
    """Turn any exception of a widget method into one sentence for ``self._report``.

    The viewer never crashes and nothing is half-done silently: the user sees why.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the viewer must survive any failure
            self._report(describe_error(e))
            return None

    return wrapper  # type: ignore[return-value]


def disconnect_all(links: list[tuple[Any, Callable[..., Any]]], *_: Any) -> None:
    """Disconnect (emitter, callback) pairs, ignoring those already gone."""
    for emitter, callback in links:
        try:
            emitter.disconnect(callback)
        except (RuntimeError, TypeError, ValueError):
            continue
