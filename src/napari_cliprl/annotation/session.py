"""An annotation session on disk: label stacks per layer, reviewed flags, and restore.

A session folder (default ``<video>.cliprl-session/`` beside the video) holds::

    session.json     source, shape, schema, model, steps, reviewed and predicted frames,
                     the model's uncertainty per predicted frame (frame suggestions)
    labels.zarr/     one T x H x W uint8 array per layer, chunk = one frame:
                     zero_shot, step_0 ... step_T (model proposals), corrected (edited),
                     propagated (reviewed labels carried by optical flow; 255 = none yet)
    flow.zarr/       optical flows of the video (``flow.FlowCache(frames, folder)``)
    .cliprl.lock     held while a process has the session open for writing

Label stacks never live whole in memory: viewers index the zarr arrays frame by frame, and
edits painted into ``corrected`` are on disk as soon as they are made. A crash or a kill loses
nothing a person made: a reviewed flag is saved at once, after its frame's ``corrected`` chunk;
proposals are stored chunk by chunk and session.json follows within :data:`SAVE_INTERVAL`
(frames whose proposal chunks are all stored count as predicted again on opening), so at most
the last second's uncertainty scores are lost, and the next run recomputes them.

Opening checks everything first (:mod:`.session_info`, :mod:`.session_store`); one process
writes a session at a time (:mod:`.session_open`, :mod:`.locking`); ``read_only=True`` opens
without the lock and refuses every change. Thread-safe: one lock guards flags and session.json.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from napari_cliprl.annotation import locking
from napari_cliprl.annotation.session_info import (
    CORRECTED,
    PROPAGATED,
    SESSION_FILE,
    SESSION_SUFFIX,
    SessionError,
    SessionInfo,
    default_session_dir,
    fallback_session_dir,
    find_session,
    now,
    session_dir_for,
)
from napari_cliprl.annotation.session_open import (
    create_session,
    open_session,
    register,
    unregister,
)
from napari_cliprl.annotation.session_store import (
    STORE_NAME,
    SessionArray,
    chunk_path,
    create_array,
    open_arrays,
)
from napari_cliprl.annotation.session_views import SessionViews
from napari_cliprl.files import write_json_atomic
from napari_cliprl.schemas import LabelSchema
from napari_cliprl.steps import ZERO_SHOT_LABEL, key_of, proposal_labels, step_label

__all__ = [
    "CORRECTED",
    "PROPAGATED",
    "SESSION_FILE",
    "SESSION_SUFFIX",
    "STORE_NAME",
    "Session",
    "SessionError",
    "SessionInfo",
    "default_session_dir",
    "fallback_session_dir",
    "find_session",
    "session_dir_for",
]

ZERO_SHOT = ZERO_SHOT_LABEL
SAVE_INTERVAL = 1.0  # seconds between session.json writes while proposals stream in

Progress = Callable[[int, int, str], None]


class Session(SessionViews):
    """Label stacks and review state of one annotated sequence (see the module doc)."""

    def __init__(
        self,
        folder: Path,
        info: SessionInfo,
        arrays: dict[str, zarr.Array],
        *,
        read_only: bool = False,
        lock: locking.FolderLock | None = None,
    ) -> None:
        self.folder = folder
        self.info = info
        self.read_only = read_only
        self.schema = LabelSchema.from_dict(info.schema, str(folder / SESSION_FILE))
        self._group = zarr.open_group(folder / STORE_NAME, mode="r" if read_only else "r+")
        self._arrays = {n: SessionArray(a, n, folder, read_only) for n, a in arrays.items()}
        self._lock = threading.RLock()
        self._reviewed = set(info.reviewed)
        self._saved_reviewed = set(info.reviewed)  # what session.json on disk says
        self._predicted = set(info.predicted)
        self._uncertainty = {int(k): v for k, v in info.uncertainty.items()}
        self._dirty = False
        self._saved_at = time.monotonic()
        self._last: tuple[int, np.ndarray] | None = None  # the last step just written
        self.closed = False
        self._file_lock = lock
        if lock is not None:
            register(self, lock)

    # -- creating, opening, closing -------------------------------------------------------
    @classmethod
    def create(
        cls,
        folder: str | os.PathLike,
        *,
        source: str | os.PathLike | None,
        shape: Sequence[int],
        schema: LabelSchema,
        steps: int,
        **model: Any,
    ) -> Session:
        """A new session in ``folder``, open for writing; SessionError if one exists there.

        ``shape``: T x H x W of the frames (within :mod:`napari_cliprl.limits`); ``model``:
        checkpoint, checkpoint_hash, model. A label store in ``folder`` without session.json
        is never replaced.
        """
        return create_session(
            cls, Path(folder), source=source, shape=shape, schema=schema, steps=steps, **model
        )

    @classmethod
    def open(cls, folder: str | os.PathLike, *, read_only: bool = False) -> Session:
        """Reopen the session saved in ``folder`` (its edits and review flags included).

        Everything is checked first: SessionError, one line naming the file, for a malformed
        session.json, damaged label stacks or stacks that disagree with it. For writing (the
        default) the folder is locked: SessionError if another process has it open or it
        cannot be written; in this process, the Session open on ``folder`` already is
        returned. ``read_only=True`` never locks, and refuses every change.
        """
        return open_session(cls, Path(folder), read_only)

    def flush(self) -> None:
        """Write session.json now if proposals changed since it was last written."""
        with self._lock:
            if self._dirty and not self.read_only and not self.closed:
                self.save()

    def close(self) -> None:
        """Flush and release the folder (another process may then open it); idempotent."""
        with self._lock:
            if self.closed:
                return
            try:
                self.flush()
            finally:
                self.closed = True
                if self._file_lock is not None:
                    self._file_lock.release()
                    unregister(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _create_array(self, name: str, fill_value: int = 0) -> zarr.Array:
        self._require_writable()
        array = create_array(self.folder, name, self.shape, fill_value=fill_value)
        self._arrays[name] = SessionArray(array, name, self.folder, self.read_only)
        return array

    # -- views ---------------------------------------------------------------------------
    def array(self, name: str) -> SessionArray:
        """The T x H x W uint8 array of layer ``name`` (chunk = one frame; see SessionArray);
        also ``"propagated"`` (made on first use, 255 where nothing was propagated yet)."""
        if name == PROPAGATED and name not in self._arrays:
            self._open_propagated()
        if name not in [*self.layer_names, PROPAGATED] or name not in self._arrays:
            raise KeyError(f"session has no layer {name!r}; layers: {self.layer_names}")
        return self._arrays[name]

    @property
    def has_propagated(self) -> bool:
        """Whether the ``propagated`` array exists (a run with reviewed frames makes it)."""
        return PROPAGATED in self._arrays or os.path.lexists(self._propagated_path())

    def _propagated_path(self) -> Path:
        return self.folder / STORE_NAME / key_of(PROPAGATED) / "zarr.json"

    def _open_propagated(self) -> None:
        if os.path.lexists(self._propagated_path()):
            arrays = open_arrays(self.folder, [PROPAGATED], self.shape, self.read_only)
            self._arrays[PROPAGATED] = SessionArray(
                arrays[PROPAGATED], PROPAGATED, self.folder, self.read_only
            )
        elif not self.read_only:
            self._create_array(PROPAGATED, fill_value=255)

    # -- changes -------------------------------------------------------------------------
    def needs_prediction(self, index: int) -> bool:
        """Always True: a run re-predicts its frames (reviewed corrections are never touched)."""
        return True

    def anchor_labels(self, index: int) -> np.ndarray:
        """The corrected labels of frame ``index`` (a reviewed frame: what is propagated)."""
        return np.asarray(self.array(CORRECTED)[int(index)])

    def seed_labels(self, index: int) -> np.ndarray | None:
        """A reviewed frame's correction, else its last proposal; None if never predicted."""
        if self.is_reviewed(index):
            return np.asarray(self.array(CORRECTED)[int(index)])
        if int(index) in self.predicted:
            return np.asarray(self.array(step_label(self.steps))[int(index)])
        return None

    def write_prediction(
        self,
        index: int,
        zero_shot: np.ndarray,
        steps: Sequence[np.ndarray],
        *,
        uncertainty: float | None = None,
        frame: np.ndarray | None = None,
        propagated: np.ndarray | None = None,
    ) -> None:
        """Store the proposals of frame ``index``: zero-shot and step 0 .. step T (H x W ids).

        ``uncertainty``: the frame's suggestion score (:func:`suggest.frame_uncertainty`);
        ``frame`` is not kept (the session refers to its source); ``propagated``: the labels
        carried from reviewed frames. Chunks are written at once;
        session.json follows within :data:`SAVE_INTERVAL` seconds (see the module doc).
        """
        self._require_writable()
        index = self._frame(index)
        if len(steps) != self.steps + 1:
            raise SessionError(
                f"{self.folder}: got {len(steps)} step maps, the session has {self.steps + 1}"
            )
        maps = [zero_shot, *steps]
        names = proposal_labels(self.steps)
        checked = [self._checked(labels, name) for name, labels in zip(names, maps)]
        for name, labels in zip(names, checked):
            self._arrays[name].write_frame(index, labels)
        if propagated is not None:
            self.array(PROPAGATED).write_frame(index, self._checked(propagated, PROPAGATED))
        with self._lock:
            self._last = (index, checked[-1])
            self._predicted.add(index)
            if uncertainty is not None and np.isfinite(uncertainty):
                self._uncertainty[index] = float(uncertainty)
            else:
                self._uncertainty.pop(index, None)
            self._dirty = True
            due = time.monotonic() - self._saved_at >= SAVE_INTERVAL
        if due:
            self.save()

    def init_corrected(self, index: int) -> bool:
        """Copy the last step of frame ``index`` into ``corrected`` unless it was reviewed."""
        if self.is_reviewed(index):
            return False
        index = self._frame(index)
        with self._lock:
            last = self._last
        if last is not None and last[0] == index:
            labels = last[1]
        else:
            labels = self.array(step_label(self.steps))[index]
        self.array(CORRECTED).write_frame(index, labels)
        return True

    def mark_reviewed(self, indices: Iterable[int], reviewed: bool = True) -> list[int]:
        """Set the reviewed flag of frames ``indices``; returns those whose flag changed."""
        n = self.shape[0]
        wanted = {int(i) for i in indices if 0 <= int(i) < n}
        with self._lock:
            changed = wanted - self._reviewed if reviewed else wanted & self._reviewed
            if reviewed:
                self._reviewed |= changed
            else:
                self._reviewed -= changed
        if changed:
            self.save()
        return sorted(changed)

    def set_model(self, *, steps: int, **model: Any) -> bool:
        """Record the model that predicts from now on, with ``steps`` refinement steps.

        ``model``: checkpoint, checkpoint_hash, model (architecture). Nothing is discarded:
        the previous model's proposals, their uncertainty, ``corrected`` and the reviewed
        flags stay until a run replaces them frame by frame. With more steps than before,
        the new step maps of already predicted frames start as their last step (an agent
        that stopped earlier); with fewer, the surplus step arrays stay on disk unused.
        Call it only once the new model has loaded. Returns True when anything changed.
        """
        with self._lock:
            changed = any(getattr(self.info, k) != v for k, v in model.items())
            old, new = self.info.steps, int(steps)
            if not changed and new == old:
                return False
            for key, value in model.items():
                setattr(self.info, key, value)
            self.info.steps = new
            for t in range(old + 1, new + 1):
                self._extend_step(old, t)
        self.save()
        return True

    def _extend_step(self, last: int, t: int) -> None:
        """Create step ``t``'s array, each predicted frame starting as its step ``last``."""
        array = self._create_array(step_label(t))
        source = self._group[key_of(step_label(last))]
        for i in sorted(self._predicted):
            array[i] = source[i]

    def save(self) -> None:
        """Write session.json atomically, after the ``corrected`` chunk of every newly reviewed
        frame is on disk. Memory follows disk: when writing fails, the reviewed flags go back
        to what session.json holds and SessionError says why."""
        with self._lock:
            try:
                self._require_writable()
                for i in sorted(self._reviewed - self._saved_reviewed):
                    self._store_chunk(i)
                self.info.reviewed = sorted(self._reviewed)
                self.info.predicted = sorted(self._predicted)
                self.info.uncertainty = {str(i): v for i, v in sorted(self._uncertainty.items())}
                self.info.updated = now()
                write_json_atomic(self.folder / SESSION_FILE, asdict(self.info), overwrite=True)
            except (SessionError, OSError) as e:
                self._reviewed = set(self._saved_reviewed)
                if isinstance(e, SessionError):
                    raise
                raise SessionError(f"{self.folder / SESSION_FILE}: cannot save ({e})") from e
            self._saved_reviewed = set(self._reviewed)
            self._dirty = False
            self._saved_at = time.monotonic()

    def _store_chunk(self, index: int) -> None:
        """Make sure frame ``index`` of ``corrected`` has its chunk file (a frame accepted as
        it is, never painted, has none yet)."""
        if not chunk_path(self.folder, CORRECTED, index).is_file():
            array = self._arrays[CORRECTED]
            array.write_frame(index, np.asarray(array[index]))

    def _require_writable(self) -> None:
        if self.read_only:
            raise SessionError(f"{self.folder}: session is open read-only; nothing can change")
        if self.closed:
            raise SessionError(f"{self.folder}: session is closed; open it again to change it")

    def _frame(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.shape[0]:
            raise SessionError(f"{self.folder}: frame {index} outside 0..{self.shape[0] - 1}")
        return index

    def _checked(self, labels: np.ndarray, name: str) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.shape != self.shape[1:]:
            raise SessionError(
                f"{name}: label map is {labels.shape}, the session's frames are {self.shape[1:]}"
            )
        return labels.astype(np.uint8, copy=False)

    def __repr__(self) -> str:
        return (
            f"Session({str(self.folder)!r}, frames={self.shape[0]}, steps={self.steps}, "
            f"reviewed={len(self._reviewed)})"
        )
