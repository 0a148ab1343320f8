"""Checkpoint folders: ``config.json`` + ``weights.safetensors``; never unpickled.

``weights.safetensors`` holds the decoder, the text bank (embeddings and residual), the agent and
CLIP's logit scale.  The frozen CLIP tower is referenced by ``clip_weights`` and its content hash,
not copied, except for trainable backbone parameters (``train_backbone_blocks``, anything with
``requires_grad``) and for self-contained architectures (``tiny-test``: the whole random backbone
is stored, so the checkpoint needs nothing else).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "napari-cliprl/checkpoint"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used as asked."""


def package_versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out: dict[str, str | None] = {}
    for name in ("napari-cliprl", "torch", "open_clip_torch", "safetensors"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def checkpoint_state_dict(model: nn.Module, self_contained: bool) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint stores (see the module docstring)."""
    trainable_backbone = {
        f"backbone.{n}" for n, p in model.backbone.named_parameters() if p.requires_grad
    }
    out = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("backbone.") and not self_contained and name not in trainable_backbone:
            continue
        out[name] = tensor.detach().to("cpu").contiguous().clone()
    return out


def save_checkpoint(
    model: nn.Module,
    folder: str | os.PathLike,
    extra: dict[str, Any] | None = None,
    *,
    self_contained: bool | None = None,
) -> Path:
    """Write ``model`` (a CLIPRL) to ``folder`` atomically; returns the folder.

    extra: JSON-serialisable metadata stored under ``"extra"`` (training history, metrics).
    A previous checkpoint in ``folder`` is replaced only once the new one is complete.
    """
    from safetensors.torch import save_file

    from napari_cliprl.model.build import get_architecture

    folder = Path(folder)
    cfg = model.config
    if self_contained is None:
        self_contained = get_architecture(cfg.arch).self_contained
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": cfg.arch,
        "input_size": list(cfg.input_size),
        "steps": cfg.steps,
        "clip_weights": cfg.clip_weights,
        "clip_weights_sha256": cfg.clip_weights_sha256,
        "self_contained": bool(self_contained),
        "model": cfg.to_dict(),
        "schema": model.schema.to_dict(),
        "versions": package_versions(),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "extra": extra or {},
    }
    text = json.dumps(config, indent=2)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        save_file(checkpoint_state_dict(model, self_contained), str(tmp / WEIGHTS_NAME))
        (tmp / CONFIG_NAME).write_text(text, encoding="utf-8")
        replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def usual_permissions(folder: Path) -> None:
    """Temporary folders are private (0700); a checkpoint gets the umask's usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def replace_folder(new: Path, target: Path) -> None:
    """Put the complete folder ``new`` in place of ``target`` with renames, never half-written.

    A kill between the two renames leaves ``.TARGET.old-PID`` beside it (recoverable).
    """
    usual_permissions(new)
    if not target.exists():
        os.replace(new, target)
        return
    if not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a checkpoint folder")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def read_checkpoint_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint folder (CheckpointError if not one)."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no such folder)")
    if not path.is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise CheckpointError(
            f"{folder}: not a checkpoint folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint config: {e}") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a napari-cliprl checkpoint config")
    if config.get("unfinished"):  # a training checkpoint of a run that has not ended
        raise CheckpointError(f"{folder}: {' '.join(str(config['unfinished']).split())}")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {config['format_version']} is newer than this "
            f"napari-cliprl supports ({FORMAT_VERSION}); upgrade napari-cliprl"
        )
    return config


def read_checkpoint_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of ``weights.safetensors`` on the CPU (safetensors: no unpickling)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS_NAME
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable weights: {e}") from e


def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load checkpoint tensors; only frozen backbone tensors may be absent."""
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("backbone.")]
    if result.unexpected_keys or missing:
        raise CheckpointError(
            f"{source}: weights do not fit the model (unexpected: {result.unexpected_keys[:5]}, "
            f"missing: {missing[:5]})"
        )


def check_matches(
    config: dict[str, Any], arch: str | None, schema_dict: dict | None, source: Path
) -> None:
    """Refuse a checkpoint whose architecture or schema differs from what was asked."""
    ckpt_arch = config.get("architecture")
    if arch is not None and arch != ckpt_arch:
        raise CheckpointError(
            f"{source}: checkpoint architecture {ckpt_arch!r} does not match the requested "
            f"architecture {arch!r}"
        )
    ckpt_schema = config.get("schema") or {}
    if schema_dict is not None and _schema_key(schema_dict) != _schema_key(ckpt_schema):
        raise CheckpointError(
            f"{source}: checkpoint schema {ckpt_schema.get('name')!r} "
            f"({len(ckpt_schema.get('classes', []))} classes) does not match the requested "
            f"schema {schema_dict.get('name')!r} ({len(schema_dict.get('classes', []))} classes)"
        )


def _schema_key(d: dict) -> tuple:
    """What must agree between schemas: name, class names and their order."""
    return (d.get("name"), tuple(c.get("name") for c in d.get("classes", [])))
