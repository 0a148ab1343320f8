"""Where sessions live and what ``session.json`` holds, validated.

Everything read from the file is checked before it is used: types, frame indices within
0..T-1, steps and the label stacks' shape within :mod:`napari_cliprl.limits`, uncertainty finite,
the schema a valid :class:`~napari_cliprl.schemas.LabelSchema`. A bad value raises
:class:`SessionError`, one line starting with the file's path and naming the field.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_cliprl.errors import first_line
from napari_cliprl.limits import LimitError, check_limit
from napari_cliprl.schemas import LabelSchema

SESSION_VERSION = 1
SESSION_FILE = "session.json"
SESSION_SUFFIX = ".cliprl-session"
CORRECTED = "corrected"  # the layer a person edits
PROPAGATED = "propagated"  # raw propagation of the reviewed frames (not in ``layer_names``)


class SessionError(ValueError):
    """A session folder that cannot be created, opened or used for the given data."""


def default_session_dir(source: str | os.PathLike) -> Path:
    """``<source>.cliprl-session`` beside a video file or frame folder."""
    return Path(os.fspath(source).rstrip("/\\") + SESSION_SUFFIX)


def fallback_session_dir(source: str | os.PathLike) -> Path:
    """A per-user session folder for ``source``, for when its own folder is read-only."""
    import hashlib

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha1(os.fspath(Path(source).resolve()).encode()).hexdigest()[:12]
    return base / "napari-cliprl" / "sessions" / f"{Path(source).name}-{digest}{SESSION_SUFFIX}"


def session_dir_for(source: str | os.PathLike) -> Path:
    """Where a new session of ``source`` goes: beside it when writable, else per user."""
    folder = default_session_dir(source)
    if folder.exists() or os.access(folder.parent, os.W_OK):
        return folder
    return fallback_session_dir(source)


def find_session(source: str | os.PathLike) -> Path | None:
    """The session folder of ``source`` when one exists on disk (beside it or per user)."""
    for folder in (default_session_dir(source), fallback_session_dir(source)):
        if (folder / SESSION_FILE).is_file():
            return folder
    return None


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class SessionInfo:
    """The contents of ``session.json``."""

    source: str  # video file or frame folder ("" for in-memory data)
    shape: tuple[int, int, int]  # T x H x W of every label stack
    schema: dict[str, Any]  # LabelSchema.to_dict() of the labels' classes
    steps: int  # refinement steps T: layers step 0 .. step T
    checkpoint: str | None = None  # checkpoint folder the proposals came from
    checkpoint_hash: str | None = None  # "sha256:..." of its weights
    model: str | None = None  # architecture name
    reviewed: list[int] = field(default_factory=list)  # frames a person checked or edited
    predicted: list[int] = field(default_factory=list)  # frames holding proposals
    uncertainty: dict[str, float] = field(default_factory=dict)  # frame -> suggest score
    version: int = SESSION_VERSION
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)

    @classmethod
    def from_dict(cls, data: Any, source: str | Path) -> SessionInfo:
        """A validated SessionInfo of the parsed ``session.json`` ``data`` (read from
        ``source``); SessionError naming the file and the bad field otherwise."""
        return _parse(data, str(source))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(data: Any, file: str) -> SessionInfo:
    def bad(name: str, why: str) -> SessionError:
        return SessionError(f"{file}: field {name!r} {why}")

    if not isinstance(data, dict):
        raise SessionError(f"{file}: not a session file (expected a JSON object)")
    if data.get("version") != SESSION_VERSION:
        raise SessionError(
            f"{file}: not a version-{SESSION_VERSION} session file "
            f"(version {data.get('version')!r})"
        )
    for name in ("source", "shape", "schema", "steps"):
        if name not in data:
            raise bad(name, "is missing")
    shape = data["shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(s) for s in shape)):
        raise bad("shape", f"must be [T, H, W] integers, got {shape!r}")
    if min(shape) < 1:
        raise bad("shape", f"must be positive, got {shape!r}")
    t, h, w = shape
    steps = data["steps"]
    if not _is_int(steps) or steps < 0:
        raise bad("steps", f"must be an integer >= 0, got {steps!r}")
    try:
        check_limit("MAX_FRAMES", t, file, "field 'shape': frames")
        check_limit("MAX_IMAGE_SIDE", max(h, w), file, "field 'shape': frame side")
        check_limit("MAX_IMAGE_PIXELS", h * w, file, "field 'shape': pixels per frame")
        check_limit("MAX_STEPS", steps, file, "field 'steps'")
    except LimitError as e:
        raise SessionError(str(e)) from None
    for name in ("source", "created", "updated"):
        if not isinstance(data.get(name, ""), str):
            raise bad(name, f"must be a string, got {data[name]!r}")
    for name in ("checkpoint", "checkpoint_hash", "model"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise bad(name, f"must be a string or null, got {data[name]!r}")
    try:
        LabelSchema.from_dict(data["schema"], f"{file}: field 'schema'")
    except (ValueError, TypeError, KeyError) as e:
        raise SessionError(first_line(e)) from None
    info = SessionInfo(
        source=data["source"],
        shape=(t, h, w),
        schema=data["schema"],
        steps=steps,
        checkpoint=data.get("checkpoint"),
        checkpoint_hash=data.get("checkpoint_hash"),
        model=data.get("model"),
        reviewed=_frames(data.get("reviewed", []), "reviewed", t, bad),
        predicted=_frames(data.get("predicted", []), "predicted", t, bad),
        uncertainty=_uncertainty(data.get("uncertainty", {}), t, bad),
    )
    info.created = data.get("created") or info.created
    info.updated = data.get("updated") or info.updated
    return info


def _frames(values: Any, name: str, t: int, bad: Any) -> list[int]:
    if not isinstance(values, list):
        raise bad(name, f"must be a list of frame indices, got {type(values).__name__}")
    for v in values:
        if not _is_int(v):
            raise bad(name, f"must hold frame indices (integers), got {v!r}")
        if not 0 <= v < t:
            raise bad(name, f"holds frame {v}, outside the session's frames 0..{t - 1}")
    return sorted(set(values))


def _uncertainty(values: Any, t: int, bad: Any) -> dict[str, float]:
    if not isinstance(values, dict):
        raise bad("uncertainty", f"must map frame -> score, got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        index = int(key) if isinstance(key, str) and key.isdigit() else -1
        if not 0 <= index < t:
            raise bad("uncertainty", f"has frame {key!r}, outside the session's frames 0..{t - 1}")
        if not (isinstance(value, int | float) and not isinstance(value, bool)):
            raise bad("uncertainty", f"frame {key}: score must be a number, got {value!r}")
        if not math.isfinite(value):
            raise bad("uncertainty", f"frame {key}: score must be finite, got {value!r}")
        out[str(index)] = float(value)
    return out
