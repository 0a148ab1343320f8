"""Dense optical flow between consecutive frames (OpenCV DIS) and its forward-backward check.

Conventions (every function of ``napari_cliprl.flow`` follows them):

- A flow is an ``h x w x 2`` float32 array at the *working size* ``(h, w)``, in working-size
  pixels; channel 0 is the x (column) displacement, channel 1 the y (row) displacement
  (OpenCV's order).
- ``forward`` of pair ``t`` maps frame ``t`` to frame ``t + 1``: the content at pixel ``p`` of
  frame ``t`` is at ``p + forward[p]`` in frame ``t + 1``. ``backward`` of pair ``t`` maps
  frame ``t + 1`` to frame ``t`` in the same way.
- Pixel centres are at integer coordinates; a frame covers ``[-0.5, w - 0.5] x [-0.5, h - 0.5]``.
  Up- and down-sampling use OpenCV's half-pixel-centre convention (``cv2.resize``).
- Frames are ``H x W x 3`` uint8 RGB at full size; flow is estimated on grey frames resized to
  the working size (:func:`working_size`).

OpenCV's thread count is process-wide; :func:`compute_pair` sets it to ``FlowConfig.threads``
(one by default: the cores are shared with the model).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass(frozen=True)
class FlowConfig:
    """How flow is estimated; ``preset`` and the working size are part of a flow cache's
    identity (a cache made with other values is recomputed), ``threads`` is not."""

    preset: str = "medium"
    """DIS preset: "ultrafast", "fast" or "medium" (slowest, most accurate). Default medium at
    640 px: on the real 854 x 480 clip of benchmarks/flow.py it needs at most 0.14 points more
    pixels changed than medium at full size for about half its cost, and fewer than every
    faster setting measured (benchmarks/results/flow.json, ``settings``)."""
    max_side: int = 640
    """Working size: frames are shrunk so that their longer side is at most this many pixels
    (aspect kept, never enlarged); 0 keeps the full frame size."""
    threads: int = 1
    """OpenCV threads while estimating flow (process-wide setting)."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {self.preset!r}; choose one of {list(PRESETS)}")
        if self.max_side < 0 or self.threads < 1:
            raise ValueError(
                f"max_side must be >= 0 and threads >= 1, got {self.max_side} and {self.threads}"
            )


@dataclass(frozen=True)
class FlowPair:
    """The two flows of frames ``t`` and ``t + 1`` (each h x w x 2 float32, see module doc)."""

    forward: np.ndarray
    backward: np.ndarray


def working_size(frame_size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(h, w) at which flow is estimated for frames of ``frame_size`` (H, W)."""
    H, W = (int(s) for s in frame_size)
    if max_side <= 0 or max(H, W) <= max_side:
        return H, W
    scale = max_side / max(H, W)
    return max(1, round(H * scale)), max(1, round(W * scale))


def to_grey(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H x W x 3 uint8 RGB (or H x W grey) -> h x w uint8 grey at ``size`` (h, w)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    h, w = size
    if grey.shape != (h, w):
        grey = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(grey)


_local = threading.local()


def _dis(preset: str, size: tuple[int, ...]) -> cv2.DISOpticalFlow:
    """One DIS estimator per thread, preset and frame size (OpenCV objects are not shared
    across threads, and one used at alternating sizes reallocates its buffers every call)."""
    cache = _local.__dict__.setdefault("dis", {})
    key = (preset, *size)
    if key not in cache:
        cache[key] = cv2.DISOpticalFlow_create(PRESETS[preset])
    return cache[key]


def estimate_flow(grey_a: np.ndarray, grey_b: np.ndarray, config: FlowConfig) -> np.ndarray:
    """DIS flow from ``grey_a`` to ``grey_b`` (h x w uint8 each) -> h x w x 2 float32."""
    if cv2.getNumThreads() != config.threads:
        cv2.setNumThreads(config.threads)
    flow = _dis(config.preset, grey_a.shape).calc(grey_a, grey_b, None)
    return np.ascontiguousarray(flow, dtype=np.float32)


def compute_pair(grey_a: np.ndarray, grey_b: np.ndarray, config: FlowConfig) -> FlowPair:
    """Forward (a -> b) and backward (b -> a) flow of two consecutive grey frames."""
    return FlowPair(estimate_flow(grey_a, grey_b, config), estimate_flow(grey_b, grey_a, config))


def pixel_grid(size: tuple[int, int]) -> np.ndarray:
    """h x w x 2 float32 pixel coordinates (x, y) of a frame of ``size`` (h, w)."""
    h, w = size
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.dstack([xs, ys])


def inside(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """h x w bool: whether points (h x w x 2, x then y) fall inside a frame of ``size``."""
    h, w = size
    x, y = points[..., 0], points[..., 1]
    return (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


def sample(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``field`` (h x w or h x w x c float32) at ``points`` (x, y).

    Points outside the frame take the nearest border value (callers mask them out).
    """
    return cv2.remap(
        field, points, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def consistency(
    flow: np.ndarray,
    reverse: np.ndarray,
    grid: np.ndarray | None = None,
    *,
    relative: float = 0.01,
    absolute: float = 0.5,
) -> np.ndarray:
    """Forward-backward confidence of ``flow`` (h x w float32 in [0, 1]).

    ``flow`` maps frame A to B and ``reverse`` maps B to A (both h x w x 2). Following a pixel
    ``p`` of A to ``q = p + flow[p]`` and back by ``reverse[q]`` should return to ``p``; with
    the round-trip error ``e = |flow[p] + reverse[q]|`` (working-size pixels) the confidence is
    ``exp(-e^2 / (relative * (|flow[p]|^2 + |reverse[q]|^2) + absolute))``, i.e. 1/e at the
    occlusion threshold of Sundaram et al. (ECCV 2010). Where ``q`` leaves the frame the
    confidence is 0. Low values mark occlusions, disocclusions and objects entering or leaving.
    """
    size = flow.shape[:2]
    grid = pixel_grid(size) if grid is None else grid
    target = grid + flow
    back = sample(reverse, target)
    error = _squared_norm(flow + back)
    scale = relative * (_squared_norm(flow) + _squared_norm(back)) + absolute
    conf = np.exp(-error / scale, dtype=np.float32)
    conf *= inside(target, size)
    return conf


def _squared_norm(vectors: np.ndarray) -> np.ndarray:
    """h x w squared lengths of h x w x 2 vectors (faster than a sum over the last axis)."""
    x, y = vectors[..., 0], vectors[..., 1]
    return x * x + y * y
