"""Creating and opening session folders: validation first, one writer per folder.

:class:`~napari_cliprl.annotation.session.Session` calls these from ``Session.create`` and
``Session.open``. A writer holds the folder's lock (:mod:`.locking`) until it closes, exits or
is killed; in one process, one Session object per folder is open for writing (a second open
returns it), so two views of one session can never overwrite each other's flags.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from napari_cliprl.annotation import locking
from napari_cliprl.annotation.session_info import CORRECTED, SESSION_FILE, SessionError, SessionInfo
from napari_cliprl.annotation.session_store import (
    check_no_orphan_store,
    check_stored,
    check_writable,
    create_array,
    open_arrays,
    read_only_message,
    remove_temporaries,
)
from napari_cliprl.files import FileProblemError, read_json
from napari_cliprl.limits import LimitError
from napari_cliprl.schemas import LabelSchema
from napari_cliprl.steps import proposal_labels

_OPEN: dict[str, weakref.ref[Any]] = {}  # real path -> the Session open for writing
_OPEN_LOCK = threading.RLock()  # held while a writer is looked up, opened and registered


def open_writer(folder: Path) -> Any:
    """The Session open for writing on ``folder`` in this process, or None."""
    with _OPEN_LOCK:
        ref = _OPEN.get(os.path.realpath(folder))
    session = ref() if ref is not None else None
    return session if session is not None and not session.closed else None


def register(session: Any, lock: locking.FolderLock) -> None:
    """Record ``session`` as the writer of its folder; its lock goes when it is collected."""
    weakref.finalize(session, lock.release)
    with _OPEN_LOCK:
        _OPEN[os.path.realpath(session.folder)] = weakref.ref(session)


def unregister(session: Any) -> None:
    with _OPEN_LOCK:
        key = os.path.realpath(session.folder)
        ref = _OPEN.get(key)
        if ref is not None and ref() is session:
            del _OPEN[key]


@atexit.register
def _flush_open_sessions() -> None:
    with _OPEN_LOCK:
        sessions = [s for s in (ref() for ref in _OPEN.values()) if s is not None]
    for session in sessions:
        try:
            session.flush()
        except Exception:  # noqa: BLE001,S110 - exiting; the next open recovers proposals
            pass


def create_session(
    cls: Any,
    folder: Path,
    *,
    source: str | os.PathLike | None,
    shape: Sequence[int],
    schema: LabelSchema,
    steps: int,
    **model: Any,
) -> Any:
    """``cls(...)`` for a new session in ``folder`` (see ``Session.create``)."""
    exists = SessionError(f"{folder}: a session exists there already; open it instead")
    if (folder / SESSION_FILE).exists() or open_writer(folder) is not None:
        raise exists
    t, h, w = (int(s) for s in shape)
    info = SessionInfo(
        source=os.fspath(source) if source else "",
        shape=(t, h, w),
        schema=schema.to_dict(),
        steps=int(steps),
        **model,
    )
    info = SessionInfo.from_dict(json.loads(json.dumps(asdict(info))), folder / SESSION_FILE)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SessionError(f"{folder}: cannot create a session folder ({e})") from e
    with _OPEN_LOCK:
        lock = acquire(folder)
        try:
            if (folder / SESSION_FILE).exists():
                raise exists
            check_no_orphan_store(folder)
            names = [*proposal_labels(info.steps), CORRECTED]
            arrays = {name: create_array(folder, name, info.shape) for name in names}
            session = cls(folder, info, arrays, lock=lock)
            try:
                session.save()
            except BaseException:
                session.close()  # unregistered: a later open never returns it
                raise
        except OSError as e:
            lock.release()
            raise SessionError(f"{folder}: cannot create a session folder ({e})") from e
        except BaseException:
            lock.release()
            raise
    return session


def open_session(cls: Any, folder: Path, read_only: bool) -> Any:
    """``cls(...)`` for the session saved in ``folder`` (see ``Session.open``)."""
    file = folder / SESSION_FILE
    if not os.path.lexists(file):
        raise SessionError(f"{folder}: no session here ({SESSION_FILE} is missing)")
    if read_only:
        return _load(cls, folder, None)
    with _OPEN_LOCK:
        session = open_writer(folder)
        if session is not None:
            return session
        lock = acquire(folder)
        try:
            return _load(cls, folder, lock)
        except BaseException:
            lock.release()
            raise


def _load(cls: Any, folder: Path, lock: locking.FolderLock | None) -> Any:
    read_only = lock is None
    file = folder / SESSION_FILE
    try:
        data = read_json(file, "session file")
    except (FileProblemError, LimitError) as e:
        raise SessionError(str(e)) from None
    info = SessionInfo.from_dict(data, file)
    names = [*proposal_labels(info.steps), CORRECTED]
    arrays = open_arrays(folder, names, info.shape, read_only)
    check_writable(folder, names, read_only)
    info.predicted = sorted(set(info.predicted) | check_stored(folder, info))
    if not read_only:
        remove_temporaries(folder, names)
    return cls(folder, info, arrays, read_only=read_only, lock=lock)


def acquire(folder: Path) -> locking.FolderLock:
    """The folder's writer lock; SessionError when another process holds it or the folder
    cannot be written."""
    try:
        return locking.FolderLock.acquire(folder)
    except locking.FolderBusyError as e:
        raise SessionError(
            f"{folder}: session is open in another process ({locking.describe_holder(e.pid)}); "
            "open it read-only or close the other"
        ) from None
    except locking.FolderReadOnlyError as e:
        raise SessionError(read_only_message(folder, e.strerror)) from None
    except OSError as e:
        raise SessionError(f"{folder}: cannot lock the session folder ({e.strerror or e})") from e
