"""``build_model``: a ready CLIPRL (eval mode) from an architecture name or a checkpoint folder.

Building is separate from using: ``Predictor`` never opens a file.  The architectures are data
(``model.registry``); checkpoint folders are written by ``save_checkpoint`` and read and checked
by ``model.checkpoint`` (safetensors only).  Every size that commits memory (input size, steps,
channel widths) is checked before any layer is created.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from napari_cliprl._compat import import_open_clip
from napari_cliprl.config import ModelConfig, check_input_size
from napari_cliprl.devices import resolve_device
from napari_cliprl.model.backbone import CLIPBackbone
from napari_cliprl.model.checkpoint import (
    WEIGHTS_NAME,
    CheckpointError,
    check_matches,
    check_weights_classes,
    load_checkpoint_config,
    load_weights_into,
    read_checkpoint_config,
    read_checkpoint_weights,
    save_checkpoint,
)
from napari_cliprl.model.cliprl import CLIPRL
from napari_cliprl.model.decoder import SegDecoder
from napari_cliprl.model.fusion_head import FusionHead, context_channels_count
from napari_cliprl.model.policy import RefinementAgent
from napari_cliprl.model.registry import (
    DEFAULT_ARCH,
    ArchSpec,
    check_patch_multiple,
    get_architecture,
    list_architectures,
    register_open_clip_configs,
)
from napari_cliprl.model.text import TextBank, default_cache_dir, encode_prompts, encode_text_bank
from napari_cliprl.model.weights import (
    ClipWeightsError,
    load_clip_weights,
    resolve_clip_weights,
    visual_sha256,
)
from napari_cliprl.schemas import LabelSchema, get_schema

__all__ = [
    "build_model",
    "get_architecture",  # the registry's, re-exported for callers of model.build
    "list_architectures",
    "read_checkpoint_config",  # model.checkpoint's, likewise
    "add_fusion",
    "save_checkpoint",
    "set_backbone_trainable",
]

DEFAULT_SCHEMA = "endovis2018"


def build_model(
    name: str | None = None,
    *,
    clip_weights: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    schema: str | os.PathLike | LabelSchema | None = None,
    device: str | torch.device = "cpu",
    input_size: tuple[int, int] | None = None,
) -> CLIPRL:
    """A ready CLIPRL in eval mode.

    name: architecture (default ViT-B-16, or the checkpoint's); clip_weights: open_clip tag,
    ``hf-hub:`` id or local file (None: random for a new model, the checkpoint's otherwise);
    checkpoint: folder written by ``save_checkpoint``; schema: name, JSON path or LabelSchema
    (default endovis2018, or the checkpoint's); input_size: (h, w), default per device.
    A checkpoint whose architecture or schema differs from ``name``/``schema`` is refused.
    """
    dev = resolve_device(device)
    if checkpoint is not None:
        return _build_from_checkpoint(Path(checkpoint), name, clip_weights, schema, dev, input_size)
    spec = get_architecture(name or DEFAULT_ARCH)
    size = input_size or (spec.gpu_input_size if dev.type == "cuda" else spec.cpu_input_size)
    size = check_input_size(tuple(size))
    check_patch_multiple(spec, size)
    config = ModelConfig(
        arch=name or DEFAULT_ARCH,
        input_size=size,
        clip_weights=None if clip_weights is None else str(clip_weights),
        layer_indices=spec.layer_indices,
        decoder_dim=spec.decoder_dim,
        agent_dim=spec.agent_dim,
    )
    return _build_cliprl(config, get_schema(schema or DEFAULT_SCHEMA), dev)


def _build_from_checkpoint(
    folder: Path,
    name: str | None,
    clip_weights: str | os.PathLike | None,
    schema: str | os.PathLike | LabelSchema | None,
    dev: torch.device,
    input_size: tuple[int, int] | None,
) -> CLIPRL:
    ckpt = load_checkpoint_config(folder)
    asked = None if schema is None else get_schema(schema)
    check_matches(ckpt.raw, name, None if asked is None else asked.to_dict(), folder)
    config = ckpt.model
    spec = get_architecture(config.arch)
    if input_size is not None and tuple(input_size) != tuple(config.input_size):
        if spec.self_contained:
            raise CheckpointError(
                f"{folder}: architecture {config.arch!r} is fixed at input size "
                f"{tuple(config.input_size)}, not {tuple(input_size)}"
            )
        size = check_input_size(tuple(input_size))
        check_patch_multiple(spec, size)
        config = replace(config, input_size=size)
    if clip_weights is not None:
        config = replace(config, clip_weights=str(clip_weights))
    state = read_checkpoint_weights(folder)
    schema_used = asked or ckpt.schema
    check_weights_classes(state, schema_used.num_classes, folder / WEIGHTS_NAME)
    try:
        model = _build_cliprl(config, schema_used, dev, state)
    except (ClipWeightsError, CheckpointError):
        raise
    except ValueError as e:  # e.g. layer_indices beyond the tower's blocks
        raise CheckpointError(f"{ckpt.path}: model section: {e}") from e
    expected = ckpt.raw.get("clip_weights_sha256")
    if expected and model.config.clip_weights_sha256 != expected:
        warnings.warn(
            f"{folder}: CLIP weights {config.clip_weights!r} differ from those the checkpoint was "
            f"trained with (hash {expected[:12]}..., got "
            f"{(model.config.clip_weights_sha256 or 'random')[:12]}); predictions will be poor",
            stacklevel=3,
        )
    load_weights_into(model, state, folder / WEIGHTS_NAME)
    return model.to(dev).eval()


def _build_cliprl(
    config: ModelConfig,
    schema: LabelSchema,
    device: torch.device,
    state: dict[str, torch.Tensor] | None = None,
) -> CLIPRL:
    """Create every part on the CPU (seeded), then move to ``device`` in eval mode.

    state: checkpoint tensors; their text bank is used instead of encoding prompts.
    """
    spec = get_architecture(config.arch)
    open_clip = import_open_clip()
    register_open_clip_configs(open_clip)
    resolved = resolve_clip_weights(open_clip, spec.open_clip_name, config.clip_weights)
    if resolved is None and not spec.self_contained and state is None:
        warnings.warn(
            f"{config.arch} has no CLIP weights (clip_weights=None): random initialisation, "
            "fine for timing, useless for segmentation",
            stacklevel=3,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        clip = _create_clip(open_clip, spec, config, resolved)
        sha = visual_sha256(clip.visual) if resolved is not None else None
        config = replace(config, clip_weights_sha256=sha)
        backbone = CLIPBackbone(visual=clip.visual, layer_indices=config.layer_indices)
        text_bank = _text_bank(open_clip, clip, spec, config, schema, state)
        decoder = SegDecoder(
            in_channels=backbone.width,
            embed_dim=backbone.embed_dim,
            num_classes=schema.num_classes,
            dim=config.decoder_dim,
        )
        agent, head = _agent_and_head(config, schema.num_classes)
    model = CLIPRL(
        config=config,
        schema=schema,
        backbone=backbone,
        text_bank=text_bank,
        decoder=decoder,
        agent=agent,
        fusion_head=head,
        logit_scale=float(clip.logit_scale.detach().exp()),
    )
    set_backbone_trainable(model, config.train_backbone_blocks)
    return model.to(device).eval()


def _agent_and_head(config: ModelConfig, num_classes: int) -> tuple[RefinementAgent, Any]:
    """The agent, and the fusion head of a model with ``config.fusion`` (else None)."""
    context = context_channels_count(num_classes) if config.fusion else 0
    agent = RefinementAgent(
        feature_dim=config.decoder_dim,
        num_classes=num_classes,
        hidden=config.agent_dim,
        delta=config.action_delta,
        context_channels=context,
        side_actions=config.fusion and config.fusion_side_actions,
    )
    head = FusionHead(num_classes=num_classes, hidden=config.fusion_dim) if config.fusion else None
    return agent, head


def add_fusion(model: CLIPRL, side_actions: bool = True) -> None:
    """Give a model without fusion a fusion head and a wider agent, in place.

    The agent keeps what it learned: its encoder gets zero weights for the new state channels
    (context, gains) and its policy zero-weight rows for the three side actions (unless
    ``side_actions`` is False), so on frames without a context it acts as before.
    ``model.config.fusion`` becomes True.
    """
    if model.config.fusion:
        return
    config = replace(
        model.config,
        fusion=True,
        fusion_steps=model.config.steps,
        fusion_side_actions=bool(side_actions),
    )
    old = model.agent
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        agent, head = _agent_and_head(config, model.num_classes)
    agent.load_state_dict(_widened(old.state_dict(), agent.state_dict()))
    device = model.device
    model.agent = agent.to(device)
    model.fusion_head = head.to(device) if head is not None else None
    model.config = config


def _widened(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> dict:
    """``new``'s tensors with ``old``'s values copied into their leading block (the rest of
    a grown weight, e.g. new input channels or new actions, is zero)."""
    out = {}
    for key, target in new.items():
        source = old.get(key)
        if source is None or source.ndim != target.ndim:
            out[key] = target
            continue
        grown = torch.zeros_like(target)
        block = tuple(slice(0, min(a, b)) for a, b in zip(source.shape, target.shape))
        grown[block] = source[block]
        out[key] = grown
    return out


def _create_clip(open_clip: Any, spec: ArchSpec, config: ModelConfig, resolved: Any) -> Any:
    """The open_clip model at the input size: random (seeded), then the weights file if any."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))  # open_clip logs random-init warnings
    try:
        clip = open_clip.create_model(
            spec.open_clip_name,
            pretrained=None,
            force_image_size=tuple(config.input_size),
            force_quick_gelu=bool(resolved is not None and resolved.quick_gelu),
            device="cpu",
        )
    except RuntimeError as e:
        raise RuntimeError(f"could not create {config.arch}: {e}") from e
    finally:
        logger.setLevel(level)
    if resolved is not None:
        load_clip_weights(open_clip, clip, resolved.path, spec.open_clip_name)
    return clip


def _text_bank(
    open_clip: Any,
    clip: Any,
    spec: ArchSpec,
    config: ModelConfig,
    schema: LabelSchema,
    state: dict[str, torch.Tensor] | None,
) -> TextBank:
    if state is not None and "text_bank.name_embeddings" in state:
        return TextBank(
            name_embeddings=state["text_bank.name_embeddings"],
            name_class=state["text_bank.name_class"],
            num_classes=schema.num_classes,
        )
    weights = config.clip_weights_sha256 or (
        f"random-seed{config.seed}-{tuple(config.input_size)}-{open_clip.__version__}"
    )

    def encode(prompts: list[str]) -> torch.Tensor:
        tokenizer = open_clip.get_tokenizer(spec.open_clip_name)  # only on a cache miss
        return encode_prompts(clip, tokenizer(prompts))

    return encode_text_bank(
        encode_text=encode, schema=schema, templates=config.templates,
        cache_key=f"{config.arch}|{weights}",
        cache_dir=None if spec.self_contained else default_cache_dir(),
    )  # fmt: skip


def set_backbone_trainable(model: CLIPRL, blocks: int) -> None:
    """Freeze the backbone except its last ``blocks`` ViT blocks (and ln_post/proj if > 0).

    Updates ``model.config.train_backbone_blocks`` so checkpoints store those weights.
    """
    visual = model.backbone.visual
    for p in visual.parameters():
        p.requires_grad_(False)
    resblocks = visual.transformer.resblocks
    if blocks > 0:
        for block in resblocks[len(resblocks) - blocks :]:
            block.requires_grad_(True)
        visual.ln_post.requires_grad_(True)
        if visual.proj is not None:
            visual.proj.requires_grad_(True)
    model.config.train_backbone_blocks = int(blocks)
