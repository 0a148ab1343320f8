"""One writer per folder: an advisory lock held while a session or an output folder is open for
writing.

The lock is ``<folder>/.cliprl.lock`` (it holds the writer's process id, for the message a second
writer gets). It is an OS lock (``flock``; ``msvcrt.locking`` on Windows): the system drops it
when the writer exits or is killed, so a crash never leaves a folder locked. The file itself
stays (removing it would race with a writer that has just opened it).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

LOCK_NAME = ".cliprl.lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class FolderBusyError(OSError):
    """Another process holds the folder's lock; ``pid`` is its process id (None if unknown)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(errno.EWOULDBLOCK, "locked by another process", str(path))
        self.pid = pid


class FolderReadOnlyError(OSError):
    """The folder cannot be written (read-only file system or no permission)."""


def open_lock_file(path: Path) -> int:
    """A read-write descriptor of the lock file ``path`` (created; symbolic links refused)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o666)


class FolderLock:
    """An exclusive lock on ``folder``, held until :meth:`release` (or the process ends)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: str | os.PathLike) -> FolderLock:
        """Lock ``folder`` (which must exist) without waiting.

        Raises FolderBusyError when another process holds it, FolderReadOnlyError when the
        folder cannot be written, OSError for anything else.
        """
        path = Path(folder) / LOCK_NAME
        try:
            fd = open_lock_file(path)
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise FolderReadOnlyError(e.errno, e.strerror, str(path)) from None
            if e.errno == errno.ELOOP:
                raise OSError(e.errno, "lock file is a symbolic link", str(path)) from None
            raise
        try:
            _lock(fd)
        except OSError as e:
            pid = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK):
                raise FolderBusyError(path, pid) from None
            raise
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the lock holds without the pid; a second writer is told "pid unknown"
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except (OSError, AttributeError):
        return None
    return int(text) if text.isdigit() else None


def describe_holder(pid: int | None) -> str:
    """``"pid 123"`` or ``"pid unknown"``, for messages."""
    return f"pid {pid}" if pid is not None else "pid unknown"
