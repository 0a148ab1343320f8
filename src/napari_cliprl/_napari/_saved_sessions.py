"""The saved session of an image: offered in the dock while it applies, reopened on Restore
(part of the annotator's controller; the disk work runs in workers)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from napari.layers import Image
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

from napari_cliprl.errors import describe_error
from napari_cliprl.io.lazy import as_frames

from ._guard import plural
from ._jobs import SavedSession, probe_session, restore_job
from ._layers import restorable_folder


class SavedSessions(QObject):
    """Looks for the saved session of an image and reopens it."""

    offered = Signal(str)  # the Restore line's text; "" when there is nothing to restore
    restoring = Signal(bool)
    restored = Signal(object, object, object)  # Session, the image (or None), its scale
    failed = Signal(str, str)  # message, where

    def __init__(self) -> None:
        super().__init__()
        self._offer: SavedSession | None = None
        self._probing: Path | None = None  # the folder the last check looked at
        self._shown: Path | None = None  # the folder of the session on screen
        self._worker: Any = None

    @property
    def is_restoring(self) -> bool:
        return self._worker is not None

    def shown(self, folder: Path | None) -> None:
        """The session in ``folder`` is on screen: nothing to offer for it."""
        self._shown = folder
        if self._offer is not None and self._offer.folder == folder:
            self._set_offer(None)

    def check(self, image: Image | None, session_dir: str | None) -> None:
        """Offer the saved session of ``image`` (probed in a worker) unless it is shown."""
        try:
            folder = restorable_folder(image, session_dir)
        except OSError:
            folder = None
        self._probing = folder
        if folder is None or folder == self._shown:
            self._set_offer(None)
            return
        worker = create_worker(probe_session, folder)
        worker.returned.connect(self._on_probed)
        worker.start()

    def _on_probed(self, saved: SavedSession | None) -> None:
        if saved is None or saved.folder == self._probing:  # else the image changed since
            self._set_offer(saved)

    def _set_offer(self, saved: SavedSession | None) -> None:
        if saved is not None and saved.folder == self._shown:
            saved = None
        self._offer = saved
        if saved is None:
            self.offered.emit("")
            return
        reviewed = plural(saved.reviewed, "reviewed frame")
        self.offered.emit(f"Saved session: {reviewed} of {saved.frames}.")

    def restore(self, image: Image | None, session_dir: str | None = None) -> None:
        """Reopen the offered session of ``image`` in a worker; ``restored`` when done."""
        folder = self._offer.folder if self._offer is not None else None
        folder = folder or restorable_folder(image, session_dir)
        if folder is None:
            raise FileNotFoundError("No saved session for this image; run the model first.")
        shape = None
        if image is not None:
            frames = as_frames(image.data, image.rgb)
            shape = (len(frames), *frames.shape[1:3])
        scale = tuple(image.scale[:3]) if image is not None and image.ndim == 3 else None
        worker = create_worker(restore_job, folder, shape)
        worker.returned.connect(lambda session: self.restored.emit(session, image, scale))
        worker.errored.connect(lambda e: self.failed.emit(describe_error(e), "data"))
        worker.finished.connect(functools.partial(self._end, worker))
        self._worker = worker
        self.restoring.emit(True)
        worker.start()

    def _end(self, worker: Any) -> None:
        if self._worker is worker:
            self._worker = None
            self.restoring.emit(False)
