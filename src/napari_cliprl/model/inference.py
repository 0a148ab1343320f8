"""The one inference path: step logits of a batch, and label maps at any size from them.

The Predictor (what a user sees), ``training.evaluate`` (``cliprl evaluate``, validation, T*,
cross-fitting) and the benchmarks all call :func:`predict_logits` and :func:`upsample_labels`,
so what is measured is what is shown.

- :func:`predict_logits`: no grad, bf16 autocast on CUDA (fp32 elsewhere), decoder (+ prior),
  then T greedy agent steps.
- :func:`upsample_labels`: the argmax of the bilinearly upsampled logits, exact, computed only
  near label boundaries (where it can differ from the low-resolution argmax).
- :func:`prior_logits`: a neighbour's labels as a logit bonus for L0.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

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
    prior: torch.Tensor | None = None,
    seconds: dict[str, float] | None = None,
) -> CLIPRLOutput:
    """Zero-shot logits and the logits of steps 0..T for a batch, in eval mode.

    images: B x 3 x h x w normalised (``model.preprocess`` / ``model.normalize``), or
    ``features`` from ``model.encode``; steps: T (default T*, at most limits.MAX_STEPS);
    prior: B x K x h/4 x w/4 logits added to L0 (:func:`prior_logits`).
    ``seconds``, when given, receives the wall time of "backbone", "decoder" and "agent".
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
        zero_shot, L0, pixel = model.decode(features, prior)
        refined_at = time.perf_counter()
        refined, actions = model.refine(L0, pixel, model.config.steps if steps is None else steps)
        end = time.perf_counter()
    times.update(backbone=decoded - start, decoder=refined_at - decoded, agent=end - refined_at)
    return CLIPRLOutput(zero_shot, [L0, *refined], actions, features, pixel)


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


def prior_ids(prior: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Validate prior labels (2-D integer ids < K or the ignore index); ignore becomes K."""
    prior = np.asarray(prior)
    if prior.ndim != 2 or not np.issubdtype(prior.dtype, np.integer):
        raise ValueError(
            f"a prior must be H x W integer class ids, got {prior.dtype} {prior.shape}"
        )
    bad = ((prior >= num_classes) & (prior != ignore_index)) | (prior < 0)
    if bad.any():
        raise ValueError(
            f"prior has ids {sorted(set(np.unique(prior[bad]).tolist()))[:5]} outside "
            f"0..{num_classes - 1} (ignore {ignore_index})"
        )
    return np.where(prior == ignore_index, num_classes, prior)


def prior_logits(
    priors: Sequence[np.ndarray | None],
    *,
    num_classes: int,
    ignore_index: int,
    grid: tuple[int, int],
    weight: float,
) -> torch.Tensor:
    """B x K x h x w: ``weight`` on each cell's prior class (nearest-sampled to ``grid``).

    priors: one H' x W' id map per frame (any size), or None; the ignore index (and None)
    mean "no opinion" (zeros).
    """
    K, (h, w) = num_classes, grid
    bonus = torch.zeros(len(priors), K, h, w)
    for i, prior in enumerate(priors):
        if prior is None:
            continue
        ids = prior_ids(prior, K, ignore_index)
        rows = ((np.arange(h) + 0.5) * ids.shape[0] / h).astype(int)
        cols = ((np.arange(w) + 0.5) * ids.shape[1] / w).astype(int)
        cells = torch.from_numpy(ids[rows][:, cols].astype(np.int64))
        onehot = F.one_hot(cells, K + 1)[..., :K].permute(2, 0, 1)  # ignore -> zeros
        bonus[i] = weight * onehot.float()
    return bonus
