"""Carry reviewed label maps (anchors) to other frames through chains of consecutive flows.

Inputs: ``anchors`` maps frame index -> H x W uint8 class ids (255 = ignore / no opinion) of
frames a person reviewed; ``flows`` is a :class:`FlowSource` (e.g. a ``FlowCache``) giving the
:class:`~napari_cliprl.flow.dense.FlowPair` of frames ``t, t + 1`` at the working size.

For an unreviewed frame ``t`` the nearest anchor before it is carried *forward* in time and
the nearest anchor after it *backward*; each side is a :class:`Side`: H x W uint8 labels and an
H x W float32 confidence in [0, 1] at full frame size, plus the temporal distance in frames.

Method: per side, a displacement field D (working size, h x w x 2, x then y) from frame ``t``
to the anchor is composed one pair at a time while walking away from the anchor,
``D_next(p) = step(p) + D(p + step(p))`` (bilinear), so a gap of n frames costs n pair reads
and n compositions. The label map is sampled once, nearest-neighbour, at ``p + D(p)`` scaled to
full size: errors do not compound from repeated resampling. The confidence is composed the same
way: ``C_next(p) = decay * consistency(p) * C(p + step(p))``, where ``consistency`` is the
forward-backward check of the step (:func:`~napari_cliprl.flow.dense.consistency`), so it falls
with distance and wherever the chain crosses an occlusion. A pixel whose source leaves the
frame, or lands on an ignore (255) pixel of the anchor, gets label 255 and confidence 0. An
anchor frame is returned unchanged (a copy, confidence 1, distance 0) on both sides.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from napari_cliprl.flow.dense import FlowPair, consistency, pixel_grid, sample

IGNORE = 255

Progress = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]


class FlowSource(Protocol):
    """Consecutive flows of a T-frame sequence: ``len()`` frames, ``pair(t)`` for t < T - 1."""

    frame_size: tuple[int, int]  # (H, W) of the frames and label maps
    working_size: tuple[int, int]  # (h, w) of the flows

    def __len__(self) -> int: ...

    def pair(self, t: int) -> FlowPair: ...


@dataclass(frozen=True)
class PropagationConfig:
    """How confidence is composed along a chain of flows."""

    decay: float = 0.95
    """Confidence factor per frame of temporal distance (1 = distance alone costs nothing)."""
    relative: float = 0.01
    """Forward-backward tolerance relative to the squared flow magnitudes."""
    absolute: float = 0.5
    """Forward-backward tolerance in squared working-size pixels."""


@dataclass(frozen=True)
class Side:
    """One anchor's labels carried to a frame (arrays at full frame size)."""

    labels: np.ndarray  # H x W uint8 class ids, 255 where there is no source
    conf: np.ndarray  # H x W float32 in [0, 1], 0 where labels is 255
    distance: int  # frames between the anchor and this frame
    anchor: int  # the anchor's frame index


@dataclass(frozen=True)
class Propagated:
    """Frame ``index`` as seen from the nearest anchors before and after it (None: no anchor)."""

    index: int
    forward: Side | None  # carried forward in time from the anchor before ``index``
    backward: Side | None  # carried backward in time from the anchor after ``index``


def iter_propagate(
    anchors: Mapping[int, np.ndarray],
    indices: Iterable[int],
    flows: FlowSource,
    config: PropagationConfig | None = None,
    *,
    progress: Progress | None = None,
    should_stop: StopCheck | None = None,
) -> Iterator[tuple[int, Propagated]]:
    """Yield ``(t, Propagated)`` for every frame of ``indices``, in increasing order.

    Frames are handled gap by gap (between consecutive anchors): the backward side of a gap is
    computed first and held, then the forward walk yields each frame; memory is one gap's
    backward sides (5 bytes per pixel per frame: about 2 MB per 854 x 480 frame; use
    :func:`carry` to stream one side). Every gap costs at most one read of each of its pairs
    per side.
    ``progress(done, total, message)`` is called per side computed (``total`` counts both
    sides of every frame that has them); ``should_stop()`` is polled as often and ends the
    iteration early.
    """
    config = config or PropagationConfig()
    anchors = {int(t): np.asarray(labels) for t, labels in anchors.items()}
    gaps = _gaps(_check_anchors(anchors, flows), indices, len(flows))
    total = sum(len(frames) * ((b is not None) + (a is not None)) for b, a, frames in gaps)
    done = 0

    def tick(t: int) -> bool:
        """Count one side of frame ``t``; True when the caller asked to stop."""
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, f"frame {t}")
        return should_stop is not None and should_stop()

    walker = _Walker(flows, config)
    for before, after, frames in gaps:
        backward: dict[int, Side] = {}
        if after is not None:
            for t, side in walker.walk(after, anchors[after], frames, -1):
                backward[t] = side
                if tick(t):
                    return
        forward = walker.walk(before, anchors[before], frames, +1) if before is not None else None
        for t in frames:
            fwd = next(forward)[1] if forward is not None else None
            if fwd is not None and tick(t):
                return
            yield t, Propagated(t, fwd, backward.get(t))


def propagate(
    anchors: Mapping[int, np.ndarray],
    indices: Iterable[int],
    flows: FlowSource,
    config: PropagationConfig | None = None,
    *,
    progress: Progress | None = None,
    should_stop: StopCheck | None = None,
) -> dict[int, Propagated]:
    """``{t: Propagated}`` for every frame of ``indices`` (see :func:`iter_propagate`)."""
    return dict(
        iter_propagate(anchors, indices, flows, config, progress=progress, should_stop=should_stop)
    )


def carry(
    anchor: int,
    labels: np.ndarray,
    targets: Iterable[int],
    flows: FlowSource,
    config: PropagationConfig | None = None,
) -> Iterator[tuple[int, Side]]:
    """Yield ``(t, Side)``: one anchor's ``labels`` (H x W uint8) carried to each of
    ``targets``, nearest first, streaming (nothing is held between frames).

    The targets must all lie on one side of ``anchor`` (or be the anchor itself); e.g. carry a
    reviewed frame to another reviewed frame to see where propagation drifts.
    """
    anchor, wanted = int(anchor), sorted({int(t) for t in targets})
    labels = np.asarray(labels)
    _check_anchors({anchor: labels}, flows)
    for t in wanted:
        _check_index(t, len(flows))
    if wanted and wanted[0] < anchor < wanted[-1]:
        raise ValueError(
            f"targets {wanted[0]}..{wanted[-1]} lie on both sides of anchor {anchor}; "
            "carry each side separately"
        )
    direction = -1 if wanted and wanted[0] < anchor else +1
    yield from _Walker(flows, config or PropagationConfig()).walk(anchor, labels, wanted, direction)


def flow_nearest(p: Propagated) -> np.ndarray:
    """H x W uint8: the nearer anchor's carried labels (ties -> the earlier anchor)."""
    fwd, bwd = p.forward, p.backward
    if fwd is None and bwd is None:
        raise ValueError(f"frame {p.index} has no anchor on either side")
    if bwd is None or (fwd is not None and fwd.distance <= bwd.distance):
        return fwd.labels  # type: ignore[union-attr]
    return bwd.labels


def flow_both(p: Propagated) -> np.ndarray:
    """H x W uint8: per pixel, the side with the higher confidence (ties -> the earlier)."""
    fwd, bwd = p.forward, p.backward
    if fwd is None or bwd is None:
        return flow_nearest(p)
    return np.where(bwd.conf > fwd.conf, bwd.labels, fwd.labels)


def _gaps(
    keys: list[int], indices: Iterable[int], n: int
) -> list[tuple[int | None, int | None, list[int]]]:
    """``(anchor before, anchor after, frames)`` per gap in time order; frames ascending."""
    groups: dict[tuple[int | None, int | None], list[int]] = {}
    for t in sorted({_check_index(int(t), n) for t in indices}):
        groups.setdefault(_neighbours(keys, t), []).append(t)
    return [(b, a, frames) for (b, a), frames in groups.items()]


def _neighbours(keys: list[int], t: int) -> tuple[int | None, int | None]:
    """The nearest anchors at or before ``t`` and at or after it (both ``t`` for an anchor)."""
    i = bisect.bisect_right(keys, t)
    before = keys[i - 1] if i > 0 else None
    if before == t:
        return t, t
    return before, keys[i] if i < len(keys) else None


def _check_anchors(anchors: Mapping[int, np.ndarray], flows: FlowSource) -> list[int]:
    if not anchors:
        raise ValueError("propagation needs at least one anchor (reviewed) frame")
    size = tuple(flows.frame_size)
    for t, labels in anchors.items():
        _check_index(int(t), len(flows))
        if labels.shape != size or labels.dtype != np.uint8:
            raise ValueError(
                f"anchor {t}: labels must be {size[0]}x{size[1]} uint8 (the frame size), "
                f"got {'x'.join(map(str, labels.shape))} {labels.dtype}"
            )
    return sorted(int(t) for t in anchors)


def _check_index(t: int, n: int) -> int:
    if not 0 <= t < n:
        raise IndexError(f"frame index {t} out of range 0..{n - 1}")
    return t


class _Walker:
    """Composes displacement and confidence fields away from an anchor (see module doc)."""

    def __init__(self, flows: FlowSource, config: PropagationConfig) -> None:
        self.flows = flows
        self.config = config
        self.grid = pixel_grid(tuple(flows.working_size))
        self._full_grid: np.ndarray | None = None

    def walk(
        self, anchor: int, labels: np.ndarray, targets: list[int], direction: int
    ) -> Iterator[tuple[int, Side]]:
        """Yield (t, Side) for ``targets`` (on the ``direction`` side of ``anchor``), nearest
        first; ``direction`` is +1 (forward in time) or -1."""
        h, w = self.flows.working_size
        disp = np.zeros((h, w, 2), np.float32)
        conf = np.ones((h, w), np.float32)
        t = anchor
        for target in sorted(targets, key=lambda s: direction * s):
            assert (target - anchor) * direction >= 0, (anchor, target, direction)
            while t != target:
                disp, conf = self._step(disp, conf, t, direction)
                t += direction
            yield target, self._render(labels, disp, conf, abs(target - anchor), anchor)

    def _step(
        self, disp: np.ndarray, conf: np.ndarray, t: int, direction: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fields of frame ``t`` -> fields of frame ``t + direction``."""
        pair = self.flows.pair(t if direction > 0 else t - 1)
        # the step maps the new frame onto frame t; its reverse checks it
        if direction > 0:
            step, reverse = pair.backward, pair.forward
        else:
            step, reverse = pair.forward, pair.backward
        points = self.grid + step
        c = self.config
        check = consistency(step, reverse, self.grid, relative=c.relative, absolute=c.absolute)
        return step + sample(disp, points), c.decay * check * sample(conf, points)

    def _render(
        self, labels: np.ndarray, disp: np.ndarray, conf: np.ndarray, distance: int, anchor: int
    ) -> Side:
        """Sample the anchor's labels once (nearest) at full size through ``disp``."""
        H, W = self.flows.frame_size
        h, w = disp.shape[:2]
        if distance == 0:
            return Side(labels.copy(), np.ones((H, W), np.float32), 0, anchor)
        if (h, w) != (H, W):
            disp = cv2.resize(disp, (W, H), interpolation=cv2.INTER_LINEAR)
            disp *= np.array([W / w, H / h], np.float32)
            conf = cv2.resize(conf, (W, H), interpolation=cv2.INTER_LINEAR)
        if self._full_grid is None:
            self._full_grid = pixel_grid((H, W))
        points = self._full_grid + disp
        out = cv2.remap(
            labels,
            points,
            None,
            interpolation=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=IGNORE,
        )
        conf = np.clip(conf, 0.0, 1.0)
        conf[out == IGNORE] = 0.0
        return Side(out, conf.astype(np.float32, copy=False), distance, anchor)
