"""Review marks that follow the edit history of ``corrected``.

An edit marks the frames it touches reviewed; undoing that edit takes back the marks it made
(a frame reviewed before the edit stays reviewed), redoing it makes them again. Qt-free:
the controller feeds it the history items the layer reports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ._session_layers import painted_frames

MAX_RECORDS = 200  # edits remembered (napari keeps 100 undo steps per layer)


class ReviewMarks:
    """Which edit marked which frames reviewed.

    ``mark(frames, reviewed)`` sets the flags and returns the frames whose flag changed
    (``Session.mark_reviewed``). An edit is recognised by its first history atom: napari
    replays the same atom objects on undo (the item reversed) and redo.
    """

    def __init__(self, mark: Callable[[list[int], bool], list[int]]) -> None:
        self._mark = mark
        # (first atom, frames the edit marked): the atom is kept so its id stays unique
        self._records: deque[tuple[Any, list[int]]] = deque(maxlen=MAX_RECORDS)

    def edited(self, atoms: list[Any]) -> list[int]:
        """An edit was made: mark its frames; returns the frames newly reviewed."""
        if not atoms:
            return []
        newly = self._mark(sorted(painted_frames(atoms)), True)
        self._records.append((atoms[0], newly))
        return newly

    def undone(self, atoms: list[Any]) -> list[int]:
        """The edit whose first atom is ``atoms[0]`` was undone; returns frames un-reviewed."""
        frames = self._frames_of(atoms[0]) if atoms else []
        return self._mark(frames, False) if frames else []

    def redone(self, atoms: list[Any]) -> list[int]:
        """An undone edit was redone (napari hands it over reversed); returns frames marked."""
        frames = self._frames_of(atoms[-1]) if atoms else []
        return self._mark(frames, True) if frames else []

    def _frames_of(self, atom: Any) -> list[int]:
        for first, frames in reversed(self._records):
            if first is atom:
                return frames
        return []
