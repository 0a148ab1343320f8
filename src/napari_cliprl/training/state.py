"""Training state and atomic training checkpoints, never pickled.

:class:`TrainState` is where a run stands (phase, counters, history, curriculum difficulty).
A training checkpoint is an ordinary model checkpoint folder (``config.json`` +
``weights.safetensors``, written by ``model.checkpoint.save_checkpoint``) with two more files:

- ``train_state.safetensors``: optimizer tensors (``<name>.state.<i>.<key>``) and the torch RNG
  states;
- ``train_state.json``: the :class:`TrainState`, optimizer hyper-parameters, numpy and python
  RNG states.

While a run is unfinished its ``config.json`` carries ``"unfinished"`` (a sentence saying how to
continue it): loaders refuse such a folder, so a stopped or killed fine-tune never passes for a
usable model. The three parts are written into a staging folder beside the target, then swapped
in with two renames; a run killed at any point leaves either the previous checkpoint or the new
one (a kill between the two renames leaves ``.NAME.old-*``, which :func:`recover_checkpoint`
puts back).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cliprl.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, replace_folder

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"
STATE_VERSION = 1  # layout of train_state.json's "state"
UNFINISHED_KEY = "unfinished"  # config.json key of a checkpoint that is not a usable model yet


# -- where a run stands --------------------------------------------------------------------
class Phase(Enum):
    """The phases of ``finetune`` in order."""

    SUPERVISED = "supervised"  # phase A epochs
    FUSION = "fusion"  # the video-fusion head (training.fusion_phase)
    RL = "rl"  # phase B iterations
    TSTAR = "tstar"  # choosing T* on the held-out frames
    DONE = "done"  # the checkpoint is final


@dataclass
class TrainState:
    """Where a run stands; saved in every training checkpoint and restored by ``--resume``."""

    phase: Phase = Phase.SUPERVISED
    epoch: int = 0  # phase A epochs done
    step: int = 0  # phase A optimiser steps done (the learning-rate schedule)
    rl_iter: int = 0  # phase B iterations done (warm start + A2C/PPO)
    history: list[dict[str, Any]] = field(default_factory=list)  # every report so far
    difficulty: list[float] | None = None  # curriculum difficulty per training frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "phase": self.phase.value,
            "epoch": self.epoch,
            "step": self.step,
            "rl_iter": self.rl_iter,
            "history": self.history,
            "difficulty": self.difficulty,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike) -> TrainState:
        """The state saved in ``source``; ValueError (one line) for one this version cannot
        continue."""
        try:
            if data.get("version", STATE_VERSION) != STATE_VERSION:
                raise ValueError(f"layout version {data.get('version')!r}")
            difficulty = data["difficulty"]
            return cls(
                phase=Phase(data["phase"]),
                epoch=_counter(data["epoch"]),
                step=_counter(data["step"]),
                rl_iter=_counter(data["rl_iter"]),
                history=[dict(h) for h in data["history"]],
                difficulty=None if difficulty is None else [float(d) for d in difficulty],
            )
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"{source}: training state this version of napari-cliprl cannot continue "
                f"({type(e).__name__}: {e}); start a new run in another folder"
            ) from None

    def unfinished_note(self, epochs: int, iterations: int) -> str | None:
        """The sentence loaders show for a checkpoint of this state (None once done)."""
        if self.phase is Phase.DONE:
            return None
        where = {
            Phase.SUPERVISED: f"after epoch {self.epoch} of {epochs}",
            Phase.FUSION: "before the video-fusion head was trained",
            Phase.RL: f"after RL iteration {self.rl_iter} of {iterations}",
            Phase.TSTAR: "before T* was chosen",
        }[self.phase]
        return (
            f"an unfinished fine-tune (stopped {where}), not a usable model yet; continue it "
            "with cliprl finetune --resume and the same options (--out this folder)"
        )


def _counter(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"bad counter {value!r}")
    return value


# -- optimizer and RNG state <-> (tensors, json) ----------------------------------------------
def optimizer_to_flat(
    optimizer: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-friendly rest."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, slots in sd["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    prefix: str,
) -> None:
    """Inverse of :func:`optimizer_to_flat`: load the state into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for name, value in tensors.items():
        if name.startswith(head):
            idx, key = name[len(head) :].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    for idx, slots in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(slots)
    groups = [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
        for g in meta["param_groups"]
    ]  # JSON made tuples (Adam's betas) into lists
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch (CPU, CUDA) RNG states as tensors; numpy and python ones as JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py = random.getstate()
    meta = {
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "python": [py[0], list(py[1]), py[2]],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    if "numpy" in meta:
        kind, keys, pos, has_gauss, gauss = meta["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "python" in meta:
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))


# -- writing and reading ------------------------------------------------------------------------
def save_training_checkpoint(
    model: torch.nn.Module,
    folder: str | os.PathLike,
    *,
    optimizers: dict[str, torch.optim.Optimizer],
    state: Mapping[str, Any],
    extra: dict[str, Any] | None = None,
    unfinished: str | None = None,
) -> Path:
    """Write model + training state to ``folder`` atomically (see the module docstring).

    optimizers: name -> optimizer (e.g. {"supervised": ..., "rl": ...}); state: JSON-ready
    (``TrainState.to_dict()``); extra: metadata for the model's config.json; unfinished: the
    sentence that makes loaders refuse the checkpoint until the run is done (None: usable).
    """
    from safetensors.torch import save_file

    from napari_cliprl.model.checkpoint import save_checkpoint

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
    try:
        save_checkpoint(model, staging / "ckpt", extra=extra)
        if unfinished:
            _mark_unfinished(staging / "ckpt" / CONFIG_NAME, unfinished)
        tensors, rng_meta = rng_state()
        meta: dict[str, Any] = {"state": dict(state), "rng": rng_meta, "optimizers": {}}
        for name, opt in optimizers.items():
            t, m = optimizer_to_flat(opt, name)
            tensors.update(t)
            meta["optimizers"][name] = m
        save_file(tensors, str(staging / "ckpt" / STATE_TENSORS))
        _write_text(staging / "ckpt" / STATE_JSON, json.dumps(meta, indent=1))
        replace_folder(staging / "ckpt", folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _mark_unfinished(config_path: Path, note: str) -> None:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config[UNFINISHED_KEY] = note
    _write_text(config_path, json.dumps(config, indent=2))


def saved_model_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a training checkpoint, finished or not (for ``--resume``)."""
    from napari_cliprl.files import read_json

    config = read_json(Path(folder) / CONFIG_NAME, "checkpoint config")
    if not isinstance(config, dict):
        raise ValueError(f"{Path(folder) / CONFIG_NAME}: not a napari-cliprl checkpoint config")
    return config


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def recover_checkpoint(folder: str | os.PathLike) -> Path | None:
    """Make ``folder`` a complete checkpoint again after a kill; None if there is none.

    Puts back the previous checkpoint when a kill came between the two renames of a swap, and
    removes leftover staging folders (only ever our own ``.NAME.staging-*``/``.NAME.old-*``; a
    ``folder`` holding anything but checkpoint files is left alone).
    """
    folder = Path(folder)
    parent = folder.parent
    if parent.is_dir():
        for stale in parent.glob(f".{folder.name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        olds = sorted(parent.glob(f".{folder.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if not (folder / CONFIG_NAME).is_file() and olds and _replaceable(folder):
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(olds[-1], folder)
            olds = olds[:-1]
        for stale in olds:
            shutil.rmtree(stale, ignore_errors=True)
    if (folder / STATE_JSON).is_file() and (folder / CONFIG_NAME).is_file():
        return folder
    return None


CHECKPOINT_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME, STATE_JSON, STATE_TENSORS})


def _replaceable(folder: Path) -> bool:
    """Absent, or a real folder holding nothing but checkpoint files."""
    if not folder.exists() and not folder.is_symlink():
        return True
    if folder.is_symlink() or not folder.is_dir():
        return False
    return all(p.name in CHECKPOINT_FILES for p in folder.iterdir())


def load_training_state(
    folder: str | os.PathLike, optimizers: dict[str, torch.optim.Optimizer]
) -> dict[str, Any]:
    """Restore optimizer and RNG states from a training checkpoint; returns its ``state``
    (the JSON dict; ``TrainState.from_dict`` types it).

    Optimizers absent from the checkpoint are left as they are.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from napari_cliprl.files import read_json

    folder = Path(folder)
    try:
        meta = read_json(folder / STATE_JSON, "training state")
        tensors = load_file(str(folder / STATE_TENSORS), device="cpu")
        for name, opt in optimizers.items():
            if name in meta.get("optimizers", {}):
                optimizer_from_flat(opt, tensors, meta["optimizers"][name], name)
        set_rng_state(tensors, meta.get("rng", {}))
        return meta["state"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"{folder}: unreadable training state ({reason}); cannot resume") from e
