"""Configuration dataclasses: typed, documented defaults that functions take instead of argv.

:class:`ModelConfig` describes one CLIP-RL model completely enough to rebuild it: it is written to
a checkpoint's ``config.json`` (section ``"model"``) and read back by ``build_model``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

PROMPT_TEMPLATES = (
    "an endoscopic image of a {}.",
    "a {} in robotic surgery.",
    "a photo of a {} during surgery.",
    "a surgical video frame showing a {}.",
)


@dataclass
class ModelConfig:
    """Everything that defines a CLIP-RL model besides its label schema and weights."""

    arch: str = "ViT-B-16"  # registry name (model.build.list_architectures())
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
    extra: dict[str, Any] = field(default_factory=dict)  # free-form metadata (training, T* search)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; known: {sorted(known)}")
        values = dict(data)
        for key in ("input_size", "layer_indices", "templates", "image_mean", "image_std"):
            if key in values and values[key] is not None:
                values[key] = tuple(values[key])
        return cls(**values)
