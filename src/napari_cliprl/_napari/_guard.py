"""Keeping the viewer alive and responsive: GUI callbacks report failures instead of raising,
and main-thread work comes in small slices."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from qtpy.QtCore import QTimer

from napari_cliprl.errors import describe_error

F = TypeVar("F", bound=Callable[..., Any])
SLICE_GAP_MS = 10


def reports_errors(where: str) -> Callable[[F], F]:
    """Turn any exception of a GUI callback into one sentence for ``self.report(message,
    where)`` (``where``: the section that shows it). The viewer never crashes and nothing is
    half-done silently: the user sees why."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the viewer must survive any failure
                self.report(describe_error(e), where)
                return None

        return wrapper  # type: ignore[return-value]

    return decorate


def disconnect_all(links: list[tuple[Any, Callable[..., Any]]], *_: Any) -> None:
    """Disconnect (emitter, callback) pairs, ignoring those already gone."""
    for emitter, callback in links:
        try:
            emitter.disconnect(callback)
        except (RuntimeError, TypeError, ValueError):
            continue


def plural(n: int, noun: str) -> str:
    """``"1 frame"``, ``"2 frames"``, ``"0 frames"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


class Slices:
    """Runs a generator one step per event-loop turn (each step a short piece of main-thread
    work), then calls ``done()``; a step that raises ends it with ``failed(sentence)``.
    Starting another generator drops the one in progress."""

    def __init__(self, done: Callable[[], None], failed: Callable[[str], None]) -> None:
        self._done, self._failed = done, failed
        self._steps: Iterator[Any] | None = None
        self._timer = QTimer()
        # not 0: a zero timer runs again before the other due timers and repaints, so two
        # slices could run back to back without the window getting a turn in between
        self._timer.setInterval(SLICE_GAP_MS)
        self._timer.setSingleShot(True)  # re-armed after each slice: the gap follows it
        self._timer.timeout.connect(self._step)

    @property
    def active(self) -> bool:
        return self._steps is not None

    def start(self, steps: Iterator[Any]) -> None:
        self._steps = steps
        self._timer.start()

    def _step(self) -> None:
        if self._steps is None:
            self._timer.stop()
            return
        try:
            next(self._steps)
            self._timer.start()
        except StopIteration:
            self._finish()
            self._done()
        except Exception as e:  # noqa: BLE001 - reported, the viewer keeps running
            self._finish()
            self._failed(describe_error(e))

    def _finish(self) -> None:
        self._steps = None
        self._timer.stop()
