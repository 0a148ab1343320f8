"""Atomic training checkpoints: the model checkpoint plus a training-state file, never pickled.

A training checkpoint is an ordinary model checkpoint folder (``config.json`` +
``weights.safetensors``, written by ``model.checkpoint.save_checkpoint``, loadable by
``build_model`` and ``cliprl predict``) with two more files:

- ``train_state.safetensors``: optimizer tensors (``<name>.state.<i>.<key>``) and the torch RNG
  states;
- ``train_state.json``: epoch / RL iteration counters, optimizer hyper-parameters, the history,
  numpy and python RNG states, and the run's configuration.

The three parts are written into a staging folder beside the target, then swapped in with two
renames; a run killed at any point leaves either the previous checkpoint or the new one (a kill
between the two renames leaves ``.NAME.old-*``, which :func:`recover_checkpoint` puts back).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cliprl.model.checkpoint import replace_folder

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


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
    state: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write model + training state to ``folder`` atomically (see the module docstring).

    optimizers: name -> optimizer (e.g. {"supervised": ..., "rl": ...}); state: counters and
    anything else JSON-serialisable; extra: metadata for the model's config.json.
    """
    from safetensors.torch import save_file

    from napari_cliprl.model.checkpoint import save_checkpoint

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
    try:
        save_checkpoint(model, staging / "ckpt", extra=extra)
        tensors, rng_meta = rng_state()
        meta: dict[str, Any] = {"state": state, "rng": rng_meta, "optimizers": {}}
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


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def recover_checkpoint(folder: str | os.PathLike) -> Path | None:
    """Make ``folder`` a complete checkpoint again after a kill; None if there is none.

    Puts back the previous checkpoint when a kill came between the two renames of a swap, and
    removes leftover staging folders.
    """
    folder = Path(folder)
    parent = folder.parent
    if parent.is_dir():
        for stale in parent.glob(f".{folder.name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        olds = sorted(parent.glob(f".{folder.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if not (folder / "config.json").is_file() and olds:
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(olds[-1], folder)
            olds = olds[:-1]
        for stale in olds:
            shutil.rmtree(stale, ignore_errors=True)
    if (folder / STATE_JSON).is_file() and (folder / "config.json").is_file():
        return folder
    return None


def load_training_state(
    folder: str | os.PathLike, optimizers: dict[str, torch.optim.Optimizer]
) -> dict[str, Any]:
    """Restore optimizer and RNG states from a training checkpoint; returns its ``state``.

    Optimizers absent from the checkpoint are left as they are.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        meta = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / STATE_TENSORS), device="cpu")
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder}: unreadable training state ({e}); cannot resume") from e
    for name, opt in optimizers.items():
        if name in meta.get("optimizers", {}):
            optimizer_from_flat(opt, tensors, meta["optimizers"][name], name)
    set_rng_state(tensors, meta.get("rng", {}))
    return meta["state"]
