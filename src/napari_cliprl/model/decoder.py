"""Segmentation decoder: a simple feature pyramid from stride 16 to stride 4, text-space head.

Inputs are the 4 backbone maps (stride 16), the ClearCLIP dense map and the zero-shot scores.
The pyramid goes 16 -> 8 -> 4 with lateral connections from the earlier ViT layers (full 3x3
convolutions at strides 16 and 8, depthwise-separable ones at stride 4 where there are 16x more
cells).  The head projects pixel features to the CLIP text space, so logits are
``scale * <normalize(W f), text_k> + bias_k`` plus the upsampled zero-shot logits weighted by a
learnable ``prior_weight`` (an untrained decoder starts close to zero-shot CLIP).  The head is
evaluated without forming the D-dimensional pixel embeddings: ``<W f, t> = <f, W^T t>`` and
``|W f|^2 = f^T (W^T W) f``, which is ~4x cheaper for C = 128, D = 512.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_block(c_in: int, c_out: int, groups: int = 8) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(min(groups, c_out), c_out),
        nn.GELU(),
    )


def _separable_block(dim: int, groups: int = 8) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False),
        nn.Conv2d(dim, dim, 1, bias=False),
        nn.GroupNorm(min(groups, dim), dim),
        nn.GELU(),
    )


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class SegDecoder(nn.Module):
    """Feature pyramid decoder.

    Arguments (keyword-only):
        in_channels: ViT width C of each backbone map.
        embed_dim: D, the CLIP embedding size (dense map and text embeddings).
        num_classes: K.
        dim: decoder channels, also the channels of the pixel features F.
        num_maps: number of backbone maps (4).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        embed_dim: int,
        num_classes: int,
        dim: int = 128,
        num_maps: int = 4,
    ) -> None:
        super().__init__()
        if num_maps != 4:
            raise ValueError(f"the decoder takes 4 backbone maps, got {num_maps}")
        self.dim = dim
        self.num_classes = num_classes
        self.lateral = nn.ModuleList(nn.Conv2d(in_channels, dim, 1) for _ in range(num_maps))
        self.dense_proj = nn.Conv2d(embed_dim, dim, 1)
        self.score_proj = nn.Conv2d(num_classes, dim, 1)
        self.fuse16 = nn.Sequential(_conv_block(dim, dim), _conv_block(dim, dim))
        self.fuse8 = _conv_block(dim, dim)
        self.fuse4 = _separable_block(dim)
        self.refine4 = _separable_block(dim)
        self.head = nn.Conv2d(dim, embed_dim, 1, bias=False)  # W: D x C
        self.log_scale = nn.Parameter(torch.tensor(0.0))  # logit scale exp(0) = 1 at start
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.prior_weight = nn.Parameter(torch.tensor(1.0))

    def forward(
        self,
        maps: list[torch.Tensor],
        dense: torch.Tensor,
        zero_shot: torch.Tensor,
        text: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode one batch.

        maps: 4 x (B x C x h x w); dense: B x D x h x w; zero_shot: B x K x h x w logits;
        text: K x D normalised class embeddings.
        Returns (L0 B x K x 4h x 4w logits, F B x dim x 4h x 4w pixel features).
        """
        lat = [layer(_channel_norm(m)) for layer, m in zip(self.lateral, maps)]
        scores = _standardise(zero_shot)
        p16 = self.fuse16(lat[3] + lat[2] + self.dense_proj(dense) + self.score_proj(scores))
        p8 = self.fuse8(_up2(p16) + _up2(lat[1]))
        p4 = self.fuse4(_up2(p8) + F.interpolate(lat[0], scale_factor=4.0, mode="bilinear"))
        feats = self.refine4(p4)
        logits = self.log_scale.exp() * self.text_similarity(feats, text)
        logits = logits + self.bias.view(1, -1, 1, 1)
        prior = F.interpolate(zero_shot, size=logits.shape[-2:], mode="bilinear")
        return logits + self.prior_weight * prior, feats

    def text_similarity(self, feats: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Cosine of the pixel embeddings W f with the class embeddings: B x K x h x w.

        feats: B x C x h x w; text: K x D normalised.  Same as
        ``einsum(normalize(head(feats)), text)`` without the B x D x h x w intermediate.
        """
        W = self.head.weight.flatten(1)  # D x C
        u = text.to(W.dtype) @ W  # K x C: W^T t_k
        gram = W.t() @ W  # C x C
        dots = torch.einsum("bchw,kc->bkhw", feats, u.to(feats.dtype))
        sq = (feats * torch.einsum("bchw,cd->bdhw", feats, gram.to(feats.dtype))).sum(1)
        return dots * torch.rsqrt(sq.clamp_min(1e-12)).unsqueeze(1)


def _channel_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Parameter-free LayerNorm over channels of B x C x h x w (ViT tokens have outliers)."""
    mean = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + eps)


def _standardise(scores: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Per pixel, zero mean and unit std over classes (CLIP cosine scores span a narrow range)."""
    if scores.shape[1] == 1:
        return scores - scores
    return _channel_norm(scores, eps)
