"""What a frame knows from the reviewed frames around it: its propagation context.

numpy only. A :class:`FrameContext` holds, for one unreviewed frame, the label maps of the
nearest reviewed frames (anchors) before and after it carried to it by optical flow
(:mod:`napari_cliprl.flow`), each a :class:`SideMaps` at full frame size:

- ``labels``: H x W uint8 class ids. Where the flow chain leaves the frame (the flow module
  returns 255 there) the anchor's own label at that pixel is used instead (the copy-nearest
  fallback every flow baseline uses), with confidence 0; 255 remains only where the anchor
  itself is unlabelled (ignore).
- ``conf``: H x W float32 in [0, 1], the flow module's confidence (falls with distance and
  forward-backward inconsistency; 0 at filled pixels).
- ``distance``: frames between the anchor and this frame; ``anchor``: its index.

``propagated`` is the raw flow result shown as the session's ``propagated`` layer: per pixel the
side with the higher confidence (``flow.flow_both``, ties -> the earlier anchor), filled as above.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from napari_cliprl.flow.propagation import Propagated, Side

IGNORE = 255


@dataclass(frozen=True)
class SideMaps:
    """One anchor's labels carried to a frame (see the module doc); arrays are H x W."""

    labels: np.ndarray  # uint8 class ids, filled where the flow left the frame
    conf: np.ndarray  # float32 in [0, 1]
    distance: int  # frames between the anchor and the frame
    anchor: int  # the anchor's frame index


@dataclass(frozen=True)
class FrameContext:
    """Frame ``index`` seen from its nearest anchors (``None``: no anchor on that side)."""

    index: int
    forward: SideMaps | None  # from the anchor before ``index``, carried forward in time
    backward: SideMaps | None  # from the anchor after ``index``, carried backward in time

    @property
    def sides(self) -> tuple[SideMaps | None, SideMaps | None]:
        return self.forward, self.backward

    @property
    def size(self) -> tuple[int, int]:
        side = self.forward or self.backward
        assert side is not None, "a FrameContext has at least one side"
        return tuple(side.labels.shape)  # type: ignore[return-value]

    @property
    def propagated(self) -> np.ndarray:
        """H x W uint8: per pixel the more confident side (ties -> the earlier anchor)."""
        fwd, bwd = self.forward, self.backward
        if fwd is None or bwd is None:
            return (fwd or bwd).labels  # type: ignore[union-attr]
        return np.where(bwd.conf > fwd.conf, bwd.labels, fwd.labels)

    def only(self, which: str) -> FrameContext:
        """This context with one side dropped: ``"forward"`` keeps only the forward side,
        ``"backward"`` only the backward one (the ends of a video look like this)."""
        if which == "forward":
            return FrameContext(self.index, self.forward, None)
        if which == "backward":
            return FrameContext(self.index, None, self.backward)
        raise ValueError(f"which must be 'forward' or 'backward', got {which!r}")


def side_maps(side: Side, anchor_labels: np.ndarray) -> SideMaps:
    """A flow :class:`~napari_cliprl.flow.Side` with its unknown pixels filled by the anchor's
    own labels there (``anchor_labels``: H x W uint8, the anchor's reviewed labels)."""
    labels = side.labels
    unknown = labels == IGNORE
    if unknown.any():
        labels = np.where(unknown, anchor_labels, labels)
    return SideMaps(labels, side.conf, int(side.distance), int(side.anchor))


def frame_context(propagated: Propagated, anchors: Mapping[int, np.ndarray]) -> FrameContext | None:
    """The context of a :class:`~napari_cliprl.flow.Propagated` frame; None without sides."""
    sides = [
        None if s is None else side_maps(s, anchors[s.anchor])
        for s in (propagated.forward, propagated.backward)
    ]
    if sides[0] is None and sides[1] is None:
        return None
    return FrameContext(int(propagated.index), sides[0], sides[1])


def one_side_context(
    index: int, side: Side, anchor_labels: np.ndarray, direction: str
) -> FrameContext:
    """A context with a single side carried ``direction`` ("forward": from an earlier anchor,
    "backward": from a later one)."""
    maps = side_maps(side, anchor_labels)
    if direction == "forward":
        return FrameContext(int(index), maps, None)
    if direction == "backward":
        return FrameContext(int(index), None, maps)
    raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
