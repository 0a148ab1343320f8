"""Checkpoint folders: ``config.json`` + ``weights.safetensors``; never unpickled.

``weights.safetensors`` holds the decoder, the text bank (embeddings and residual), the agent and
CLIP's logit scale.  The frozen CLIP tower is referenced by ``clip_weights`` and its content hash,
not copied, except for trainable backbone parameters (``train_backbone_blocks``, anything with
``requires_grad``) and for self-contained architectures (``tiny-test``: the whole random backbone
is stored, so the checkpoint needs nothing else).

Reading is defensive: ``config.json`` is read bounded (``files.read_json``: no FIFOs, devices or
symlink loops), every section is checked before anything is built, and every problem is a
:class:`CheckpointError`, one line starting with the offending file.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from napari_cliprl.config import ModelConfig
from napari_cliprl.files import FileProblemError, check_regular_file, read_json
from napari_cliprl.model.registry import check_patch_multiple, get_architecture
from napari_cliprl.schemas import LabelSchema

FORMAT = "napari-cliprl/checkpoint"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used as asked (one line starting with the file)."""


@dataclass(frozen=True)
class CheckpointConfig:
    """A checked ``config.json``: ``raw`` as read, ``model`` and ``schema`` parsed from it."""

    path: Path  # the config.json
    raw: dict[str, Any]
    model: ModelConfig
    schema: LabelSchema


def package_versions() -> dict[str, str | None]:
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
    """The parsed, checked ``config.json`` of a checkpoint folder (CheckpointError if not one)."""
    return load_checkpoint_config(folder).raw


def load_checkpoint_config(folder: str | os.PathLike) -> CheckpointConfig:
    """``config.json`` read and checked section by section (see :class:`CheckpointConfig`)."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no such folder)")
    has_config = path.exists() or path.is_symlink()  # a symlink loop is refused when read
    if not has_config or not (folder / WEIGHTS_NAME).exists():
        raise CheckpointError(
            f"{folder}: not a checkpoint folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        raw = read_json(path, "checkpoint config")
    except ValueError as e:  # FileProblemError, LimitError: one line starting with the path
        raise CheckpointError(str(e)) from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a napari-cliprl checkpoint config")
    if raw.get("unfinished"):  # a training checkpoint of a run that has not ended
        raise CheckpointError(f"{folder}: {' '.join(str(raw['unfinished']).split())}")
    version = raw.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: format_version must be a whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version} is newer than this napari-cliprl supports "
            f"({FORMAT_VERSION}); upgrade napari-cliprl"
        )
    model = _model_section(raw, path)
    schema = _schema_section(raw, path)
    return CheckpointConfig(path=path, raw=raw, model=model, schema=schema)


def _section(raw: dict[str, Any], key: str, what: str, path: Path) -> dict[str, Any]:
    if key not in raw:
        raise CheckpointError(f"{path}: no {key!r} section ({what}); not a complete checkpoint")
    if not isinstance(raw[key], dict):
        kind = type(raw[key]).__name__
        raise CheckpointError(f"{path}: the {key!r} section must be a JSON object, not {kind}")
    return raw[key]


def _model_section(raw: dict[str, Any], path: Path) -> ModelConfig:
    """ModelConfig of the ``model`` section, checked against the registry and the top level."""
    section = _section(raw, "model", "the model's configuration", path)
    try:
        model = ModelConfig.from_dict(section)
        spec = get_architecture(model.arch)
        check_patch_multiple(spec, model.input_size)
    except ValueError as e:
        raise CheckpointError(f"{path}: model section: {e}") from e
    top = {"architecture": model.arch, "input_size": list(model.input_size), "steps": model.steps}
    for key, expected in top.items():
        value = raw.get(key, expected)
        if value != expected:
            raise CheckpointError(
                f"{path}: {key} {value!r} disagrees with the model section's {expected!r}; "
                "the file was edited by hand or damaged"
            )
    return model


def _schema_section(raw: dict[str, Any], path: Path) -> LabelSchema:
    section = _section(raw, "schema", "the label schema", path)
    try:
        return LabelSchema.from_dict(section, f"{path} (schema section)")
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        message = str(e) if str(e).startswith(str(path)) else f"{path}: schema section: {e}"
        raise CheckpointError(message) from e


def read_checkpoint_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of ``weights.safetensors`` on the CPU (safetensors: no unpickling)."""
    path = Path(folder) / WEIGHTS_NAME
    try:
        check_regular_file(path)
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, FileProblemError) as e:
        text = str(e) if str(e).startswith(str(path)) else f"{path}: unreadable weights: {e}"
        raise CheckpointError(" ".join(text.split())) from e


def check_weights_classes(state: dict[str, torch.Tensor], num_classes: int, path: Path) -> None:
    """Refuse weights trained for another number of classes than the schema's K."""
    trained = None
    if "decoder.bias" in state:
        trained = int(state["decoder.bias"].numel())
    elif "text_bank.name_class" in state and state["text_bank.name_class"].numel():
        trained = int(state["text_bank.name_class"].max()) + 1
    if trained is not None and trained != num_classes:
        raise CheckpointError(
            f"{path}: the schema has {num_classes} classes but the weights were trained for "
            f"{trained}; use the schema the checkpoint was trained with"
        )


def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load checkpoint tensors; only frozen backbone tensors may be absent.

    A tensor of the wrong shape, an unknown one or a missing one raises CheckpointError naming
    the first such key (and the shapes), in one line.
    """
    own = model.state_dict()
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    unexpected = [k for k in state if k not in own]
    missing = [k for k in own if k not in state and not k.startswith("backbone.")]
    if wrong:
        k = wrong[0]
        detail = (
            f"{k} is {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model "
            f"built from {CONFIG_NAME}"
        )
    elif unexpected:
        k, detail = unexpected[0], f"{unexpected[0]} is in the file but not in the model"
    elif missing:
        k, detail = missing[0], f"{missing[0]} is missing from the file"
    else:
        model.load_state_dict(state, strict=False)
        return
    more = len(wrong) + len(unexpected) + len(missing) - 1
    tail = f" (and {more} more)" if more else ""
    raise CheckpointError(f"{source}: weights do not fit the model: {detail}{tail}")


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
