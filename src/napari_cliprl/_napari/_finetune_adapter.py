"""The one place where the dock meets the fine-tune API of the core.

The Fine-tune section shows a few fields of the fine-tune configuration (budget, device, extra
data); this module turns them into the core's options, the equivalent command line and the
worker's job. When the configuration's single source of truth changes shape, only this file
follows it.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_cliprl.annotation.finetune_job import (
    WIDGET_FIELDS,
    FinetuneOutcome,
    finetune_command,
    finetune_job,
    job_config,
    next_run_dirs,
    widget_preset,
)
from napari_cliprl.annotation.models import ModelSpec
from napari_cliprl.errors import describe_error
from napari_cliprl.training.config import FinetuneConfig, replace_fields

if TYPE_CHECKING:  # the session (zarr) loads with the first run, not with the dock
    from napari_cliprl.annotation.session import Session

Options = FinetuneConfig
Outcome = FinetuneOutcome


@dataclass(frozen=True)
class Budget:
    """What the section edits (a view of a few FinetuneConfig fields)."""

    epochs: int  # supervised.epochs: phase A epochs
    rl_iters: int  # rl.iterations: phase B updates after the warm start
    device: str  # device: auto / cpu / cuda / mps
    extra_data: tuple[str, ...] = ()  # data: more exported or EndoVis folders


def default_budget() -> Budget:
    preset = widget_preset()
    return Budget(preset.supervised.epochs, preset.rl.iterations, preset.device)


def options_of(budget: Budget) -> Options:
    """The dock's FinetuneConfig: ``widget_preset`` with ``budget`` (the warm start never
    exceeds the RL budget)."""
    preset = widget_preset()
    shown = (budget.epochs, budget.rl_iters, budget.device, list(budget.extra_data))
    return replace_fields(
        preset,
        {
            **dict(zip(WIDGET_FIELDS, shown, strict=True)),  # the fields the dock shows
            "rl.imitation_iters": min(budget.rl_iters, preset.rl.imitation_iters),
        },
    )


def work_units(options: Options) -> dict[str, Any]:
    """The units progress is reported in: supervised ``epochs``, ``rl_units`` (RL updates,
    warm start included), the RL ``episodes`` of each update and ``rl_steps``, the episode
    length of each update (the curriculum lengthens them as training goes)."""
    from napari_cliprl.training.curriculum import episode_length

    rl = options.rl
    total = rl.iterations + rl.imitation_iters
    enabled = options.curriculum.enabled
    return {
        "epochs": options.supervised.epochs,
        "rl_units": total,
        "episodes": rl.num_envs,
        "rl_steps": [
            episode_length(it / max(1, total - 1), rl.max_steps, enabled) for it in range(total)
        ],
    }


def next_data_folder(session: Session) -> Path:
    """Where the next fine-tune's training data goes (``<session>/training/ft-NNN``)."""
    return next_run_dirs(session.folder)[0]


def command_line(session: Session, spec: ModelSpec, options: Options) -> str:
    """The ``cliprl finetune ...`` line that runs this fine-tune in a separate process."""
    data_dir, ckpt_dir = next_run_dirs(session.folder)
    return finetune_command(job_config(spec, options, data_dir, ckpt_dir))


def count_labelled(folders: Sequence[str]) -> int:
    """Label files under extra training folders."""
    return sum(len(list(Path(f).rglob("labels/*.png"))) for f in folders)


def validation_frames(n_frames: int, options: Options) -> int:
    """How many of ``n_frames`` training frames are held out for validation and T*."""
    from napari_cliprl.training.dataset import split_frames

    items = [(0, i) for i in range(n_frames)]
    return len(split_frames(items, options.val_fraction)[1])


def job(
    session: Session, frames: Any, spec: ModelSpec, options: Options, stop: threading.Event
) -> Generator[tuple[str, Any], None, Outcome]:
    """The fine-tune for a worker: first ``("setup", {device, frames, val_frames})``, then
    the core job's ``("progress", (done, total, message))`` and ``("metrics", dict)``.
    Returns the outcome; never raises (the device is checked here, off the main thread)."""
    try:
        from napari_cliprl.devices import resolve_device

        from ._jobs import warm_charts
        from ._preload import preload

        warm_charts()  # the loss plot, off the main thread
        preload()
        device = resolve_device(options.device)
        n = len(session.reviewed) + count_labelled(options.data)
        val = validation_frames(n, options)
        yield ("setup", {"device": device.type, "frames": n, "val_frames": val})
    except Exception as e:  # noqa: BLE001 - reported to the user as one sentence
        return FinetuneOutcome(error=describe_error(e, options.device))
    return (yield from finetune_job(session, frames, spec, options, stop))
