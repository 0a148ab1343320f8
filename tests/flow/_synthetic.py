"""Synthetic frames and flows for the flow tests: textures with known motion."""

from __future__ import annotations

import cv2
import numpy as np

from napari_cliprl.flow.dense import FlowPair


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """H x W x 3 uint8: smooth random texture (blurred noise), trackable by DIS."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    grey = (40 + 180 * smooth).astype(np.uint8)
    return np.dstack([grey, grey, (grey // 2 + 60).astype(np.uint8)])


def translated_clip(
    n: int, size: tuple[int, int], step: tuple[int, int], seed: int = 0
) -> list[np.ndarray]:
    """n frames of one large texture seen through a window moving by -step: the content of
    frame t appears shifted by ``t * step`` (dy, dx) in frame t; new content enters at the
    borders (no wrap-around)."""
    H, W = size
    dy, dx = step
    margin_y, margin_x = abs(dy) * n + 8, abs(dx) * n + 8
    big = texture(H + 2 * margin_y, W + 2 * margin_x, seed)
    return [
        np.ascontiguousarray(
            big[
                margin_y - t * dy : margin_y - t * dy + H, margin_x - t * dx : margin_x - t * dx + W
            ]
        )
        for t in range(n)
    ]


def square_mask(size: tuple[int, int], box: tuple[int, int, int, int], value: int = 1):
    """H x W uint8 zeros with ``value`` in box (top, left, height, width)."""
    mask = np.zeros(size, np.uint8)
    top, left, h, w = box
    mask[top : top + h, left : left + w] = value
    return mask


def shifted(labels: np.ndarray, dy: int, dx: int, fill: int = 255) -> np.ndarray:
    """``labels`` moved by (dy, dx), ``fill`` where nothing moved in."""
    out = np.full_like(labels, fill)
    H, W = labels.shape
    src = labels[max(0, -dy) : H - max(0, dy), max(0, -dx) : W - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


class TranslationFlows:
    """A FlowSource of exact, constant flows: content moves by ``step`` (dy, dx) full-size
    pixels per frame. ``reads`` counts ``pair()`` calls per pair."""

    def __init__(
        self,
        n: int,
        frame_size: tuple[int, int],
        step: tuple[float, float],
        working_size: tuple[int, int] | None = None,
    ) -> None:
        self.n = n
        self.frame_size = frame_size
        self.working_size = working_size or frame_size
        self.step = step
        self.reads: dict[int, int] = {}

    def __len__(self) -> int:
        return self.n

    def pair(self, t: int) -> FlowPair:
        assert 0 <= t < self.n - 1, t
        self.reads[t] = self.reads.get(t, 0) + 1
        (H, W), (h, w) = self.frame_size, self.working_size
        dy, dx = self.step
        forward = np.empty((h, w, 2), np.float32)
        forward[..., 0], forward[..., 1] = dx * w / W, dy * h / H
        return FlowPair(forward, -forward)
