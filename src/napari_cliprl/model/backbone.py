"""Dense features from an open_clip ViT: intermediate maps and a ClearCLIP text-aligned map.

The last transformer block is never run twice: ``forward_intermediates(stop_early=True)`` stops
at the block before the last one, and from its output ``x`` we compute

* the ClearCLIP dense map: the last block's attention with q-q similarity, without the residual
  and without the FFN, then ``ln_post`` and ``proj``, L2-normalised (B x D x h x w);
* the ordinary last block, only when ``layer_indices`` asks for its output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Features:
    """Backbone output for a batch of images (what the predictor caches per frame).

    maps: list of 4 tensors B x C x h x w (C = ViT width; h, w = input size / patch size).
    dense: B x D x h x w, L2-normalised along D (D = CLIP embedding size).
    """

    maps: list[torch.Tensor]
    dense: torch.Tensor
    image_size: tuple[int, int] = field(default=(0, 0))  # (H, W) of the network input

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Features:
        return Features(
            maps=[m.to(device=device, dtype=dtype) for m in self.maps],
            dense=self.dense.to(device=device, dtype=dtype),
            image_size=self.image_size,
        )

    def detach(self) -> Features:
        return Features([m.detach() for m in self.maps], self.dense.detach(), self.image_size)

    def index(self, i: int | slice) -> Features:
        """The features of images ``i`` of the batch (keeps the batch dimension)."""
        sl = slice(i, i + 1) if isinstance(i, int) else i
        return Features([m[sl] for m in self.maps], self.dense[sl], self.image_size)

    @staticmethod
    def cat(items: list[Features]) -> Features:
        """Concatenate along the batch dimension."""
        maps = [torch.cat([f.maps[k] for f in items]) for k in range(len(items[0].maps))]
        return Features(maps, torch.cat([f.dense for f in items]), items[0].image_size)


class CLIPBackbone(nn.Module):
    """Wraps an open_clip ``VisionTransformer`` (``model.visual``) for dense prediction.

    Arguments (keyword-only):
        visual: the open_clip vision tower, created with ``force_image_size=input_size``.
        layer_indices: 4 block indices whose outputs become ``Features.maps``.
    """

    def __init__(self, *, visual: nn.Module, layer_indices: tuple[int, ...]) -> None:
        super().__init__()
        blocks = visual.transformer.resblocks
        n = len(blocks)
        if any(not 0 <= i < n for i in layer_indices):
            raise ValueError(f"layer_indices {layer_indices} out of range for {n} blocks")
        if n < 2:
            raise ValueError("the vision tower needs at least 2 blocks")
        self.visual = visual
        self.layer_indices = tuple(int(i) for i in layer_indices)
        self.num_blocks = n
        self.width = int(visual.transformer.width)
        self.embed_dim = int(visual.output_dim)
        self.patch_size = tuple(visual.patch_size)
        self.input_size = tuple(visual.image_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.visual.grid_size)

    def forward(self, images: torch.Tensor) -> Features:
        """images: B x 3 x H x W (CLIP-normalised, H x W = input size) -> Features."""
        if tuple(images.shape[-2:]) != self.input_size:
            raise ValueError(
                f"images are {tuple(images.shape[-2:])}, the backbone expects {self.input_size}; "
                "resize with CLIPRL.preprocess first"
            )
        last = self.num_blocks - 1
        wanted = sorted({i for i in self.layer_indices if i < last} | {last - 1})
        out = self.visual.forward_intermediates(
            images,
            indices=wanted,
            stop_early=True,
            intermediates_only=True,
            output_fmt="NLC",
            output_extra_tokens=True,
        )
        tokens = {
            i: torch.cat([prefix, x], dim=1)
            for i, prefix, x in zip(
                wanted, out["image_intermediates_prefix"], out["image_intermediates"]
            )
        }
        x = tokens[last - 1]  # input of the last block, B x (1 + h*w) x C
        block = self.visual.transformer.resblocks[last]
        if last in self.layer_indices:
            tokens[last] = block(x)
        dense = self._clearclip(block, x)
        B = images.shape[0]
        h, w = self.grid_size
        maps = [_to_map(tokens[i], B, h, w) for i in self.layer_indices]
        dense = F.normalize(_to_map(dense, B, h, w), dim=1)
        return Features(maps=maps, dense=dense, image_size=self.input_size)

    def _clearclip(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """ClearCLIP: q-q attention of ``block`` on x (B x L x C), no residual, no FFN.

        Returns B x L x D tokens after ``ln_post`` and ``proj`` (not yet normalised).
        """
        weight, bias, out_proj, heads = _attention_params(block)
        y = block.ln_1(x)
        C = y.shape[-1]
        q = F.linear(y, weight[:C], None if bias is None else bias[:C])
        v = F.linear(y, weight[2 * C :], None if bias is None else bias[2 * C :])
        B, L, _ = q.shape
        q = q.reshape(B, L, heads, -1).transpose(1, 2)
        v = v.reshape(B, L, heads, -1).transpose(1, 2)
        attn = F.scaled_dot_product_attention(q, q, v)
        attn = attn.transpose(1, 2).reshape(B, L, C)
        out = out_proj(attn)
        if hasattr(block, "ls_1"):
            out = block.ls_1(out)
        out = self.visual.ln_post(out)
        if self.visual.proj is not None:
            out = out @ self.visual.proj
        return out


def _attention_params(block: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None, nn.Module, int]:
    """(in_proj_weight 3C x C, in_proj_bias, out_proj, heads) of an open_clip block."""
    attn = block.attn
    if isinstance(attn, nn.MultiheadAttention):
        return attn.in_proj_weight, attn.in_proj_bias, attn.out_proj, attn.num_heads
    if hasattr(attn, "in_proj_weight") and hasattr(attn, "num_heads"):
        if getattr(attn, "logit_scale", None) is not None or not isinstance(attn.ln_q, nn.Identity):
            raise NotImplementedError("ClearCLIP is not implemented for cosine/qk-norm attention")
        return attn.in_proj_weight, attn.in_proj_bias, attn.out_proj, attn.num_heads
    raise NotImplementedError(f"unsupported attention module {type(attn).__name__}")


def _to_map(tokens: torch.Tensor, B: int, h: int, w: int) -> torch.Tensor:
    """B x (1 + h*w) x C tokens (class token first) -> B x C x h x w."""
    return tokens[:, 1:].reshape(B, h, w, -1).permute(0, 3, 1, 2).contiguous()
