"""Fusion training samples: each reviewed frame seen through labels carried from the others."""

from __future__ import annotations

import numpy as np
from _fusion_data import SIZE, ShiftFlows, stripes

from napari_cliprl.fusion.samples import SampleConfig, fusion_samples

STEP = 2  # content moves right by 2 pixels per frame


def _anchors(indices):
    return {i: stripes(offset=STEP * i) for i in indices}


def test_pairs_carry_each_reviewed_frame_onto_the_others_with_their_labels_as_targets():
    anchors = _anchors([2, 6, 9])
    samples = list(fusion_samples(anchors, ShiftFlows(12), SampleConfig(round_trips=(1, 2))))
    pairs = [s for s in samples if s.kind == "pair"]
    got = sorted((s.context.forward or s.context.backward).anchor for s in pairs)
    assert sorted((s.index, s.gap) for s in pairs) == [
        (2, 4), (2, 7), (6, 3), (6, 4), (9, 3), (9, 7)
    ]  # fmt: skip
    assert got == [2, 2, 6, 6, 9, 9]
    assert not [s for s in samples if s.kind == "round_trip"]  # several reviewed frames
    for s in pairs:
        carried = s.context.forward or s.context.backward
        source = carried.anchor
        assert (s.context.forward is None) == (source > s.index)  # direction in time
        moved = carried.conf > 0
        assert moved.mean() > 0.6
        np.testing.assert_array_equal(carried.labels[moved], anchors[s.index][moved])
        # where the content entered the frame: the source's own labels (copy), no confidence
        np.testing.assert_array_equal(carried.labels[~moved], anchors[source][~moved])


def test_a_frame_between_two_reviewed_frames_is_seen_from_both():
    anchors = _anchors([2, 6, 9])
    (both,) = [s for s in fusion_samples(anchors, ShiftFlows(12)) if s.kind == "both"]
    assert both.index == 6 and both.gap == 4
    fwd, bwd = both.context.forward, both.context.backward
    assert (fwd.anchor, fwd.distance, bwd.anchor, bwd.distance) == (2, 4, 9, 3)
    for carried in (fwd, bwd):
        moved = carried.conf > 0
        np.testing.assert_array_equal(carried.labels[moved], anchors[6][moved])


def test_one_reviewed_frame_gives_round_trips_back_onto_itself():
    anchors = _anchors([5])
    samples = list(fusion_samples(anchors, ShiftFlows(12), SampleConfig(round_trips=(1, 2, 8))))
    assert sorted((s.kind, s.index, s.gap) for s in samples) == [
        ("round_trip", 5, 2),
        ("round_trip", 5, 2),
        ("round_trip", 5, 4),
        ("round_trip", 5, 4),
    ]  # fmt: skip (d = 8 leaves the 12-frame video on both sides)
    for s in samples:
        carried = s.context.forward or s.context.backward
        np.testing.assert_array_equal(carried.labels, anchors[5])  # exact flows: no drift
    assert not list(fusion_samples(anchors, ShiftFlows(12), SampleConfig(round_trips=())))


def test_pairs_only_reach_the_nearest_reviewed_frames():
    anchors = _anchors([0, 2, 4, 6, 8])
    config = SampleConfig(neighbours=2, round_trips=())
    pairs = [s for s in fusion_samples(anchors, ShiftFlows(12), config) if s.kind == "pair"]
    sources = sorted(((s.context.forward or s.context.backward).anchor, s.index) for s in pairs)
    assert [j for i, j in sources if i == 4] == [0, 2, 6, 8]
    assert [j for i, j in sources if i == 0] == [2, 4]


def test_pairs_farther_apart_than_max_gap_are_left_out():
    anchors = _anchors([0, 3, 11])
    samples = list(fusion_samples(anchors, ShiftFlows(12), SampleConfig(max_gap=5)))
    assert sorted((s.index, s.kind) for s in samples) == [(0, "pair"), (3, "pair")]
    assert all(s.context.size == SIZE for s in samples)
