"""Chain propagation of reviewed label maps: sides, confidence, borders, anchors and cost."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic import TranslationFlows, shifted, square_mask, translated_clip

from napari_cliprl.flow import (
    FlowCache,
    FlowConfig,
    Propagated,
    Side,
    carry,
    flow_both,
    flow_nearest,
    iter_propagate,
    propagate,
)

SIZE = (120, 160)
BOX = (40, 50, 30, 40)
INNER = (slice(16, -16), slice(24, -24))


def test_chain_over_several_frames_of_a_moving_pattern_lands_on_the_moved_mask() -> None:
    step = (1, 2)  # per frame: after 6 frames the content moved by (6, 12)
    frames = translated_clip(7, SIZE, step)
    cache = FlowCache(frames, config=FlowConfig(max_side=0))
    mask = square_mask(SIZE, BOX, value=2)
    result = propagate({0: mask}, range(1, 7), cache)
    for t in range(1, 7):
        side = result[t].forward
        assert side.distance == t and side.anchor == 0 and result[t].backward is None
        expected = shifted(mask, t * step[0], t * step[1])
        np.testing.assert_array_equal(side.labels[INNER], expected[INNER], err_msg=f"frame {t}")


def test_each_side_carries_its_own_anchor_and_nearest_picks_the_closer() -> None:
    flows = TranslationFlows(7, SIZE, (0, 3), working_size=(60, 80))
    first, last = square_mask(SIZE, BOX, value=1), square_mask(SIZE, BOX, value=2)
    result = propagate({0: first, 6: last}, range(1, 6), flows)
    for t in range(1, 6):
        fwd, bwd = result[t].forward, result[t].backward
        assert (fwd.anchor, fwd.distance, bwd.anchor, bwd.distance) == (0, t, 6, 6 - t)
        np.testing.assert_array_equal(fwd.labels[INNER], shifted(first, 0, 3 * t)[INNER])
        np.testing.assert_array_equal(bwd.labels[INNER], shifted(last, 0, -3 * (6 - t))[INNER])
    assert 1 in flow_nearest(result[2]) and 2 not in flow_nearest(result[2])
    assert 2 in flow_nearest(result[4]) and 1 not in flow_nearest(result[4])
    assert 1 in flow_nearest(result[3]), "a tie goes to the earlier anchor"


def test_confidence_falls_with_temporal_distance() -> None:
    flows = TranslationFlows(9, SIZE, (0, 0))
    mask = square_mask(SIZE, BOX)
    result = propagate({0: mask, 8: mask}, range(1, 8), flows)
    fwd = [result[t].forward.conf.mean() for t in range(1, 8)]
    bwd = [result[t].backward.conf.mean() for t in range(1, 8)]
    assert all(a > b for a, b in zip(fwd, fwd[1:])), fwd
    assert all(a < b for a, b in zip(bwd, bwd[1:])), bwd


def test_pixels_whose_source_left_the_frame_get_255_and_zero_confidence() -> None:
    flows = TranslationFlows(5, SIZE, (0, 5), working_size=(60, 80))  # content moves right
    mask = np.ones(SIZE, np.uint8)
    side = propagate({0: mask}, [4], flows)[4].forward
    assert (side.labels[:, :20] == 255).all() and (side.conf[:, :20] == 0).all()
    assert (side.labels[:, 21:] == 1).all() and (side.conf[:, 24:] > 0.5).all()


def test_ignore_pixels_of_the_anchor_stay_unknown() -> None:
    flows = TranslationFlows(3, SIZE, (2, 0))
    mask = square_mask(SIZE, BOX, value=255)
    side = propagate({0: mask}, [2], flows)[2].forward
    box = shifted(mask, 4, 0, fill=0) == 255
    assert (side.labels[box] == 255).all() and (side.conf[box] == 0).all()


def test_propagation_never_changes_an_anchor_frame() -> None:
    flows = TranslationFlows(8, SIZE, (1, 1))
    rng = np.random.default_rng(0)
    anchors = {i: rng.integers(0, 5, SIZE).astype(np.uint8) for i in (0, 3, 7)}
    before = {i: a.copy() for i, a in anchors.items()}
    result = propagate(anchors, range(8), flows)
    for i, labels in before.items():
        np.testing.assert_array_equal(anchors[i], labels)  # inputs untouched
        for side in (result[i].forward, result[i].backward):
            np.testing.assert_array_equal(side.labels, labels)
            assert side.distance == 0 and (side.conf == 1).all()
        np.testing.assert_array_equal(flow_both(result[i]), labels)
        np.testing.assert_array_equal(flow_nearest(result[i]), labels)


@pytest.mark.parametrize("gap", [8, 32])
def test_a_gap_costs_linear_flow_reads(gap: int) -> None:
    flows = TranslationFlows(gap + 1, (24, 32), (0, 1))
    mask = np.ones((24, 32), np.uint8)
    result = propagate({0: mask, gap: mask}, range(1, gap), flows)
    assert sorted(result) == list(range(1, gap))
    assert set(flows.reads) == set(range(gap))
    assert max(flows.reads.values()) <= 2, "each pair is read once per side"


def test_flow_both_takes_the_more_confident_side_per_pixel() -> None:
    ones, twos = np.ones((2, 3), np.uint8), np.full((2, 3), 2, np.uint8)
    conf_a = np.array([[0.9, 0.1, 0.5], [0.0, 1.0, 0.2]], np.float32)
    conf_b = np.array([[0.2, 0.8, 0.5], [0.3, 0.9, 0.7]], np.float32)
    p = Propagated(4, Side(ones, conf_a, 2, 2), Side(twos, conf_b, 3, 7))
    np.testing.assert_array_equal(flow_both(p), [[1, 2, 1], [2, 1, 2]])
    np.testing.assert_array_equal(flow_nearest(p), ones)
    with pytest.raises(ValueError, match="no anchor"):
        flow_nearest(Propagated(4, None, None))


def test_iteration_is_in_order_reports_progress_and_stops_on_request() -> None:
    flows = TranslationFlows(12, (24, 32), (0, 1))
    anchors = {3: np.ones((24, 32), np.uint8), 8: np.zeros((24, 32), np.uint8)}
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int, message: str) -> None:
        seen.append((done, total))

    order = [t for t, _ in iter_propagate(anchors, [11, 0, 5, 9, 1], flows, progress=progress)]
    assert order == [0, 1, 5, 9, 11]
    # sides: 0, 1 backward only; 5 both; 9, 11 forward only
    assert seen == [(d, 6) for d in range(1, 7)]
    stopped = list(iter_propagate(anchors, range(12), flows, should_stop=lambda: True))
    assert stopped == []


def test_bad_anchors_and_indices_are_refused_with_the_reason() -> None:
    flows = TranslationFlows(4, (24, 32), (0, 1))
    with pytest.raises(ValueError, match="at least one anchor"):
        propagate({}, [1], flows)
    with pytest.raises(ValueError, match="24x32 uint8"):
        propagate({0: np.ones((24, 31), np.uint8)}, [1], flows)
    with pytest.raises(IndexError, match="out of range"):
        propagate({0: np.ones((24, 32), np.uint8)}, [4], flows)


def test_sub_pixel_motion_accumulates_instead_of_rounding_away_each_frame() -> None:
    # 0.4 px per frame: resampling the labels at every frame would never move them
    flows = TranslationFlows(6, SIZE, (0, 0.4), working_size=(60, 80))
    mask = square_mask(SIZE, BOX, value=4)
    side = propagate({0: mask}, [5], flows)[5].forward
    np.testing.assert_array_equal(side.labels[INNER], shifted(mask, 0, 2)[INNER])


def test_carry_streams_one_side_like_propagate_and_refuses_both_sides() -> None:
    flows = TranslationFlows(8, SIZE, (1, -2), working_size=(60, 80))
    mask = square_mask(SIZE, BOX, value=5)
    carried = dict(carry(7, mask, [2, 5], flows))
    assert list(carried) == [5, 2], "nearest first"
    result = propagate({7: mask}, [2, 5], flows)
    for t, side in carried.items():
        assert side.distance == 7 - t and result[t].forward is None
        np.testing.assert_array_equal(side.labels, result[t].backward.labels)
        np.testing.assert_array_equal(side.conf, result[t].backward.conf)
    with pytest.raises(ValueError, match="both sides"):
        list(carry(4, mask, [2, 6], flows))
