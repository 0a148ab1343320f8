"""Closing the annotation loop: fine-tune on a session's reviewed frames, the equivalent
command line, lineage and time estimates.

The napari widget runs :func:`finetune_job` in a worker thread; nothing here imports Qt.
A fine-tune run of a session lives in the session folder::

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_cliprl.annotation.export import export_session
from napari_cliprl.annotation.models import ModelSpec, checkpoint_hash, spec_architecture
from napari_cliprl.annotation.session import Session
from napari_cliprl.errors import describe_error

CHECKPOINTS_DIR = "checkpoints"
TRAINING_DIR = "training"
LINEAGE_FILE = "lineage.json"
RUN_PREFIX = "ft-"
# CPU seconds of one phase-A training pass over one frame at the architecture's CPU input
# size, one thread, on the 2-core development machine (ViT: frozen backbone forward ~1 s at
# 192 x 240, docs/benchmarks.md, plus the decoder's backward; tiny-test: measured 0.1 s).
CPU_SECONDS_PER_FRAME = {"tiny-test": 0.1, "ViT-B-32": 0.5, "ViT-B-16": 1.2}
TRAIN_PER_INFERENCE = 1.5  # a training pass costs about 1.5 inference passes (measured)
RL_FRAME_COST = 0.3  # an RL episode (cached features), relative to a training pass
SETUP_SECONDS = 5.0  # model building, data loading, T* evaluation


@dataclass
class FinetuneOptions:
    """The fine-tune budget the widget offers (small defaults: minutes, not hours, on CPU)."""

    epochs: int = 5  # phase A (supervised) epochs
    rl_iters: int = 20  # phase B A2C updates after the warm start
    imitation_iters: int = 10  # phase B warm-start updates on the oracle action
    device: str = "auto"  # auto / cpu / cuda / mps (bf16 autocast on CUDA)
    batch_size: int = 2  # frames per optimiser step
    num_envs: int = 4  # RL episodes per update
    warmup_epochs: int = 1  # epochs of each cross-fitted curriculum warm-up decoder
    input_size: tuple[int, int] | None = None  # (h, w); None: the architecture's default
    extra_data: list[str] = field(default_factory=list)  # more exported/labelled folders


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


def finetune_config(
    spec: ModelSpec, data: Sequence[str], out: str | os.PathLike, options: FinetuneOptions
) -> Any:
    """The :class:`~napari_cliprl.training.finetune.FinetuneConfig` of a widget fine-tune."""
    from napari_cliprl.training.curriculum import CurriculumConfig
    from napari_cliprl.training.finetune import FinetuneConfig
    from napari_cliprl.training.rl import RLConfig
    from napari_cliprl.training.supervised import SupervisedConfig

    if min(options.epochs, options.rl_iters, options.imitation_iters) < 0:
        raise ValueError("epochs and RL iterations must be >= 0")
    return FinetuneConfig(
        data=[str(d) for d in data],
        out=str(out),
        from_checkpoint=spec.checkpoint,
        arch=spec.arch,
        clip_weights=None if spec.checkpoint else spec.clip_weights,
        schema=None,  # the exported data's schema (the session's)
        input_size=options.input_size,
        device=options.device,
        supervised=SupervisedConfig(epochs=options.epochs, batch_size=options.batch_size),
        rl=RLConfig(
            iterations=options.rl_iters,
            imitation_iters=options.imitation_iters,
            num_envs=options.num_envs,
        ),
        curriculum=CurriculumConfig(),
        warmup_epochs=options.warmup_epochs,
        log_every=1,
    )


def finetune_command(config: Any) -> str:
    """The ``cliprl finetune ...`` command line that runs ``config`` in a separate process."""
    args = ["cliprl", "finetune"]
    for folder in config.data:
        args += ["--data", str(folder)]
    args += ["--out", str(config.out)]
    if config.from_checkpoint:
        args += ["--from", str(config.from_checkpoint)]
    else:
        args += ["--arch", config.arch]
        if config.clip_weights:
            args += ["--clip-weights", str(config.clip_weights)]
    if config.schema:
        args += ["--schema", str(config.schema)]
    if config.input_size:
        args += ["--input-size", *(str(s) for s in config.input_size)]
    args += ["--epochs", str(config.supervised.epochs), "--rl-iters", str(config.rl.iterations)]
    args += ["--imitation-iters", str(config.rl.imitation_iters)]
    args += ["--batch-size", str(config.supervised.batch_size), "--device", config.device]
    return shlex.join(args)


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
    path = Path(checkpoint) / LINEAGE_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(lineage, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_lineage(checkpoint: str | os.PathLike) -> dict[str, Any] | None:
    """The lineage of a checkpoint written by :func:`write_lineage`, or None."""
    try:
        return json.loads((Path(checkpoint) / LINEAGE_FILE).read_text())
    except (OSError, ValueError):
        return None


# -- time estimate ------------------------------------------------------------------------
def estimate_seconds(
    n_frames: int,
    options: FinetuneOptions,
    arch: str,
    inference_seconds: float | None = None,
) -> float:
    """Rough CPU duration of a fine-tune on ``n_frames`` frames.

    Per-frame cost: ``TRAIN_PER_INFERENCE`` x a measured inference time per frame when given,
    else the architecture's figure in ``CPU_SECONDS_PER_FRAME``. Passes: phase A epochs plus
    the curriculum's warm-up decoders, and RL episodes at ``RL_FRAME_COST`` of a pass each.
    """
    if inference_seconds is not None and inference_seconds > 0:
        per_frame = TRAIN_PER_INFERENCE * inference_seconds
    else:
        per_frame = CPU_SECONDS_PER_FRAME.get(arch, CPU_SECONDS_PER_FRAME["ViT-B-16"])
    passes = n_frames * (options.epochs + options.warmup_epochs)
    episodes = (options.rl_iters + options.imitation_iters) * options.num_envs * RL_FRAME_COST
    return SETUP_SECONDS + per_frame * (passes + episodes)


def format_duration(seconds: float) -> str:
    """ "about 40 s", "about 3 min", "about 2.5 h"."""
    if seconds < 90:
        return f"about {max(1, math.ceil(seconds))} s"
    if seconds < 5400:
        return f"about {math.ceil(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


# -- the fine-tune job ----------------------------------------------------------------------
def iter_finetune(config: Any, stop: threading.Event) -> Generator[tuple[str, Any], None, Any]:
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
    options: FinetuneOptions,
    stop: threading.Event,
) -> Generator[tuple[str, Any], None, FinetuneOutcome]:
    """A widget fine-tune for a worker thread: export the reviewed frames of ``session``
    (with ``frames``, T x H x W x 3) to ``<session>/training/ft-NNN``, fine-tune the model of
    ``spec`` on them (plus ``options.extra_data``) into ``<session>/checkpoints/ft-NNN`` and
    write its lineage. Yields what :func:`iter_finetune` yields; never raises.
    """
    try:
        reviewed = session.reviewed
        data_dir, ckpt_dir = next_run_dirs(session.folder)
        yield ("progress", (0, 0, f"Exporting {len(reviewed)} reviewed frames…"))
        export_session(session, data_dir, frames, overwrite=True)
        data = [str(data_dir), *options.extra_data]
        config = finetune_config(spec, data, ckpt_dir, options)
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
