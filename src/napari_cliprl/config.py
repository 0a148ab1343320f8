"""Configuration dataclasses: typed, documented defaults that functions take instead of argv.

:class:`ModelConfig` describes one CLIP-RL model completely enough to rebuild it: it is written to
a checkpoint's ``config.json`` (section ``"model"``) and read back by ``build_model``.  Every
field is checked when a config is created, so a crafted checkpoint is refused before anything is
built: types, finite numbers, and the sizes that commit memory (``input_size`` against
``limits.MAX_INPUT_SIDE``, ``steps`` against ``limits.MAX_STEPS``, channel widths).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from napari_cliprl.limits import check_limit

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_CHANNELS = 1024  # decoder_dim / agent_dim: far above any real model, far below a crafted one
MAX_TEMPLATES = 64  # prompt templates (each is encoded once per class name)

PROMPT_TEMPLATES = (
    "an endoscopic image of a {}.",
    "a {} in robotic surgery.",
    "a photo of a {} during surgery.",
    "a surgical video frame showing a {}.",
)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_steps(steps: Any, source: str = "steps") -> int:
    """``steps`` (T) as an int in 0..MAX_STEPS: ValueError naming ``source``, LimitError above."""
    if not _is_int(steps) or steps < 0:
        raise ValueError(f"{source} must be a whole number >= 0, got {steps!r}")
    return check_limit("MAX_STEPS", steps, source)


def check_input_size(size: Any, source: str = "input_size") -> tuple[int, int]:
    """(h, w) of positive ints, each at most MAX_INPUT_SIDE (LimitError above)."""
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(_is_int(s) and s > 0 for s in size)
    ):
        raise ValueError(f"{source}: input size {_show(size)} must be two whole numbers > 0 (h, w)")
    for side in size:
        check_limit("MAX_INPUT_SIDE", side, source)
    return int(size[0]), int(size[1])


def _show(value: Any) -> str:
    return repr(tuple(value)) if isinstance(value, list | tuple) else repr(value)


def _check_ints(name: str, value: Any, low: int, high: int | None = None) -> None:
    values = value if isinstance(value, tuple) else (value,)
    in_range = (_is_int(v) and v >= low and (high is None or v <= high) for v in values)
    if not values or not all(in_range):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be whole numbers {bound}, got {_show(value)}")


def _check_floats(name: str, value: Any, count: int, positive: bool = False) -> None:
    values = value if isinstance(value, tuple) else (value,)
    ok = len(values) == count and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )
    if not ok or (positive and min(values) <= 0):
        kind = "positive finite numbers" if positive else "finite numbers"
        raise ValueError(f"{name} must be {count} {kind}, got {_show(value)}")


def _check_optional_text(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be text or null, got {value!r}")


@dataclass
class ModelConfig:
    """Everything that defines a CLIP-RL model besides its label schema and weights."""

    arch: str = "ViT-B-16"  # registry name (model.registry.list_architectures())
    input_size: tuple[int, int] = (192, 240)  # (h, w) the frame is resized to; patch multiple
    steps: int = 3  # T*: agent steps run by default (a trained checkpoint: chosen on validation)
    clip_weights: str | None = None  # open_clip tag, "hf-hub:org/repo" or a file; None = random
    clip_weights_sha256: str | None = None  # content hash of the visual tower actually loaded
    layer_indices: tuple[int, ...] = (2, 5, 8, 10)  # ViT blocks whose outputs feed the decoder
    decoder_dim: int = 128  # C: channels of the decoder and of the pixel features F
    agent_dim: int = 64  # hidden channels of the agent's encoder, ConvGRU and heads
    action_delta: float = 2.0  # logit added by "push class k" and margin of "majority"
    templates: tuple[str, ...] = PROMPT_TEMPLATES  # text prompt templates, "{}" = class name
    image_mean: tuple[float, float, float] = OPENAI_MEAN  # CLIP normalisation, RGB in [0, 1]
    image_std: tuple[float, float, float] = OPENAI_STD
    train_backbone_blocks: int = 0  # last ViT blocks left trainable (saved in checkpoints)
    seed: int = 0  # seeds random initialisation (tiny-test backbone, decoder, agent)
    fusion: bool = False  # video fusion: a fusion head and an agent that sees the labels
    # propagated from reviewed frames and may take them (model.fusion_head)
    fusion_dim: int = 32  # hidden channels of the fusion head
    fusion_side_actions: bool = True  # the agent's "take the forward / backward / image label"
    fusion_steps: int = 0  # T* for frames with a propagation context (chosen on validation)
    snap_radius: int = 8  # fused labels are snapped to image edges by a guided filter of this
    # radius in pixels of a 480-line frame, scaled with the frame's shorter side (0: off)
    snap_eps: float = 1e-3  # the guided filter's regularisation (grey levels in [0, 1])
    extra: dict[str, Any] = field(default_factory=dict)  # free-form metadata (training, T* search)

    def __post_init__(self) -> None:
        """Check every field (ValueError naming it; LimitError for sizes over their limit)."""
        if not isinstance(self.arch, str) or not self.arch:
            raise ValueError(f"arch must be an architecture name, got {self.arch!r}")
        self.input_size = check_input_size(self.input_size)
        check_steps(self.steps)
        _check_optional_text("clip_weights", self.clip_weights)
        _check_optional_text("clip_weights_sha256", self.clip_weights_sha256)
        _check_ints("layer_indices", self.layer_indices, 0, 1000)
        _check_ints("decoder_dim", self.decoder_dim, 1, MAX_CHANNELS)
        _check_ints("agent_dim", self.agent_dim, 1, MAX_CHANNELS)
        _check_floats("action_delta", self.action_delta, 1)
        _check_floats("image_mean", self.image_mean, 3)
        _check_floats("image_std", self.image_std, 3, positive=True)
        _check_ints("train_backbone_blocks", self.train_backbone_blocks, 0)
        _check_ints("seed", self.seed, 0)
        for name in ("fusion", "fusion_side_actions"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        _check_ints("fusion_dim", self.fusion_dim, 1, MAX_CHANNELS)
        check_steps(self.fusion_steps, "fusion_steps")
        _check_ints("snap_radius", self.snap_radius, 0, 256)
        _check_floats("snap_eps", self.snap_eps, 1, positive=True)
        templates = self.templates
        if (
            not isinstance(templates, tuple)
            or not 0 < len(templates) <= MAX_TEMPLATES
            or not all(isinstance(t, str) and "{}" in t for t in templates)
        ):
            raise ValueError(
                f"templates must be 1..{MAX_TEMPLATES} texts containing '{{}}', got {templates!r}"
            )
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a JSON object, got {type(self.extra).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys or bad values raise ValueError naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"a model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; known: {sorted(known)}")
        values = dict(data)
        for key in ("input_size", "layer_indices", "templates", "image_mean", "image_std"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        for key in ("action_delta", "snap_eps"):
            if _is_int(values.get(key)):
                values[key] = float(values[key])
        return cls(**values)
