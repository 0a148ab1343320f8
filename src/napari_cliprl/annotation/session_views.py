"""Read-only views of a session: its frames, layers and review state (reviewed and predicted
frames, uncertainty), and the checks that a session fits an image or holds its reviews.

A mixin of :class:`~napari_cliprl.annotation.session.Session`, which owns the state: the sets
``_reviewed`` and ``_predicted``, the dict ``_uncertainty`` and the lock ``_lock`` guarding
them, ``info`` (:class:`SessionInfo`), ``folder`` and ``schema``. Every view copies under the
lock, so a worker writing proposals never changes what a caller is iterating over.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_cliprl.annotation.session_info import CORRECTED, SessionError, SessionInfo
from napari_cliprl.annotation.session_store import check_chunk
from napari_cliprl.schemas import LabelSchema
from napari_cliprl.steps import proposal_labels


class SessionViews:
    """Views of a session; see the module doc for what the subclass provides."""

    _lock: threading.RLock
    _reviewed: set[int]
    _predicted: set[int]
    _uncertainty: dict[int, float]
    info: SessionInfo
    folder: Path
    schema: LabelSchema

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.info.shape)  # type: ignore[return-value]

    @property
    def steps(self) -> int:
        return self.info.steps

    @property
    def layer_names(self) -> list[str]:
        """Proposal layer names, then ``corrected``."""
        return [*proposal_labels(self.steps), CORRECTED]

    def check_compatible(self, shape: Sequence[int], schema: LabelSchema) -> None:
        """SessionError unless frames of ``shape`` (T x H x W) and ``schema`` fit this session."""
        if tuple(int(s) for s in shape) != self.shape:
            raise SessionError(
                f"{self.folder}: session is for {self.shape[0]} frames of "
                f"{self.shape[1]}x{self.shape[2]}, the image has shape {tuple(shape)}"
            )
        if schema.to_dict()["classes"] != self.info.schema["classes"]:
            raise SessionError(
                f"{self.folder}: session uses schema {self.schema.name!r}, not {schema.name!r}; "
                "choose that schema or another session folder"
            )

    def check_reviewed_stored(self) -> None:
        """SessionError naming the first reviewed frame whose ``corrected`` chunk is missing
        (a file deleted while the session was open): never export it as a blank frame."""
        for i in self.reviewed:
            check_chunk(self.folder, CORRECTED, i, "is marked reviewed but its labels are gone")

    @property
    def reviewed(self) -> list[int]:
        with self._lock:
            return sorted(self._reviewed)

    @property
    def predicted(self) -> list[int]:
        with self._lock:
            return sorted(self._predicted)

    def uncertainty(self) -> np.ndarray:
        """The model's uncertainty per frame (T,) float, NaN where none is stored."""
        out = np.full(self.shape[0], np.nan)
        with self._lock:
            for i, value in self._uncertainty.items():
                if 0 <= i < len(out):
                    out[i] = value
        return out

    def reviewed_mask(self) -> np.ndarray:
        """(T,) bool: True for reviewed frames."""
        mask = np.zeros(self.shape[0], dtype=bool)
        mask[self.reviewed] = True
        return mask

    def is_reviewed(self, index: int) -> bool:
        with self._lock:
            return int(index) in self._reviewed

    def next_unreviewed(self, after: int = -1) -> int | None:
        """The first frame after ``after`` (wrapping around) not yet reviewed, or None."""
        n = self.shape[0]
        with self._lock:
            for k in range(1, n + 1):
                i = (after + k) % n
                if i not in self._reviewed:
                    return i
        return None
