"""Helpers of the fusion tests: exact synthetic flows, contexts and a tiny fusion model."""

from __future__ import annotations

import numpy as np

from napari_cliprl.flow.dense import FlowPair
from napari_cliprl.fusion.context import FrameContext, SideMaps

K = 13  # classes of the CholecSeg8k schema
SIZE = (48, 80)  # frame size (H, W)


class ShiftFlows:
    """A FlowSource whose content moves by ``step`` (dy, dx) pixels per frame, exactly;
    ``reads`` counts ``pair()`` calls."""

    def __init__(self, n: int, size: tuple[int, int] = SIZE, step: tuple[int, int] = (0, 2)):
        self.n, self.frame_size, self.working_size, self.step = n, size, size, step
        self.reads = 0

    def __len__(self) -> int:
        return self.n

    def pair(self, t: int) -> FlowPair:
        assert 0 <= t < self.n - 1, t
        self.reads += 1
        forward = np.empty((*self.frame_size, 2), np.float32)
        forward[..., 0], forward[..., 1] = self.step[1], self.step[0]
        return FlowPair(forward, -forward)


def stripes(size: tuple[int, int] = SIZE, offset: int = 0, seed: int = 0) -> np.ndarray:
    """H x W uint8 labels: vertical stripes of classes 1..5, shifted right by ``offset``."""
    rng = np.random.default_rng(seed)
    widths = rng.integers(6, 14, size=32)
    columns = np.repeat(np.arange(len(widths)) % 5 + 1, widths)
    columns = np.concatenate([np.full(64, 1), columns])[64 - offset :][: size[1]]
    return np.repeat(columns[None], size[0], axis=0).astype(np.uint8)


def side(labels: np.ndarray, conf: float | np.ndarray = 0.8, distance: int = 3, anchor: int = 0):
    conf = np.broadcast_to(np.float32(conf), labels.shape).astype(np.float32)
    return SideMaps(labels, conf, distance, anchor)


def context(forward=None, backward=None, index: int = 5) -> FrameContext:
    return FrameContext(index, forward, backward)


def fusion_model(input_size: tuple[int, int] = (64, 96)):
    """An untrained tiny-test model with video fusion (fusion head, side actions)."""
    from napari_cliprl.model.build import add_fusion, build_model

    model = build_model("tiny-test", schema="cholecseg8k", input_size=input_size)
    add_fusion(model)
    return model
