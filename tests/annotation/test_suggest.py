import numpy as np
import pytest

from napari_cliprl.annotation.suggest import (
    distance_to_reviewed,
    frame_uncertainty,
    next_suggested_frame,
    pick_frames,
    rank_frames,
)


def test_uncertainty_adds_step_disagreement():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0] = 1  # 4 of 16 pixels changed between step 0 and the last step
    assert frame_uncertainty([0.9, 0.5]) == pytest.approx(0.5)
    assert frame_uncertainty([0.9, 0.5], [a, b]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="at least one step"):
        frame_uncertainty([])


def test_distance_to_reviewed():
    reviewed = np.array([0, 0, 1, 0, 0, 0, 1, 0], bool)
    np.testing.assert_array_equal(distance_to_reviewed(reviewed), [2, 1, 0, 1, 2, 1, 0, 1])
    assert np.isinf(distance_to_reviewed(np.zeros(3, bool))).all()


def test_ranking_skips_reviewed_and_unpredicted_frames():
    unc = np.array([0.1, 0.9, np.nan, 0.5, 0.9])
    reviewed = np.array([0, 0, 0, 1, 0], bool)
    # frame 2 was never predicted, frame 3 is reviewed; ties (1 and 4) go to the lower index
    assert rank_frames(unc, reviewed) == [1, 4, 0]
    assert next_suggested_frame(unc, np.ones(5, bool)) is None


def test_suggestions_change_after_review():
    unc = np.array([0.50, 0.52, 0.51, 0.10, 0.10, 0.10, 0.10, 0.49])
    reviewed = np.zeros(8, bool)
    first = next_suggested_frame(unc, reviewed, distance_weight=2.0)
    assert first == 1
    reviewed[first] = True
    # the neighbours of a reviewed frame lose priority to an equally unsure distant frame
    assert next_suggested_frame(unc, reviewed, distance_weight=2.0) == 7
    assert next_suggested_frame(unc, reviewed, distance_weight=0.0) == 2


def test_pick_frames_spreads_out():
    unc = np.array([0.5, 0.52, 0.51, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.45])
    assert pick_frames(unc, 3, distance_weight=0.0) == [1, 2, 0]
    picks = pick_frames(unc, 3, distance_weight=3.0)
    assert picks[0] == 1 and 9 in picks
    # asking for more frames than exist picks each frame once
    assert sorted(pick_frames(unc, 20)) == list(range(len(unc)))
