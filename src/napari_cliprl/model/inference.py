"""The one inference path: step logits of a batch, and label maps at any size from them.

The Predictor (what a user sees), ``training.evaluate`` (``cliprl evaluate``, validation, T*,
cross-fitting) and the benchmarks all call :func:`predict_logits` and :func:`upsample_labels`,
so what is measured is what is shown.

- :func:`predict_logits`: no grad, bf16 autocast on CUDA (fp32 elsewhere), decoder (+ the
  fusion head on frames with a propagation context), then T greedy agent steps.
- :func:`upsample_labels`: the argmax of the bilinearly upsampled logits, exact, computed only
  near label boundaries (where it can differ from the low-resolution argmax).

Frames with a propagation context (labels carried from reviewed frames by optical flow) get
their full-resolution labels from ``napari_cliprl.fusion.grid.fused_labels`` instead, which
adds the side gains of each step to :func:`upsample_labels`'s bilinear logits.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from napari_cliprl.model.backbone import Features
from napari_cliprl.model.cliprl import CLIPRL, CLIPRLOutput


def inference_context(device: torch.device) -> contextlib.ExitStack:
    """``torch.no_grad()`` plus bf16 autocast on CUDA (fp32 on CPU and MPS)."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    if device.type == "cuda":
        stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
    return stack


def predict_logits(
    model: CLIPRL,
    images: torch.Tensor | None = None,
    *,
    features: Features | None = None,
    steps: int | None = None,
    context: torch.Tensor | None = None,
    seconds: dict[str, float] | None = None,
) -> CLIPRLOutput:
    """Zero-shot logits and the logits (and side gains) of steps 0..T for a batch, eval mode.

    images: B x 3 x h x w normalised (``model.preprocess`` / ``model.normalize``), or
    ``features`` from ``model.encode``; steps: T (default: T*, ``config.steps``, or
    ``config.fusion_steps`` with a context; at most limits.MAX_STEPS); context:
    B x C' x h/4 x w/4 propagation context (``model.fusion_head``; all frames of the batch
    have one). ``seconds``, when given, receives the wall time of "backbone", "decoder" and
    "agent".
    """
    model.eval()
    times = seconds if seconds is not None else {}
    with inference_context(model.device):
        start = time.perf_counter()
        if features is None:
            if images is None:
                raise RuntimeError("predict_logits needs images or precomputed features")
            features = model.encode(images)
        decoded = time.perf_counter()
        zero_shot, L_dec, pixel = model.decode(features)
        L0, G0 = model.fuse(L_dec, context)
        refined_at = time.perf_counter()
        if steps is None:
            steps = model.config.steps if context is None else model.config.fusion_steps
        episode = model.episode(L0, pixel, steps, gains=G0, context=context)
        end = time.perf_counter()
    times.update(backbone=decoded - start, decoder=refined_at - decoded, agent=end - refined_at)
    logits = [L0, *(s.next_raw for s in episode)]
    gains = None if G0 is None else [G0, *(s.next_gains for s in episode)]
    actions = [s.actions for s in episode]
    return CLIPRLOutput(zero_shot, logits, actions, features, pixel, gains)  # type: ignore[arg-type]


def upsample_labels(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """K x h x w logits -> H x W uint8 ids: argmax of the bilinearly upsampled logits.

    Exact (``F.interpolate(..., "bilinear", align_corners=False)`` then argmax, up to ties)
    and cheap: where the 4 low-resolution cells around a pixel share one argmax, the bilinear
    mixture (non-negative weights) has that argmax too, so only pixels near label boundaries
    are interpolated.
    """
    logits = logits.detach().float().cpu()
    K, h, w = logits.shape
    y0, y1, fy = (t.numpy() for t in _source_index(h, size[0]))
    x0, x1, fx = (t.numpy() for t in _source_index(w, size[1]))
    low = logits.argmax(0).to(torch.uint8).numpy()
    rows0, rows1 = low[y0], low[y1]
    out = rows0[:, x0]
    mixed = out != rows0[:, x1]
    mixed |= out != rows1[:, x0]
    mixed |= out != rows1[:, x1]
    ys, xs = np.nonzero(mixed)
    if len(ys):
        lt = logits.permute(1, 2, 0).contiguous().numpy()  # h x w x K
        r0, r1, c0, c1 = y0[ys], y1[ys], x0[xs], x1[xs]
        wy, wx = fy[ys, None], fx[xs, None]
        top = lt[r0, c0]
        top += wx * (lt[r0, c1] - top)
        bottom = lt[r1, c0]
        bottom += wx * (lt[r1, c1] - bottom)
        top += wy * (bottom - top)
        out[ys, xs] = top.argmax(1)
    return out


def _source_index(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torch's bilinear (align_corners=False) source indices and weights along one axis."""
    src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    src = src.clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, (src - i0).float()
