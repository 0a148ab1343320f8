"""DIS flow on synthetic motion: direction, units, working size and the forward-backward check."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic import shifted, square_mask, texture, translated_clip

from napari_cliprl.flow import FlowCache, FlowConfig, compute_pair, consistency, propagate
from napari_cliprl.flow.dense import to_grey, working_size

SIZE = (120, 160)


@pytest.mark.parametrize("max_side", [0, 80])
def test_translated_pair_warps_a_mask_by_exactly_the_shift(max_side: int) -> None:
    dy, dx = 4, -6
    frames = translated_clip(2, SIZE, (dy, dx))
    cache = FlowCache(frames, config=FlowConfig(max_side=max_side))
    assert cache.working_size == ((120, 160) if max_side == 0 else (60, 80))
    fwd = cache.pair(0).forward
    scale = cache.working_size[1] / SIZE[1]
    inner = fwd[10:-10, 10:-10].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [dx * scale, dy * scale], atol=0.15)

    mask = square_mask(SIZE, (40, 50, 30, 40), value=3)
    side = propagate({0: mask}, [1], cache)[1].forward
    expected = shifted(mask, dy, dx)
    inner = (slice(12, -12), slice(12, -12))
    np.testing.assert_array_equal(side.labels[inner], expected[inner])


def test_confidence_is_low_where_a_moving_object_occludes_the_background() -> None:
    background = texture(*SIZE, seed=1)
    patch = texture(40, 40, seed=2)[..., ::-1]  # other colours, other texture
    frames = []
    for left in (50, 58):  # the object moves 8 pixels right over a still background
        frame = background.copy()
        frame[40:80, left : left + 40] = patch
        frames.append(frame)
    pair = compute_pair(to_grey(frames[0], SIZE), to_grey(frames[1], SIZE), FlowConfig(max_side=0))
    conf = consistency(pair.forward, pair.backward)
    covered = conf[44:76, 92:97]  # background of frame 0 hidden under the object in frame 1
    still = np.concatenate([conf[5:30, 5:155].ravel(), conf[95:115, 5:155].ravel()])
    moving = conf[46:74, 56:84]  # inside the object
    assert covered.mean() < 0.3, covered.mean()
    assert np.median(still) > 0.9 and np.median(moving) > 0.9, (np.median(still), moving.mean())


def test_confidence_is_zero_where_the_flow_leaves_the_frame() -> None:
    frames = translated_clip(2, SIZE, (0, -6))  # content moves left: the left strip exits
    pair = compute_pair(to_grey(frames[0], SIZE), to_grey(frames[1], SIZE), FlowConfig(max_side=0))
    conf = consistency(pair.forward, pair.backward)
    assert conf[:, :5].max() == 0.0
    assert np.median(conf[:, 20:-20]) > 0.9


def test_working_size_keeps_the_aspect_and_never_enlarges() -> None:
    assert working_size((480, 854), 640) == (360, 640)
    assert working_size((1024, 1280), 640) == (512, 640)
    assert working_size((120, 160), 640) == (120, 160)
    assert working_size((480, 854), 0) == (480, 854)


def test_bad_settings_name_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="ultrafast"):
        FlowConfig(preset="slow")
    with pytest.raises(ValueError, match="threads"):
        FlowConfig(threads=0)
    with pytest.raises(ValueError, match="uint8"):
        to_grey(np.zeros((4, 4, 3), np.float32), (4, 4))
