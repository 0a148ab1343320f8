"""What ``cliprl predict``'s output folder must be before anything is written to it (part of
:mod:`output_folder`): ours or new, apart from the input, unlocked, and a manifest that agrees
with the source and with itself. Nothing here writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_cliprl.annotation import locking
from napari_cliprl.files import TMP_PREFIX, FileProblemError, read_json
from napari_cliprl.io._png import image_size
from napari_cliprl.io.errors import DataError
from napari_cliprl.io.export import validate_manifest
from napari_cliprl.limits import LimitError

SUBFOLDERS = ("labels", "left_frames", "steps")
# Temporary files of an atomic write: ours (files.TMP_PREFIX) and io's ".<name>.<8 chars>.tmp".
IO_TMP = re.compile(r"^\.(?P<name>.+\.(png|json))\.[A-Za-z0-9_]{8}\.tmp$")


class OutputFolderError(ValueError):
    """An output folder that must not be written; one line naming it."""


def check_output_folder(
    out: str | os.PathLike, *inputs: str | os.PathLike
) -> dict[str, Any] | None:
    """OutputFolderError unless ``out`` may receive predictions of ``inputs`` (the source as
    given and as opened): it overlaps none of them and is new, empty, or a folder this
    program wrote (see the module doc). Returns its manifest (None: new or empty)."""
    out = Path(out)
    for source in map(Path, inputs):
        if same_source(out, source):
            raise OutputFolderError(
                f"{out}: --out overlaps the input {source}; write the predictions to a folder "
                "outside it"
            )
    return read_own_manifest(out)


def read_own_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of our own folder ``out``; None for a new or empty folder."""
    if not out.exists():
        if out.is_symlink():
            raise OutputFolderError(f"{out}: --out is a broken symbolic link")
        return None
    if not out.is_dir():
        raise OutputFolderError(f"{out}: --out exists and is not a folder")
    for sub in SUBFOLDERS:
        path = out / sub
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise OutputFolderError(f"{path}: not a folder (a symbolic link or a file)")
    if not [p for p in out.iterdir() if not _ours_to_ignore(p.name)]:
        return None
    file = out / "manifest.json"
    if not os.path.lexists(file):
        raise OutputFolderError(
            f"{out}: --out holds files this program did not write (no manifest.json), e.g. "
            "ground truth; choose a new or empty folder"
        )
    try:
        return validate_manifest(read_json(file, "manifest"), file)
    except (FileProblemError, LimitError, DataError) as e:
        raise OutputFolderError(str(e)) from None


def _ours_to_ignore(name: str) -> bool:
    """Our lock file and temporaries: they do not make a folder someone else's."""
    return name == locking.LOCK_NAME or _is_temporary(name)


def _is_temporary(name: str) -> bool:
    return name.startswith(TMP_PREFIX) or IO_TMP.match(name) is not None


def listed_elsewhere(out: Path, frames: Iterable[Mapping[str, Any]], names: Sequence[str]) -> None:
    """OutputFolderError if the manifest lists a frame of the source under another index (a
    hand edit): its flag would follow the wrong frame."""
    index_of = {name: i for i, name in enumerate(names)}
    for f in frames:
        i = index_of.get(f["name"])
        if i is not None and i != f["index"]:
            raise OutputFolderError(
                f"{out / 'manifest.json'}: lists {f['name']!r} as frame {f['index']}, but it is "
                f"frame {i} of the source; correct or remove that entry"
            )


def check_reviewed_labels(
    out: Path,
    names: Sequence[str],
    reviewed: Iterable[int],
    frame_size: tuple[int, int] | None = None,
) -> None:
    """OutputFolderError if a frame the manifest marks reviewed (an anchor of propagation) has
    no label file (restore it or unmark the frame), or one whose size is not the frames'
    ``frame_size`` (H, W; read from the PNG header). Nothing is written."""
    for i in sorted(reviewed):
        path = out / "labels" / f"{names[i]}.png"
        if not path.is_file():
            raise OutputFolderError(
                f"{path}: frame {i} is marked reviewed in manifest.json but this label file is "
                "missing; restore it, or unmark the frame there"
            )
        if frame_size is None:
            continue
        try:
            h, w = image_size(path)
        except (DataError, FileProblemError, LimitError) as e:
            raise OutputFolderError(str(e)) from None
        if (h, w) != tuple(frame_size):
            raise OutputFolderError(
                f"{path}: label map is {w}x{h}, the source's frames are "
                f"{frame_size[1]}x{frame_size[0]} (frame {i} is marked reviewed in manifest.json)"
            )


def same_source(a: Path, b: Path) -> bool:
    """True for one path, or one inside the other (a sequence folder and its left_frames/)."""
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def acquire(out: Path) -> locking.FolderLock:
    try:
        return locking.FolderLock.acquire(out)
    except locking.FolderBusyError as e:
        raise OutputFolderError(
            f"{out}: another process ({locking.describe_holder(e.pid)}) is writing to this "
            "folder; wait for it or choose another --out"
        ) from None
    except OSError as e:
        raise OutputFolderError(f"{out}: cannot write to this folder ({e.strerror or e})") from e
