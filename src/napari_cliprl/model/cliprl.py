"""CLIPRL: backbone -> zero-shot scores -> decoder (step 0) -> T greedy agent steps.

The model owns its input convention: ``preprocess`` (uint8 frames of any size) and ``normalize``
(float images already at the input size) are the only places CLIP's mean/std are applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from napari_cliprl.config import ModelConfig, check_steps
from napari_cliprl.model.backbone import CLIPBackbone, Features
from napari_cliprl.model.decoder import SegDecoder
from napari_cliprl.model.fusion_head import FusionHead
from napari_cliprl.model.policy import AgentStep, RefinementAgent, run_episode, sampled
from napari_cliprl.model.policy import greedy as greedy_select
from napari_cliprl.model.text import TextBank
from napari_cliprl.schemas import LabelSchema


@dataclass
class CLIPRLOutput:
    """Everything one forward pass produces.

    zero_shot: B x K x h x w logits (stride = patch size).
    logits: T + 1 tensors B x K x H/4 x W/4: index 0 = decoder, t = after agent step t.
    actions: T tensors B x H/4 x W/4 long (the action taken per cell at each step).
    features: the backbone features (what a cache keeps).
    pixel_features: F, B x C x H/4 x W/4.
    gains: with a propagation context, T + 1 tensors B x 2 x H/4 x W/4 (the side gains of
    each step; ``logits`` are then the logits without the side bonus); else None.
    """

    zero_shot: torch.Tensor
    logits: list[torch.Tensor]
    actions: list[torch.Tensor]
    features: Features
    pixel_features: torch.Tensor
    gains: list[torch.Tensor] | None = None


class CLIPRL(nn.Module):
    """The CLIP-RL segmentation model.

    Arguments (keyword-only): config, schema, backbone, text_bank, decoder, agent, and
    ``fusion_head`` for a model trained for video fusion (``config.fusion``; see
    ``model.fusion_head``). ``logit_scale`` is CLIP's temperature for the zero-shot logits
    (exp of CLIP's parameter).
    """

    def __init__(
        self,
        *,
        config: ModelConfig,
        schema: LabelSchema,
        backbone: CLIPBackbone,
        text_bank: TextBank,
        decoder: SegDecoder,
        agent: RefinementAgent,
        fusion_head: FusionHead | None = None,
        logit_scale: float = 100.0,
    ) -> None:
        super().__init__()
        if text_bank.num_classes != schema.num_classes:
            raise ValueError("text bank and schema disagree on the number of classes")
        self.config = config
        self.schema = schema
        self.backbone = backbone
        self.text_bank = text_bank
        self.decoder = decoder
        self.agent = agent
        self.fusion_head = fusion_head
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))
        mean = torch.tensor(config.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(config.image_std).view(1, 3, 1, 1)
        self.register_buffer("image_mean", mean, persistent=False)
        self.register_buffer("image_std", std, persistent=False)

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    @property
    def num_classes(self) -> int:
        return self.schema.num_classes

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.config.input_size)  # type: ignore[return-value]

    @property
    def logits_size(self) -> tuple[int, int]:
        """(h, w) of the step logits and actions: the stride-4 grid of the input."""
        gh, gw = self.backbone.grid_size
        return 4 * gh, 4 * gw

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 B x H x W x 3 (any H, W) -> float B x 3 x h x w at the input size, normalised.

        Resizing is bilinear with antialiasing (what training's ``resize_pair`` does too).
        """
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 B x H x W x 3 images, got {images.dtype} {tuple(images.shape)}"
            )
        x = images.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", antialias=True)
        return self.normalize(x)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """float B x 3 x h x w RGB in [0, 1] -> CLIP-normalised input of :meth:`encode`."""
        return (images.to(self.device) - self.image_mean) / self.image_std

    def encode(self, images: torch.Tensor) -> Features:
        """images B x 3 x H x W (CLIP-normalised, at the input size) -> Features."""
        return self.backbone(images)

    def decode(self, features: Features) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features -> (zero_shot B x K x h x w, L0 B x K x H/4 x W/4, F B x C x H/4 x W/4)."""
        zero_shot = self.logit_scale * self.text_bank.zero_shot(features.dense)
        L0, pixel = self.decoder(features.maps, features.dense, zero_shot, self.text_bank())
        return zero_shot, L0, pixel

    def fuse(
        self, L0: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Step 0 of frames with a propagation context: the fusion head's (L0 + dL, gains
        B x 2 x h x w) from the decoder's L0 and the context B x C' x h x w
        (``model.fusion_head``). Without a context or a fusion head: (L0, None)."""
        if context is None:
            return L0, None
        if self.fusion_head is None:
            raise RuntimeError(
                "this model has no fusion head: fine-tune it on reviewed frames of a video "
                "to predict from propagated labels"
            )
        return self.fusion_head(L0, context.to(device=L0.device, dtype=L0.dtype))

    def refine(
        self,
        L0: torch.Tensor,
        pixel_features: torch.Tensor,
        steps: int,
        greedy: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Run ``steps`` agent steps from L0 B x K x h x w with F B x C x h x w ->
        (logits [L1..LT] each B x K x h x w, actions [a0..a(T-1)] each B x h x w long)."""
        episode = self.episode(L0, pixel_features, steps, greedy, generator)
        return [s.next_logits for s in episode], [s.actions for s in episode]

    def episode(
        self,
        L0: torch.Tensor,
        pixel_features: torch.Tensor,
        steps: int,
        greedy: bool = True,
        generator: torch.Generator | None = None,
        *,
        gains: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> list[AgentStep]:
        """The ``steps`` agent steps from step 0 (``policy.run_episode``), with the side gains
        and the context of a frame with a propagation context."""
        steps = check_steps(steps)
        select = greedy_select if greedy else sampled(generator)
        if context is not None:
            context = context.to(device=L0.device, dtype=L0.dtype)
        return list(
            run_episode(self.agent, L0, pixel_features, steps, select, gains=gains, context=context)
        )

    def forward(
        self,
        images: torch.Tensor | None,
        steps: int | None = None,
        features: Features | None = None,
        context: torch.Tensor | None = None,
    ) -> CLIPRLOutput:
        """images B x 3 x H x W (normalised) -> CLIPRLOutput with T = ``steps`` (default T*).

        Pass ``features`` (from ``encode``) to skip the backbone; ``images`` may then be None.
        context: B x C' x H/4 x W/4 propagation context (``model.fusion_head``); the output's
        ``gains`` are then set and ``logits`` are those without the side bonus.
        """
        if steps is None:
            steps = self.config.steps if context is None else self.config.fusion_steps
        steps = check_steps(steps)
        if features is None:
            if images is None:
                raise RuntimeError("CLIPRL.forward needs images or precomputed features")
            features = self.encode(images)
        zero_shot, L_dec, pixel = self.decode(features)
        L0, G0 = self.fuse(L_dec, context)
        episode = self.episode(L0, pixel, steps, gains=G0, context=context)
        logits = [L0, *(s.next_raw for s in episode)]
        gains = None if G0 is None else [G0, *(s.next_gains for s in episode)]
        actions = [s.actions for s in episode]
        return CLIPRLOutput(zero_shot, logits, actions, features, pixel, gains)  # type: ignore[arg-type]

    def backbone_fingerprint(self) -> str:
        """Identifies the backbone's output: changes whenever the features would change.

        Architecture, input size, layers and CLIP weights hash (or the seed for random weights);
        plus the current values of trainable backbone parameters, or of all of them for a small
        backbone (tiny-test, which training may fine-tune in place).
        """
        cfg = self.config
        weights = cfg.clip_weights_sha256 or f"random-seed{cfg.seed}"
        key = (cfg.arch, tuple(cfg.input_size), tuple(cfg.layer_indices), weights)
        h = hashlib.sha256(repr(key).encode())
        params = dict(self.backbone.named_parameters())
        small = sum(p.numel() for p in params.values()) < SMALL_BACKBONE
        for name, p in sorted(params.items()):
            if small or p.requires_grad:
                h.update(name.encode())
                h.update(p.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]


SMALL_BACKBONE = 5_000_000  # parameters; below this the fingerprint hashes the whole backbone
