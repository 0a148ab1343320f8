"""Closing the annotation loop: fine-tune on a session's reviewed frames, the equivalent
command line, lineage and time estimates.

The widget's fine-tune options are a view of a
:class:`~napari_cliprl.training.config.FinetuneConfig`: it starts from :func:`widget_preset`,
shows the fields in :data:`WIDGET_FIELDS` and edits them with
``training.config.replace_fields``; :func:`job_config` adds the session's data, the output
folder and the model, and :func:`finetune_command` is ``cliprl finetune`` with
``config_to_argv`` of that same config. The napari widget runs :func:`finetune_job` in a worker
thread; nothing here imports Qt. A fine-tune run of a session lives in the session folder::

    <session>/training/ft-NNN/      the reviewed frames, exported (the training data)
    <session>/checkpoints/ft-NNN/   the checkpoint, plus lineage.json (frames, base model)
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import queue
import re
import shlex
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_cliprl.annotation.export import export_session
from napari_cliprl.annotation.models import ModelSpec, checkpoint_hash, spec_architecture
from napari_cliprl.errors import describe_error
from napari_cliprl.files import read_json, write_bytes_atomic
from napari_cliprl.training.cli_options import config_to_argv
from napari_cliprl.training.config import (
    FinetuneConfig,
    RLConfig,
    SupervisedConfig,
)
from napari_cliprl.training.folders import LINEAGE_FILE

if TYPE_CHECKING:  # the session (zarr) loads with the first run, not with the dock
    from napari_cliprl.annotation.session import Session

CHECKPOINTS_DIR = "checkpoints"
TRAINING_DIR = "training"
RUN_PREFIX = "ft-"
# CPU seconds of one phase-A training pass over one frame at the architecture's CPU input
# size, one thread, on the 2-core development machine (ViT: frozen backbone forward ~1 s at
# 192 x 240, docs/benchmarks.md, plus the decoder's backward; tiny-test: measured 0.1 s).
CPU_SECONDS_PER_FRAME = {"tiny-test": 0.1, "ViT-B-32": 0.5, "ViT-B-16": 1.2}
TRAIN_PER_INFERENCE = 1.5  # a training pass costs about 1.5 inference passes (measured)
RL_FRAME_COST = 0.3  # an RL episode (cached features), relative to a training pass
SETUP_SECONDS = 5.0  # model building, data loading, T* evaluation


# what the dock shows of a FinetuneConfig ("data": extra folders besides the session's frames)
WIDGET_FIELDS = ("supervised.epochs", "rl.iterations", "device", "data")


def widget_preset() -> FinetuneConfig:
    """The dock's starting point: a budget of minutes, not hours, on a CPU.

    Phase A 5 epochs of 2 frames per step; phase B 10 warm-start + 20 A2C updates of 4
    episodes; 1 epoch per curriculum warm-up decoder; a metrics report every RL iteration
    (the live curve). Everything else is FinetuneConfig's default, as on the command line.
    """
    return FinetuneConfig(
        supervised=SupervisedConfig(epochs=5, batch_size=2),
        rl=RLConfig(iterations=20, imitation_iters=10, num_envs=4),
        warmup_epochs=1,
        log_every=1,
    )


@dataclass
class FinetuneOutcome:
    """How a fine-tune job ended (what the worker returns)."""

    checkpoint: Path | None = None  # the new checkpoint (None when stopped or failed)
    stopped: bool = False  # cancelled: the previous model stays in place
    error: str | None = None  # one sentence for the user
    tstar: int = 0  # agent steps chosen on held-out frames
    history: list[dict[str, Any]] = field(default_factory=list)


# -- folders, config, command line, lineage ---------------------------------------------
def next_run_dirs(session_folder: str | os.PathLike) -> tuple[Path, Path]:
    """(training data folder, checkpoint folder) of the next run ``ft-NNN`` of a session."""
    root = Path(session_folder)
    used = [0]
    for sub in (CHECKPOINTS_DIR, TRAINING_DIR):
        for path in (root / sub).glob(f"{RUN_PREFIX}*"):
            match = re.fullmatch(rf"{RUN_PREFIX}(\d+)", path.name)
            if match:
                used.append(int(match.group(1)))
    name = f"{RUN_PREFIX}{max(used) + 1:03d}"
    return root / TRAINING_DIR / name, root / CHECKPOINTS_DIR / name


def job_config(
    spec: ModelSpec,
    config: FinetuneConfig,
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
) -> FinetuneConfig:
    """The run of a widget fine-tune: ``config`` (the dock's options) on the exported frames
    in ``data_dir`` plus ``config.data``, from the model of ``spec``, into ``out``."""
    return replace(
        config,
        data=[os.fspath(data_dir), *config.data],
        out=os.fspath(out),
        from_checkpoint=spec.checkpoint,
        arch=spec.arch,
        clip_weights=None if spec.checkpoint else spec.clip_weights,
        schema=None,  # the exported data's schema (the session's)
    )


def finetune_command(config: FinetuneConfig) -> str:
    """The ``cliprl finetune ...`` command line that runs ``config`` in a separate process."""
    return shlex.join(["cliprl", "finetune", *config_to_argv(config)])


def write_lineage(
    checkpoint: str | os.PathLike,
    *,
    session: Session,
    frames: Sequence[int],
    base: ModelSpec,
    data: Sequence[str],
    tstar: int,
) -> Path:
    """Write ``lineage.json`` beside a checkpoint: where it came from; returns its path."""
    lineage = {
        "session": str(session.folder),
        "source": session.info.source,
        "frames": [int(i) for i in frames],
        "base_checkpoint": base.checkpoint,
        "base_checkpoint_hash": checkpoint_hash(base.checkpoint),
        "base_architecture": spec_architecture(base),
        "data": [str(d) for d in data],
        "tstar": int(tstar),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    data = (json.dumps(lineage, indent=1) + "\n").encode()
    return write_bytes_atomic(Path(checkpoint) / LINEAGE_FILE, data, overwrite=True)


def read_lineage(checkpoint: str | os.PathLike) -> dict[str, Any] | None:
    """The lineage of a checkpoint written by :func:`write_lineage`, or None."""
    try:
        lineage = read_json(Path(checkpoint) / LINEAGE_FILE, "lineage file")
    except (OSError, ValueError):  # absent, damaged, or over MAX_JSON_BYTES
        return None
    return lineage if isinstance(lineage, dict) else None


# -- time estimate ------------------------------------------------------------------------
def estimate_seconds(
    n_frames: int,
    config: FinetuneConfig,
    arch: str,
    inference_seconds: float | None = None,
) -> float:
    """Rough CPU duration of fine-tuning ``config`` on ``n_frames`` frames.

    Per-frame cost: ``TRAIN_PER_INFERENCE`` x a measured inference time per frame when given,
    else the architecture's figure in ``CPU_SECONDS_PER_FRAME``. Passes: phase A epochs plus
    the curriculum's warm-up decoders, and RL episodes at ``RL_FRAME_COST`` of a pass each.
    """
    if inference_seconds is not None and inference_seconds > 0:
        per_frame = TRAIN_PER_INFERENCE * inference_seconds
    else:
        per_frame = CPU_SECONDS_PER_FRAME.get(arch, CPU_SECONDS_PER_FRAME["ViT-B-16"])
    crossfit = config.curriculum.enabled and config.difficulty == "crossfit"
    passes = n_frames * (config.supervised.epochs + (config.warmup_epochs if crossfit else 0))
    rl = config.rl
    episodes = (rl.iterations + rl.imitation_iters) * rl.num_envs * RL_FRAME_COST
    return SETUP_SECONDS + per_frame * (passes + episodes)


def format_duration(seconds: float) -> str:
    """ "about 40 s", "about 3 min", "about 2.5 h"."""
    if seconds < 90:
        return f"about {max(1, math.ceil(seconds))} s"
    if seconds < 5400:
        return f"about {math.ceil(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


# -- the fine-tune job ----------------------------------------------------------------------
def iter_finetune(
    config: FinetuneConfig, stop: threading.Event
) -> Generator[tuple[str, Any], None, Any]:
    """Run ``finetune(config)`` in a thread, yielding its callbacks as they come.

    Yields ``("progress", (done, total, message))`` and ``("metrics", dict)``; returns the
    FinetuneResult (re-raises its exception). ``stop.set()`` (or closing the generator)
    stops training at the next batch.
    """
    from napari_cliprl.training.finetune import finetune

    events: queue.Queue = queue.Queue()
    done = object()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = finetune(
                config,
                progress=lambda d, t, m="": events.put(("progress", (int(d), int(t), str(m)))),
                should_stop=stop.is_set,
                on_metrics=lambda m: events.put(("metrics", dict(m))),
            )
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e
        finally:
            events.put(done)

    thread = threading.Thread(target=target, name="cliprl-finetune", daemon=True)
    thread.start()
    try:
        while (item := events.get()) is not done:
            yield item
    finally:
        if thread.is_alive():
            stop.set()
        thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def finetune_job(
    session: Session,
    frames: Any,
    spec: ModelSpec,
    options: FinetuneConfig,
    stop: threading.Event,
) -> Generator[tuple[str, Any], None, FinetuneOutcome]:
    """A widget fine-tune for a worker thread: export the reviewed frames of ``session``
    (with ``frames``, T x H x W x 3) to ``<session>/training/ft-NNN``, fine-tune the model of
    ``spec`` on them (plus ``options.data``) with the dock's ``options`` (a FinetuneConfig, see
    :func:`widget_preset`) into ``<session>/checkpoints/ft-NNN`` and write its lineage. Yields
    what :func:`iter_finetune` yields; never raises. A cancelled run leaves a checkpoint that
    loaders refuse (it can be resumed with ``cliprl finetune --resume``).
    """
    try:
        reviewed = session.reviewed
        data_dir, ckpt_dir = next_run_dirs(session.folder)
        yield ("progress", (0, 0, f"Exporting {len(reviewed)} reviewed frames…"))
        export_session(session, data_dir, frames, overwrite=True)
        config = job_config(spec, options, data_dir, ckpt_dir)
        data = config.data
        result = yield from iter_finetune(config, stop)
        if result.stopped or stop.is_set():
            return FinetuneOutcome(stopped=True, history=result.history)
        write_lineage(
            ckpt_dir, session=session, frames=reviewed, base=spec, data=data, tstar=result.tstar
        )
        return FinetuneOutcome(ckpt_dir, tstar=result.tstar, history=result.history)
    except Exception as e:  # noqa: BLE001 - reported to the user as one sentence
        return FinetuneOutcome(error=describe_error(e, options.device))


def loss_curves(history: Sequence[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Plottable series from finetune's metrics, each a list of (report number, value):
    ``loss`` (phase A), ``rl_loss`` (phase B) and ``val``, the validation metric at the
    step T* reported with it (the last step when no T* is given)."""
    curves: dict[str, list[tuple[int, float]]] = {"loss": [], "rl_loss": [], "val": []}
    for n, m in enumerate(history):
        loss = m.get("loss")
        if isinstance(loss, int | float) and math.isfinite(loss):
            curves["rl_loss" if m.get("phase") == "rl" else "loss"].append((n, float(loss)))
        val = m.get("val") or {}
        steps = [v for k, v in val.items() if k.startswith("step_")]
        tstar = m.get("tstar")
        pick = steps[int(tstar)] if isinstance(tstar, int) and 0 <= tstar < len(steps) else None
        if pick is None and steps:
            pick = steps[-1]
        if isinstance(pick, int | float) and math.isfinite(pick):
            curves["val"].append((n, float(pick)))
    return curves
