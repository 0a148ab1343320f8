"""What the annotator's workers run: loading a model, opening a session, predicting frames.

Plain generators and functions, no Qt: :class:`~._controller.AnnotatorController` runs them
with napari's ``create_worker`` so that the window never waits for a model, a disk or an
import. Order matters for the user's work: the model is loaded before a session is touched,
so a wrong checkpoint, schema or device changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cliprl.annotation.models import ModelSpec, checkpoint_hash
from napari_cliprl.annotation.repropose import repropose_job, session_flows
from napari_cliprl.annotation.run import FrameDone, predict_sequence
from napari_cliprl.annotation.session_info import SESSION_FILE
from napari_cliprl.errors import describe_error
from napari_cliprl.schemas import LabelSchema

from ._preload import preload

if TYPE_CHECKING:  # the session (zarr) loads with the first run, not with the dock
    from napari_cliprl.annotation.session import Session


@dataclass(frozen=True)
class SessionTarget:
    """Where a run's session lives and what it must fit."""

    folder: Path  # session folder
    source: str | None  # the video file or frame folder ("" / None for in-memory data)
    shape: tuple[int, int, int]  # T x H x W of the frames
    schema: LabelSchema  # the schema the Model section asks for


@dataclass(frozen=True)
class SessionReady:
    """The session a run writes into, with the new model recorded (what a run yields first)."""

    session: Session
    model: str  # what was loaded, for the user ("demo_checkpoint (tiny-test) on cpu")


@dataclass(frozen=True)
class SavedSession:
    """A session found on disk for an image (what the Restore line offers)."""

    folder: Path
    reviewed: int  # reviewed frames
    frames: int  # frames of the video


class SeedingStore:
    """A session as the run's label store that also starts ``corrected`` of each predicted
    frame as its last step, unless a person reviewed it (from the map in hand, no re-read)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def steps(self) -> int:
        return self.session.steps

    def needs_prediction(self, index: int) -> bool:
        return self.session.needs_prediction(index)

    def write_prediction(
        self, index: int, zero_shot: np.ndarray, steps: Sequence[np.ndarray], **kwargs: Any
    ) -> None:
        self.session.write_prediction(index, zero_shot, steps, **kwargs)
        if not self.session.is_reviewed(index):
            self.session.array("corrected")[int(index)] = np.asarray(steps[-1], np.uint8)

    def seed_labels(self, index: int) -> np.ndarray | None:
        return self.session.seed_labels(index)

    def is_reviewed(self, index: int) -> bool:
        return self.session.is_reviewed(index)

    @property
    def reviewed(self) -> list[int]:
        return self.session.reviewed

    def anchor_labels(self, index: int) -> np.ndarray:
        return self.session.anchor_labels(index)


def open_session(target: SessionTarget, spec: ModelSpec) -> Session:
    """The session at ``target.folder`` (created when there is none), checked against the
    frames and schema, with ``spec``'s model recorded (nothing of the old model is lost)."""
    from napari_cliprl.annotation.session import Session

    if (target.folder / SESSION_FILE).is_file():
        session = Session.open(target.folder)
    else:
        session = Session.create(
            target.folder,
            source=target.source,
            shape=target.shape,
            schema=target.schema,
            steps=spec.steps,
        )
    session.check_compatible(target.shape, target.schema)
    record_model(session, spec)
    return session


def record_model(session: Session, spec: ModelSpec) -> None:
    session.set_model(
        steps=spec.steps,
        checkpoint=spec.checkpoint,
        checkpoint_hash=checkpoint_hash(spec.checkpoint),
        model=None if spec.checkpoint else spec.arch,
    )


def run_job(
    cache: Any,
    spec: ModelSpec,
    frames: Any,
    indices: Sequence[int],
    target: SessionTarget,
    current: Session | None = None,
    *,
    key: str = "",
    propagate: bool = True,
) -> Generator[SessionReady | FrameDone, None, str | None]:
    """A Run for a worker: load the model of ``spec`` (``cache``: a PredictorCache), then
    open the session (``current`` when it is the target's), yield :class:`SessionReady`, then
    one :class:`FrameDone` per predicted frame; with ``propagate`` the reviewed frames are
    carried to the others by optical flow (flows cached in the session folder). Never
    raises: returns the error sentence (None on success); a failure before
    ``SessionReady`` has changed nothing."""
    try:
        preload()  # torch's libraries, without holding the GIL (see _preload)
        predictor = cache.get(spec)
        if current is not None and current.folder == target.folder:
            current.check_compatible(target.shape, target.schema)
            record_model(current, spec)
            session = current
        else:
            session = open_session(target, spec)
        import_for_layers()
        yield SessionReady(session, describe_model(spec, predictor))
        store = SeedingStore(session)
        flows = flows_of(session, frames) if propagate else None
        yield from predict_sequence(
            predictor, frames, indices, store, key=key, propagate=propagate, flows=flows
        )
    except Exception as e:  # noqa: BLE001 - reported to the user as one sentence
        return describe_error(e, spec.device)
    return None


def flows_of(session: Session, frames: Any) -> Any:
    """The session's on-disk flow cache when there is something to propagate, else None."""
    return session_flows(session, frames) if session.reviewed and len(frames) > 1 else None


def repropose_session_job(
    cache: Any, spec: ModelSpec, frames: Any, session: Session, index: int, key: str = ""
) -> Generator[FrameDone, None, str | None]:
    """Re-propose the neighbours of reviewed frame ``index`` of ``session`` for a worker
    (:func:`~napari_cliprl.annotation.repropose.repropose_job`; ``corrected`` of each
    re-proposed frame follows its new last step, as in a run). Never raises: returns the
    error sentence (None on success)."""
    try:
        preload()
        flows = flows_of(session, frames)
    except Exception as e:  # noqa: BLE001 - reported to the user as one sentence
        return describe_error(e, spec.device)
    store = SeedingStore(session)
    return (yield from repropose_job(cache, spec, frames, store, index, key=key, flows=flows))


def export_job(
    session: Session, out: str, frames: Any = None, overwrite: bool = False
) -> tuple[list[Path], str | None, bool]:
    """Export the reviewed frames: (written paths, error sentence, target existed)."""
    from napari_cliprl.annotation.export import try_export

    return try_export(session, out, frames, overwrite)


def warm_charts() -> None:
    """Import matplotlib (its Agg canvas: the dock's charts never use its Qt backend) and
    draw a small chart off-screen, fonts found and loaded, ahead of the first real one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1), dpi=90)
    axes = figure.add_subplot(111)
    axes.plot([0, 1], [0, 1], "o-")
    axes.set_xlabel("epoch", fontsize=7)
    axes.twinx().set_ylabel("validation mIoU", fontsize=7)
    FigureCanvasAgg(figure).draw()


def evaluate_job(session: Session, truth: Any) -> Any:
    """The evaluation table of ``session`` against ``truth`` (T x H x W ids), with the
    charts warmed up (see :func:`warm_charts`)."""
    from napari_cliprl.annotation.evaluate import evaluate_session

    warm_charts()
    return evaluate_session(session, truth)


def describe_model(spec: ModelSpec, predictor: Any) -> str:
    """``"Loaded demo_checkpoint (tiny-test) on cpu, 2 steps."``"""
    model = getattr(predictor, "model", None)
    config = getattr(model, "config", None)
    arch = getattr(config, "arch", None) or spec.arch
    name = f"{Path(spec.checkpoint).name} ({arch})" if spec.checkpoint else arch
    device = getattr(predictor, "device", None) or spec.device
    steps = f"{spec.steps} step{'' if spec.steps == 1 else 's'}"
    return f"Loaded {name} on {device}, {steps}."


def import_for_layers() -> None:
    """Import what napari needs to add the session's layers, here rather than on the main
    thread: pandas (napari builds a Labels layer's class-name table with it on first use)."""
    import pandas  # noqa: F401


def restore_job(folder: Path, shape: tuple[int, int, int] | None) -> Session:
    """Reopen the session saved in ``folder``, checked against frames of ``shape``."""
    from napari_cliprl.annotation.session import Session

    import_for_layers()
    session = Session.open(folder)
    if shape is not None:
        session.check_compatible(shape, session.schema)
    return session


def probe_session(folder: Path | None) -> SavedSession | None:
    """What a saved session holds (None when ``folder`` holds none or cannot be read)."""
    from napari_cliprl.annotation.session import Session

    if folder is None or not (folder / SESSION_FILE).is_file():
        return None
    try:
        session = Session.open(folder)
    except (OSError, ValueError):
        return None
    return SavedSession(folder, len(session.reviewed), session.shape[0])


def warm_up() -> list[str]:
    """Import the model code off the main thread (torch's native libraries first, loaded
    without holding the GIL); returns the architectures a model can be built from."""
    preload()
    from napari_cliprl.model.build import list_architectures

    return list(list_architectures())


def same_folder(a: str | os.PathLike | None, b: str | os.PathLike | None) -> bool:
    return a is not None and b is not None and Path(a) == Path(b)
