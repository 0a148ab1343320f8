"""Training samples for the fusion, from the reviewed frames alone.

A :class:`FusionSample` is a reviewed frame ``index`` (its correction is the target) seen
through a propagation context built *without* it:

- ``"pair"``: reviewed frame i carried through the flow chain to reviewed frame j (both
  directions; j among the ``neighbours`` nearest reviewed frames on that side of i, at most
  ``max_gap`` frames apart): one side, distance |i - j|;
- ``"both"``: j seen from its nearest reviewed frames on both sides, as if j were not
  reviewed (what an unreviewed frame between two corrections sees); its one-sided versions
  are ``"pair"`` samples already (the ends of a video look like those);
- ``"round_trip"``: reviewed frame i carried to i + d and back to i (d in ``round_trips``, both
  directions): drift without a second reviewed frame, the only pairs when one frame is
  reviewed. Measured on the real clip, a round trip of d frames each way drifts less than a
  one-way chain of d frames (errors partly cancel), so its ``gap`` counts 2 d.

``gap`` (the longest side distance) orders samples from short gaps to long for the curriculum.
Samples come one at a time (each holds full-size maps: a few MB), in the order pairs, both
sides, round trips. numpy + the flow module only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from napari_cliprl.flow.propagation import FlowSource, PropagationConfig, carry, propagate
from napari_cliprl.fusion.context import FrameContext, frame_context, one_side_context

KINDS = ("pair", "both", "round_trip")


@dataclass(frozen=True)
class FusionSample:
    """A reviewed frame ``index`` and a context built without it (see the module doc)."""

    index: int
    context: FrameContext
    kind: str  # one of KINDS
    gap: int  # longest side distance in frames (round trips: 2 d)


@dataclass(frozen=True)
class SampleConfig:
    """Which fusion samples to build from the reviewed frames."""

    max_gap: int = 64  # pairs of reviewed frames at most this many frames apart
    neighbours: int = 4  # pairs with this many nearest reviewed frames per side, at most
    round_trips: tuple[int, ...] = (1, 2, 4, 8)  # round-trip distances d (empty: none)
    round_trips_when: int = 1  # build round trips only with at most this many reviewed frames
    both_sides: bool = True  # "both" samples (a reviewed frame between two others)


def fusion_samples(
    anchors: Mapping[int, np.ndarray],
    flows: FlowSource,
    config: SampleConfig | None = None,
    propagation: PropagationConfig | None = None,
) -> Iterator[FusionSample]:
    """Every sample of ``config`` for the reviewed frames ``anchors`` (index -> H x W uint8
    labels), one at a time."""
    config = config or SampleConfig()
    keys = sorted(int(i) for i in anchors)
    labels = {i: np.asarray(anchors[i]) for i in keys}
    yield from pair_samples(labels, flows, config.max_gap, propagation, config.neighbours)
    if config.both_sides:
        yield from both_side_samples(labels, flows, config.max_gap, propagation)
    if config.round_trips and len(keys) <= config.round_trips_when:
        yield from round_trip_samples(labels, flows, config.round_trips, propagation)


def pair_samples(
    anchors: Mapping[int, np.ndarray],
    flows: FlowSource,
    max_gap: int,
    propagation: PropagationConfig | None = None,
    neighbours: int = 4,
) -> Iterator[FusionSample]:
    """Each reviewed frame carried to its ``neighbours`` nearest reviewed frames on each side
    that are at most ``max_gap`` frames away."""
    keys = sorted(anchors)
    for i in keys:
        for direction, targets in (
            ("forward", [j for j in keys if i < j <= i + max_gap][:neighbours]),
            ("backward", [j for j in keys if i - max_gap <= j < i][-neighbours:]),
        ):
            for j, side in carry(i, anchors[i], targets, flows, propagation):
                context = one_side_context(j, side, anchors[i], direction)
                yield FusionSample(j, context, "pair", abs(j - i))


def both_side_samples(
    anchors: Mapping[int, np.ndarray],
    flows: FlowSource,
    max_gap: int,
    propagation: PropagationConfig | None = None,
) -> Iterator[FusionSample]:
    """Each reviewed frame with reviewed frames on both sides (at most ``max_gap`` frames
    away), seen from its two nearest."""
    keys = sorted(anchors)
    for pos in range(1, len(keys) - 1):
        before, j, after = keys[pos - 1], keys[pos], keys[pos + 1]
        if max(j - before, after - j) > max_gap:
            continue
        others = {before: anchors[before], after: anchors[after]}
        context = frame_context(propagate(others, [j], flows, propagation)[j], others)
        if context is not None:
            yield FusionSample(j, context, "both", max(j - before, after - j))


def round_trip_samples(
    anchors: Mapping[int, np.ndarray],
    flows: FlowSource,
    distances: Sequence[int],
    propagation: PropagationConfig | None = None,
) -> Iterator[FusionSample]:
    """Each reviewed frame i carried to i +- d and back (d in ``distances``)."""
    n = len(flows)
    for i, labels in anchors.items():
        for d in sorted({int(d) for d in distances if d > 0}):
            for step, direction in ((+1, "backward"), (-1, "forward")):
                j = i + step * d
                if not 0 <= j < n:
                    continue
                ((_, there),) = carry(i, labels, [j], flows, propagation)
                away = np.where(there.labels == 255, labels, there.labels)
                ((_, back),) = carry(j, away, [i], flows, propagation)
                context = one_side_context(i, back, labels, direction)
                yield FusionSample(i, context, "round_trip", 2 * d)
