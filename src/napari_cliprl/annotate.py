"""The annotation loop without a GUI: load a model, predict frames into a session, export.

The napari widget calls these functions from worker threads; they take plain callbacks and
never import Qt. :func:`describe_error` turns any failure into the one sentence a user sees.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_cliprl.devices import resolve_device as resolve_torch_device
from napari_cliprl.errors import describe_error
from napari_cliprl.lazy import frame_names_of
from napari_cliprl.session import CORRECTED, Session, step_name

DEMO_CHECKPOINT = Path(__file__).parent / "data" / "demo_checkpoint"
FALLBACK_ARCH = "tiny-test"
EXPORT_BATCH = 16  # frames written per io.export.write_labels call (bounds memory)


class AnnotationError(RuntimeError):
    """A model or run setting that cannot work; the message is one sentence for the user."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model to run and how (what the widget's Model section describes)."""

    checkpoint: str | None = None  # checkpoint folder; None: ``arch`` with random/CLIP weights
    arch: str = FALLBACK_ARCH  # architecture when there is no checkpoint
    clip_weights: str | None = None  # open_clip tag, hf-hub id or local file (no checkpoint)
    schema: str = "endovis2018"  # label schema name or JSON path
    device: str = "auto"  # auto, cuda, mps or cpu
    steps: int = 3  # T: refinement steps shown as layers step 0 .. step T


def demo_checkpoint() -> Path | None:
    """The shipped demo checkpoint folder, or None where it is not installed."""
    return DEMO_CHECKPOINT if (DEMO_CHECKPOINT / "config.json").is_file() else None


def default_spec(**overrides: Any) -> ModelSpec:
    """The demo checkpoint when shipped, else the tiny-test architecture with random weights."""
    ckpt = demo_checkpoint()
    spec = ModelSpec(checkpoint=str(ckpt) if ckpt else None)
    return replace(spec, **overrides)


def resolve_device(device: str) -> str:
    """``auto`` -> cuda, mps or cpu, whichever is available; others are checked."""
    return str(resolve_torch_device(device))


def checkpoint_hash(folder: str | os.PathLike | None) -> str | None:
    """``sha256:<hex>`` of a checkpoint's weights file (None without a checkpoint)."""
    if folder is None:
        return None
    folder = Path(folder)
    weights = folder / "weights.safetensors"
    file = weights if weights.is_file() else folder / "config.json"
    if not file.is_file():
        return None
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def load_predictor(spec: ModelSpec) -> Any:
    """Build the model of ``spec`` and wrap it in a :class:`~napari_cliprl.predictor.Predictor`."""
    from napari_cliprl.model.build import build_model
    from napari_cliprl.predictor import Predictor

    device = resolve_device(spec.device)
    if spec.checkpoint is not None and not Path(spec.checkpoint).is_dir():
        raise AnnotationError(f"Checkpoint folder {spec.checkpoint} does not exist.")
    if spec.checkpoint is not None:
        model = build_model(checkpoint=spec.checkpoint, schema=spec.schema, device=device)
    else:
        model = build_model(
            spec.arch, clip_weights=spec.clip_weights or None, schema=spec.schema, device=device
        )
    return Predictor(model, device=device)


class PredictorCache:
    """Keeps the last built predictor so repeated runs skip model building (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._predictor: Any = None

    def get(self, spec: ModelSpec) -> Any:
        key = (spec.checkpoint, spec.arch, spec.clip_weights, spec.schema, spec.device)
        with self._lock:
            if self._key != key:
                self._predictor = None
                self._predictor = load_predictor(spec)
                self._key = key
            return self._predictor

    def clear(self) -> None:
        with self._lock:
            self._key, self._predictor = None, None


@dataclass
class FrameDone:
    """One frame predicted and stored (what a run yields)."""

    index: int  # frame index in the sequence
    done: int  # frames finished so far in this run
    total: int  # frames in this run
    seconds: float = 0.0  # wall time of this frame's prediction
    prior: bool = False  # the previous frame's labels were passed as ``prior=``


def predict_into_session(
    predictor: Any,
    frames: Any,
    indices: Sequence[int],
    session: Session,
    *,
    key: str = "",
    should_stop: Callable[[], bool] | None = None,
    propagate: bool = False,
) -> Iterator[FrameDone]:
    """Predict ``frames[i]`` (H x W x 3 uint8) for each i in ``indices`` into ``session``.

    Writes zero-shot and step 0 .. step T proposals and the frame's uncertainty (for frame
    suggestions) and yields after each frame, so a caller can show results as they come and
    stop between frames; ``corrected`` is left to the caller (:meth:`Session.init_corrected`),
    which owns the edited layer. ``propagate``: pass the previous frame's labels (its
    "corrected" labels) as ``prior=`` where the predictor accepts one.
    """
    from napari_cliprl.suggest import frame_uncertainty

    use_prior = propagate and supports_prior(predictor)
    total = len(indices)
    for done, i in enumerate(indices, start=1):
        if should_stop is not None and should_stop():
            return
        start = time.perf_counter()
        frame = np.asarray(frames[int(i)])
        kwargs: dict[str, Any] = {"key": (key, int(i)) if key else None}
        prior = previous_labels(session, int(i)) if use_prior else None
        if prior is not None:
            kwargs["prior"] = prior
        pred = predictor.predict(frame, steps=session.steps, **kwargs)
        steps, entropy = pred.steps, list(getattr(pred, "entropy", []) or [])
        seconds = time.perf_counter() - start  # the model's time, not the session's writes
        score = frame_uncertainty(entropy, steps) if entropy else None
        session.write_prediction(int(i), pred.zero_shot, steps, uncertainty=score)
        yield FrameDone(int(i), done, total, seconds=seconds, prior=prior is not None)


def supports_prior(predictor: Any) -> bool:
    """Whether ``predictor.predict`` takes a ``prior=`` (previous labels) keyword."""
    try:
        return "prior" in inspect.signature(predictor.predict).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def previous_labels(session: Session, index: int) -> np.ndarray | None:
    """Frame ``index - 1``'s "corrected" labels (H x W uint8), or None before the first frame.

    An unreviewed frame's "corrected" labels are its last step (the widget copies them in on
    the main thread, possibly after this frame starts), so that step is read directly.
    """
    prev = index - 1
    if prev < 0:
        return None
    if session.is_reviewed(prev):
        return np.asarray(session.array(CORRECTED)[prev])
    if prev in session.predicted:
        return np.asarray(session.array(step_name(session.steps))[prev])
    return None


def run_job(
    cache: PredictorCache,
    spec: ModelSpec,
    frames: Any,
    indices: Sequence[int],
    session: Session,
    key: str = "",
    propagate: bool = False,
) -> Iterator[FrameDone]:
    """A whole run for a worker thread: build (or reuse) the model, predict frame by frame.

    Never raises: a failure ends the generator with :func:`describe_error`'s sentence as its
    return value (None on success).
    """
    try:
        predictor = cache.get(spec)
        yield from predict_into_session(
            predictor, frames, indices, session, key=key, propagate=propagate
        )
    except Exception as e:  # noqa: BLE001 - reported to the user as one sentence
        return describe_error(e, spec.device)  # type: ignore[return-value]
    return None


def try_export(
    session: Session, out_dir: str | os.PathLike, frames: Any = None, overwrite: bool = False
) -> tuple[list[Path], str | None, bool]:
    """:func:`export_session` for a worker: (written paths, error sentence, target existed)."""
    try:
        return export_session(session, out_dir, frames, overwrite=overwrite), None, False
    except FileExistsError as e:
        return [], str(e), True
    except Exception as e:  # noqa: BLE001
        return [], describe_error(e), False


def export_session(
    session: Session,
    out_dir: str | os.PathLike,
    frames: Any = None,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Path]:
    """Write the reviewed frames of ``corrected`` as an export folder; returns written paths.

    ``frames`` (T x H x W x 3, indexed lazily) are written to left_frames/ when given, so the
    export can be fine-tuned on without the video. FileExistsError names an existing target
    unless ``overwrite``; DataError if no frame is reviewed.
    """
    from napari_cliprl.io.errors import DataError
    from napari_cliprl.io.export import make_manifest

    reviewed = session.reviewed
    if not reviewed:
        raise DataError(f"{out_dir}: no reviewed frames to export; edit or accept frames first")
    names = export_names(frames, session.shape[0])
    manifest = make_manifest(
        session.info.source or "",
        session.schema,
        [(names[i], i, True) for i in reviewed],
        checkpoint=session.info.checkpoint_hash,
    )
    corrected = session.array(CORRECTED)
    return write_label_stack(
        out_dir,
        corrected,
        reviewed,
        names,
        session.schema,
        frames=frames,
        manifest=manifest,
        overwrite=overwrite,
        progress=progress,
    )


def write_label_stack(
    out_dir: str | os.PathLike,
    labels: Any,
    indices: Sequence[int],
    names: Sequence[str],
    schema: Any,
    *,
    frames: Any = None,
    manifest: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Path]:
    """Write ``labels[i]`` (and ``frames[i]``) for i in ``indices`` in the export layout.

    ``labels``: T x H x W ids and ``frames``: T x H x W x 3, both indexed one frame at a
    time; ``names[i]`` is the file stem of frame i. Every target is checked before anything
    is written (FileExistsError names the first existing one unless ``overwrite``); files are
    then written in batches so memory stays at a few frames.
    """
    from napari_cliprl.io.export import write_labels

    out = Path(out_dir)
    if not overwrite:
        check_targets_free(out, [names[i] for i in indices], frames is not None, manifest)
    written: list[Path] = []
    for start in range(0, len(indices), EXPORT_BATCH):
        batch = indices[start : start + EXPORT_BATCH]
        last = start + EXPORT_BATCH >= len(indices)
        label_maps = {names[i]: np.asarray(labels[i], dtype=np.uint8) for i in batch}
        images = {names[i]: np.asarray(frames[i]) for i in batch} if frames is not None else None
        written += write_labels(
            out,
            label_maps,
            schema,
            images=images,
            manifest=manifest if last else None,
            overwrite=True,
        )
        if progress is not None:
            progress(min(start + EXPORT_BATCH, len(indices)), len(indices), "exporting")
    return written


def export_names(frames: Any, n: int) -> list[str]:
    """File stems of ``n`` frames: the frames' own names when they have them, else frameNNN."""
    if frames is not None and len(frames) == n:
        return frame_names_of(frames)
    width = max(3, len(str(n - 1)))
    return [f"frame{i:0{width}d}" for i in range(n)]


def check_targets_free(
    out: Path, names: Sequence[str], with_frames: bool, manifest: Any = None
) -> None:
    """FileExistsError naming the first export file under ``out`` that exists already."""
    targets = [out / "labels" / f"{n}.png" for n in names]
    if with_frames:
        targets += [out / "left_frames" / f"{n}.png" for n in names]
    meta = ["labels.json", "schema.json"] + (["manifest.json"] if manifest is not None else [])
    for path in [*targets, *(out / m for m in meta)]:
        if path.exists():
            raise FileExistsError(f"{path} exists; export again with overwrite to replace it")
