"""Where a run may write: the output checkpoint folder, checked before any training starts.

Rules (docs/training.md, "Checkpoints, kill and resume"):

- an output that exists and is not a napari-cliprl checkpoint is refused, whatever the flags;
- ``overwrite`` replaces only a checkpoint of ours that holds nothing but checkpoint files;
- ``resume`` needs the saved training state, and stops with one line when there is none;
- the output never equals or contains an input (data, base checkpoint, schema file, weights
  file), and no input contains the output.

Every refusal is a :class:`OutputFolderError` (a ValueError): one line naming the folder.
:func:`check_out_target` runs first (nothing is touched before it), then, for ``resume``,
``state.recover_checkpoint`` repairs a kill between two renames, then
:func:`check_out_contents`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LINEAGE_FILE = "lineage.json"  # written beside a widget fine-tune's checkpoint
CHECKPOINT_FORMAT = "napari-cliprl/checkpoint"  # model.checkpoint.FORMAT (no torch import here)
OWN_FILES = frozenset(
    {
        "config.json",
        "weights.safetensors",
        "train_state.json",
        "train_state.safetensors",
        LINEAGE_FILE,
    }
)


class OutputFolderError(ValueError):
    """An output path the run must not write to (one line naming it)."""


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def is_napari_checkpoint(folder: str | os.PathLike) -> bool:
    """True for a folder with our ``config.json`` (format marker) and ``weights.safetensors``."""
    from napari_cliprl.files import read_json

    folder = Path(folder)
    if not (folder / "weights.safetensors").is_file():
        return False
    try:
        config = read_json(folder / "config.json", "checkpoint config")
    except ValueError:
        return False
    return isinstance(config, dict) and config.get("format") == CHECKPOINT_FORMAT


def foreign_entries(folder: str | os.PathLike) -> list[str]:
    """Names in ``folder`` that a checkpoint never holds (sorted)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in OWN_FILES)


def check_apart(target: str | os.PathLike, what: str, inputs: Iterable[tuple[str, Any]]) -> None:
    """``target`` (an output) must not be, contain or lie inside any ``(option, path)`` input."""
    out = _real(target)
    for option, path in inputs:
        if path is None or not os.path.exists(path):
            continue
        source = _real(path)
        if out == source:
            raise OutputFolderError(f"{target}: {what} is the same as {option} {path}")
        if out in source.parents:
            raise OutputFolderError(
                f"{target}: {what} contains {option} {path}, which writing it would destroy"
            )
        if source in out.parents:
            raise OutputFolderError(
                f"{target}: {what} lies inside {option} {path}; inputs are never written to"
            )


def check_parent_writable(target: str | os.PathLike, what: str) -> None:
    """The nearest existing ancestor of ``target`` must be a folder we may write in."""
    parent = _real(target).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputFolderError(f"{target}: cannot create the {what} ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputFolderError(f"{target}: cannot create the {what} in {parent} (not writable)")


def inputs_of(config: Any) -> list[tuple[str, Any]]:
    """The (option, path) inputs of a FinetuneConfig that exist on disk."""
    pairs: list[tuple[str, Any]] = [("--data", d) for d in config.data]
    pairs += [
        ("--from", config.from_checkpoint),
        ("--schema", config.schema),
        ("--clip-weights", config.clip_weights),
    ]
    return [(option, path) for option, path in pairs if path and os.path.exists(path)]


def check_out_target(config: Any) -> None:
    """What ``config.out`` is and where it lies: refused before anything touches it."""
    out = Path(config.out)
    check_apart(out, "the output folder", inputs_of(config))
    if out.is_symlink():
        raise OutputFolderError(f"{out}: the output folder is a symbolic link; give the folder")
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{out}: exists and is not a folder; choose another --out")
    check_parent_writable(out, "output folder")


def check_out_contents(config: Any) -> None:
    """What ``config.out`` holds, against ``resume``/``overwrite`` (after recovery)."""
    out = Path(config.out)
    if not out.exists() or not any(out.iterdir()):
        if config.resume:
            raise OutputFolderError(
                f"{out}: nothing to resume (no saved training state); run without --resume "
                "to start a new run"
            )
        return
    _check_existing(out, config)


def damaged_config(folder: str | os.PathLike) -> str | None:
    """The one-line problem of a checkpoint-looking folder's ``config.json`` (weights present,
    config unreadable: e.g. truncated by a full disk), naming the file; else None."""
    from napari_cliprl.files import read_json

    folder = Path(folder)
    if not (folder / "weights.safetensors").is_file() or not (folder / "config.json").exists():
        return None
    try:
        read_json(folder / "config.json", "checkpoint config")
    except ValueError as e:
        return str(e)
    return None


def _check_existing(out: Path, config: Any) -> None:
    foreign = foreign_entries(out)
    damaged = damaged_config(out)
    if damaged is not None:
        raise OutputFolderError(
            f"{damaged}; {out} is never written to while its checkpoint config is damaged: "
            "choose another --out"
        )
    if not is_napari_checkpoint(out):
        held = f" (it holds {_names(foreign)})" if foreign else ""
        raise OutputFolderError(
            f"{out}: exists and is not a napari-cliprl checkpoint{held}, so it is never "
            "written to (--resume and --overwrite apply only to checkpoints): choose another "
            "--out"
        )
    if foreign:
        raise OutputFolderError(
            f"{out}: holds {_names(foreign)}, which is not part of a checkpoint and would be "
            "lost; move it away or choose another --out"
        )
    if config.resume:
        if not (out / "train_state.json").is_file():
            raise OutputFolderError(
                f"{out}: nothing to resume (a checkpoint without train_state.json); run "
                "without --resume, with --overwrite to replace it"
            )
        return
    if not config.overwrite:
        raise OutputFolderError(
            f"{out}: folder exists and is not empty; pass --resume to continue the run saved "
            "there, --overwrite to replace it, or choose another --out"
        )


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
