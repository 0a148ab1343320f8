"""An annotation session on disk: label stacks per layer, reviewed flags, and restore.

A session folder (default ``<video>.cliprl-session/`` beside the video) holds::

    session.json     source, shape, schema, model, steps, reviewed and predicted frames,
                     the model's uncertainty per predicted frame (frame suggestions)
    labels.zarr/     one T x H x W uint8 array per layer, chunk = one frame:
                     zero_shot, step_0 ... step_T (model proposals), corrected (edited),
                     propagated (reviewed labels carried by optical flow; 255 = none yet)
    flow.zarr/       optical flows of the video (``flow.FlowCache(frames, folder)``)

Label stacks never live whole in memory: viewers index the zarr arrays frame by frame, and
edits painted into ``corrected`` are on disk as soon as they are made, so a crashed or closed
session loses nothing. Thread-safe: one lock guards the flags and session.json.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from napari_cliprl.schemas import LabelSchema
from napari_cliprl.steps import ZERO_SHOT_LABEL, key_of, proposal_labels, step_label

SESSION_SUFFIX = ".cliprl-session"
SESSION_FILE = "session.json"
STORE_NAME = "labels.zarr"
SESSION_VERSION = 1
ZERO_SHOT = ZERO_SHOT_LABEL
CORRECTED = "corrected"
PROPAGATED = "propagated"  # raw propagation of the reviewed frames (not in ``layer_names``)

Progress = Callable[[int, int, str], None]


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


def _now() -> str:
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
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)

    @classmethod
    def from_dict(cls, data: Any, source: Path) -> SessionInfo:
        if not isinstance(data, dict) or data.get("version") != SESSION_VERSION:
            raise SessionError(f"{source}: not a version-{SESSION_VERSION} session file")
        try:
            info = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
            info.shape = tuple(int(s) for s in info.shape)  # type: ignore[assignment]
            info.reviewed = sorted(int(i) for i in info.reviewed)
            info.predicted = sorted(int(i) for i in info.predicted)
            info.uncertainty = {str(int(k)): float(v) for k, v in dict(info.uncertainty).items()}
            info.steps = int(info.steps)
        except (TypeError, ValueError) as e:
            raise SessionError(f"{source}: malformed session file ({e})") from e
        if len(info.shape) != 3:
            raise SessionError(f"{source}: field 'shape' must be [T, H, W]")
        return info


class Session:
    """Label stacks and review state of one annotated sequence (see the module doc)."""

    def __init__(self, folder: Path, info: SessionInfo, group: zarr.Group) -> None:
        self.folder = folder
        self.info = info
        self.schema = LabelSchema.from_dict(info.schema, str(folder / SESSION_FILE))
        self._group = group
        self._lock = threading.RLock()
        self._reviewed = set(info.reviewed)
        self._predicted = set(info.predicted)
        self._uncertainty = {int(k): v for k, v in info.uncertainty.items()}

    # -- creating and opening ------------------------------------------------------------
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
        """A new session in ``folder``; SessionError if one exists there already.

        ``shape``: T x H x W of the frames; ``model``: checkpoint, checkpoint_hash, model.
        """
        folder = Path(folder)
        if (folder / SESSION_FILE).exists():
            raise SessionError(f"{folder}: a session exists there already; open it instead")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            group = zarr.open_group(folder / STORE_NAME, mode="a")
        except OSError as e:
            raise SessionError(f"{folder}: cannot create a session folder ({e})") from e
        t, h, w = (int(s) for s in shape)
        info = SessionInfo(
            source=os.fspath(source) if source else "",
            shape=(t, h, w),
            schema=schema.to_dict(),
            steps=int(steps),
            **model,
        )
        session = cls(folder, info, group)
        for name in [*proposal_labels(steps), CORRECTED]:
            session._create_array(name)
        session.save()
        return session

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Session:
        """Reopen the session saved in ``folder`` (its edits and review flags included)."""
        folder = Path(folder)
        file = folder / SESSION_FILE
        try:
            data = json.loads(file.read_text())
        except FileNotFoundError as e:
            raise SessionError(f"{folder}: no session here ({SESSION_FILE} is missing)") from e
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SessionError(f"{file}: unreadable session file ({e})") from e
        info = SessionInfo.from_dict(data, file)
        try:
            group = zarr.open_group(folder / STORE_NAME, mode="r+")
        except (OSError, ValueError, KeyError) as e:
            raise SessionError(f"{folder / STORE_NAME}: label store missing or broken") from e
        session = cls(folder, info, group)
        for name in [*proposal_labels(info.steps), CORRECTED]:
            if key_of(name) not in group:
                session._create_array(name)
        return session

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

    def _create_array(self, name: str, fill_value: int = 0) -> zarr.Array:
        t, h, w = self.info.shape
        return self._group.create_array(
            key_of(name),
            shape=(t, h, w),
            chunks=(1, h, w),
            dtype="uint8",
            fill_value=fill_value,
            overwrite=True,
        )

    # -- views ---------------------------------------------------------------------------
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

    def array(self, name: str) -> zarr.Array:
        """The T x H x W uint8 zarr array of layer ``name`` (chunk = one frame); also
        ``"propagated"`` (made on first use, 255 where nothing was propagated yet)."""
        if name == PROPAGATED and PROPAGATED not in self._group:
            self._create_array(name, fill_value=255)
        key = key_of(name)
        if name not in [*self.layer_names, PROPAGATED] or key not in self._group:
            raise KeyError(f"session has no layer {name!r}; layers: {self.layer_names}")
        return self._group[key]  # type: ignore[return-value]

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
        ``frame`` is not kept; ``propagated``: the labels carried from reviewed frames.
        """
        if len(steps) != self.steps + 1:
            raise SessionError(
                f"{self.folder}: got {len(steps)} step maps, the session has {self.steps + 1}"
            )
        for name, labels in zip(proposal_labels(self.steps), [zero_shot, *steps]):
            self.array(name)[int(index)] = self._checked(labels, name)
        if propagated is not None:
            self.array(PROPAGATED)[int(index)] = self._checked(propagated, PROPAGATED)
        with self._lock:
            self._predicted.add(int(index))
            if uncertainty is not None and np.isfinite(uncertainty):
                self._uncertainty[int(index)] = float(uncertainty)
            else:
                self._uncertainty.pop(int(index), None)
        self.save()

    def init_corrected(self, index: int) -> bool:
        """Copy the last step of frame ``index`` into ``corrected`` unless it was reviewed."""
        if self.is_reviewed(index):
            return False
        last = self.array(step_label(self.steps))[int(index)]
        self.array(CORRECTED)[int(index)] = last
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
        """Switch to a model with ``steps`` refinement steps; stale proposals are cleared.

        ``model``: checkpoint, checkpoint_hash, model (architecture). ``corrected`` and the
        reviewed flags are kept. Returns True when the proposal arrays were replaced.
        """
        with self._lock:
            changed = any(getattr(self.info, k) != v for k, v in model.items())
            changed |= steps != self.info.steps
            if not changed:
                return False
            for name in proposal_labels(self.info.steps):
                if key_of(name) in self._group:
                    del self._group[key_of(name)]
            for key, value in model.items():
                setattr(self.info, key, value)
            self.info.steps = int(steps)
            for name in proposal_labels(self.info.steps):
                self._create_array(name)
            self._predicted.clear()
            self._uncertainty.clear()
        self.save()
        return True

    def save(self) -> None:
        """Write session.json atomically."""
        with self._lock:
            self.info.reviewed = sorted(self._reviewed)
            self.info.predicted = sorted(self._predicted)
            self.info.uncertainty = {str(i): v for i, v in sorted(self._uncertainty.items())}
            self.info.updated = _now()
            data = asdict(self.info)
            file = self.folder / SESSION_FILE
            tmp = file.with_name(f".{file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(data, indent=1) + "\n")
            os.replace(tmp, file)

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
