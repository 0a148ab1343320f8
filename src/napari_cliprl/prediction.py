"""One frame's prediction: the label map of every step, computed on first access.

Made by :class:`~napari_cliprl.predictor.Predictor`; see its module doc for frames with a
propagation context (video fusion).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from napari_cliprl.fusion.context import FrameContext
from napari_cliprl.fusion.edges import snap_to_edges
from napari_cliprl.fusion.grid import fused_labels
from napari_cliprl.model.inference import upsample_labels
from napari_cliprl.steps import ZERO_SHOT_KEY


class Prediction:
    """The result for one frame (label maps are H x W uint8 class ids at the frame's size).

    zero_shot: CLIP zero-shot labels.  steps: T + 1 maps, 0 = decoder, t = after agent step t.
    labels: the last step's map.  entropy: mean per-pixel entropy (nats) of each step.
    actions: T maps of action ids on the stride-4 grid (H/4 x W/4 of the model input).
    probabilities: K x h x w float32 softmax of the last step (model resolution), if asked.
    cached: whether the backbone features came from the cache.
    seconds: wall time of "backbone", "decoder", "agent" (and "labels" once computed).
    context: the frame's propagation context, or None; with one, every step's map is the
    fused full-resolution map (``fusion.grid.fused_labels`` with that step's side gains),
    snapped to the frame's edges, and ``propagated`` is the raw flow result.

    Label maps are upsampled from the model's logits on first access and then kept, so a
    caller that reads only ``labels`` pays for one full-resolution map, not T + 2.
    """

    def __init__(
        self,
        *,
        logits: list[torch.Tensor],  # T + 1 tensors K x h x w (CPU, float32)
        zero_shot_logits: torch.Tensor,  # K x h' x w' (patch grid)
        size: tuple[int, int],
        entropy: list[float],
        actions: list[np.ndarray] | None = None,
        probabilities: np.ndarray | None = None,
        cached: bool = False,
        seconds: dict[str, float] | None = None,
        gains: list[torch.Tensor] | None = None,  # T + 1 tensors 2 x h x w with a context
        context: FrameContext | None = None,
        frame: np.ndarray | None = None,  # H x W x 3 uint8, for edge snapping
        snap: tuple[int, float] = (0, 1e-3),  # guided filter (radius, eps); radius 0: off
    ) -> None:
        self._logits = logits
        self._gains = gains
        self.context = context
        self._frame = frame
        self._snap = snap
        self._zero_shot_logits = zero_shot_logits
        self._maps: dict[int | str, np.ndarray] = {}
        self.size = (int(size[0]), int(size[1]))
        self.entropy = entropy
        self.actions = actions or []
        self.probabilities = probabilities
        self.cached = cached
        self.seconds = seconds or {}

    def _map(self, which: int | str) -> np.ndarray:
        if which not in self._maps:
            start = time.perf_counter()
            if which == ZERO_SHOT_KEY:
                self._maps[which] = upsample_labels(self._zero_shot_logits, self.size)
            elif self.context is None or self._gains is None:
                self._maps[which] = upsample_labels(self._logits[which], self.size)
            else:
                self._maps[which] = self._fused(int(which))
            self.seconds["labels"] = self.seconds.get("labels", 0.0) + time.perf_counter() - start
        return self._maps[which]

    def _fused(self, t: int) -> np.ndarray:
        if t > 0 and self._same_as_before(t):  # the agent kept every cell: the same map
            return self._map(t - 1)
        labels = fused_labels(self._logits[t], self._gains[t], self.context, self.size)  # type: ignore[index]
        radius, eps = self._snap
        if radius > 0 and self._frame is not None:
            labels = snap_to_edges(labels, self._frame, radius, eps)
        return labels

    def _same_as_before(self, t: int) -> bool:
        gains = self._gains or []
        return torch.equal(self._logits[t], self._logits[t - 1]) and torch.equal(
            gains[t], gains[t - 1]
        )

    @property
    def propagated(self) -> np.ndarray | None:
        """H x W uint8: the labels carried from reviewed frames (per pixel the more confident
        side), or None without a context."""
        return None if self.context is None else self.context.propagated

    @property
    def zero_shot(self) -> np.ndarray:
        return self._map(ZERO_SHOT_KEY)

    @property
    def steps(self) -> list[np.ndarray]:
        return [self._map(t) for t in range(len(self._logits))]

    @property
    def labels(self) -> np.ndarray:
        """The last step's labels (what a user exports)."""
        return self._map(len(self._logits) - 1)

    @property
    def num_steps(self) -> int:
        """T: the number of agent steps."""
        return len(self._logits) - 1

    def __repr__(self) -> str:
        return f"Prediction(size={self.size}, steps={self.num_steps}, cached={self.cached})"
