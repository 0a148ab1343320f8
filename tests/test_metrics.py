"""Metrics against numbers computed by hand (see the arithmetic in each comment)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from napari_cliprl.metrics import confusion_matrix, evaluate_frames, pixels_to_change

# Four 2 x 4 frames, K = 3 (0 background, 1, 2).
GT1 = np.array([[0, 1, 1, 2], [0, 1, 1, 2]])
PRED1 = np.array([[0, 1, 1, 1], [0, 0, 1, 2]])
GT2 = np.zeros((2, 4), int)  # background only ...
PRED2 = np.array([[0, 0, 0, 0], [0, 0, 0, 2]])  # ... with a false-positive class 2 pixel
GT3 = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])
PRED3 = np.zeros((2, 4), int)  # empty prediction on a non-empty ground truth
GT4 = np.zeros((2, 4), int)
PRED4 = np.zeros((2, 4), int)  # background only, nothing predicted: skipped everywhere

PREDS = [PRED1, PRED2, PRED3, PRED4]
GTS = [GT1, GT2, GT3, GT4]


def test_confusion_matrix_by_hand() -> None:
    # rows gt, cols pred. GT1 row 0: (0,0) ok and (1,0) ok -> [2, 0, 0];
    # gt 1 at (0,1)(0,2)(1,1)(1,2) predicted 1,1,0,1 -> [1, 3, 0];
    # gt 2 at (0,3)(1,3) predicted 1,2 -> [0, 1, 1].
    cm = confusion_matrix(PRED1, GT1, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[2, 0, 0], [1, 3, 0], [0, 1, 1]])


def test_confusion_matrix_matches_naive_count() -> None:
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 5, (30, 40))
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, 5, (30, 40))
    naive = np.zeros((5, 5), np.int64)
    for g, p in zip(gt.ravel(), pred.ravel()):
        if g != 255:
            naive[g, p] += 1
    np.testing.assert_array_equal(confusion_matrix(pred, gt, 5), naive)


def test_evaluate_frames_by_hand() -> None:
    m = evaluate_frames(PREDS, GTS, num_classes=3)
    # Frame 1: class 1 I=3 (0,1)(0,2)(1,2), U=4+4-3=5 -> 0.6; class 2 I=1, U=2+1-1=2 -> 0.5.
    #          challenge = iou = (0.6 + 0.5) / 2 = 0.55.
    # Frame 2: no foreground in gt -> skipped by challenge; iou over {2} (pred only) = 0.
    # Frame 3: class 1 in gt, nothing predicted -> challenge 0, iou 0.
    # Frame 4: nothing anywhere -> skipped by both.
    assert m["challenge_iou"] == pytest.approx((0.55 + 0.0) / 2)  # 0.275
    assert m["iou"] == pytest.approx((0.55 + 0.0 + 0.0) / 3)  # 0.18333
    # mcIoU: class 1 seen in frames 1 (0.6) and 3 (0) -> 0.3; class 2 in frames 1 (0.5) and
    # 2 (0) -> 0.25; mean 0.275.
    assert m["mciou"] == pytest.approx((0.3 + 0.25) / 2)
    # Dataset confusion: class 1 gt 4+2=6, pred 4, I 3 -> 3/7; class 2 gt 2, pred 1+1=2, I 1
    # -> 1/3; background gt 2+8+6+8=24, pred 3+7+8+8=26, I 2+7+6+8=23 -> 23/27.
    assert m["miou"] == pytest.approx((3 / 7 + 1 / 3) / 2)  # 8/21, background excluded
    assert m["per_class_iou"] == pytest.approx([23 / 27, 3 / 7, 1 / 3])
    # Dice = 2I / (gt + pred): 46/50, 6/10, 2/4.
    assert m["per_class_dice"] == pytest.approx([0.92, 0.6, 0.5])


def test_empty_prediction_on_foreground_scores_zero() -> None:
    m = evaluate_frames([PRED3], [GT3], num_classes=3)
    assert m["challenge_iou"] == 0.0
    assert m["iou"] == 0.0
    assert m["mciou"] == 0.0
    assert m["miou"] == 0.0  # class 1: I 0 / U 2; class 2 never occurs (NaN, not averaged)
    assert math.isnan(m["per_class_iou"][2])


def test_background_only_frames_are_skipped() -> None:
    m = evaluate_frames([PRED4, PRED4], [GT4, GT4], num_classes=3)
    for key in ("challenge_iou", "iou", "mciou", "miou"):
        assert math.isnan(m[key]), key
    assert m["per_class_iou"][0] == 1.0  # background is still reported per class
    # Adding a perfect foreground frame: the background-only frames change nothing.
    m = evaluate_frames([PRED4, GT1, PRED4], [GT4, GT1, GT4], num_classes=3)
    assert m["challenge_iou"] == m["iou"] == m["mciou"] == m["miou"] == 1.0


def test_ignored_pixels_are_not_counted() -> None:
    gt = np.array([[1, 1, 255, 255], [0, 0, 0, 0]])
    pred = np.array([[1, 0, 1, 1], [0, 0, 0, 2]])
    m = evaluate_frames([pred], [gt], num_classes=3)
    # Counted pixels only: class 1 gt 2, pred 1 (the two predictions on 255 are dropped),
    # I 1 -> 1/2. Were they counted, U would be 4 and IoU 1/4.
    assert m["per_class_iou"][1] == pytest.approx(0.5)
    assert m["challenge_iou"] == pytest.approx(0.5)  # class 1 only in gt
    # iou: classes {1, 2}; class 2 is a false positive (I 0) -> (0.5 + 0) / 2.
    assert m["iou"] == pytest.approx(0.25)
    # 6 counted pixels, wrong at (0,1) and (1,3) -> 2/6.
    assert pixels_to_change([pred], [gt]) == pytest.approx(2 / 6)


def test_class_only_in_prediction() -> None:
    gt = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 1, 3, 0]])
    m = evaluate_frames([pred], [gt], num_classes=4)
    # Class 3: gt 0, pred 1 -> IoU 0, Dice 0; class 2 never occurs -> NaN.
    assert m["per_class_iou"][3] == 0.0
    assert m["per_class_dice"][3] == 0.0
    assert math.isnan(m["per_class_iou"][2]) and math.isnan(m["per_class_dice"][2])
    assert m["challenge_iou"] == 1.0  # only class 1 is in the gt, and it is perfect
    assert m["iou"] == pytest.approx(0.5)  # classes {1, 3}: (1 + 0) / 2
    assert m["mciou"] == pytest.approx(0.5)  # class 1 -> 1, class 3 -> 0
    assert m["miou"] == pytest.approx(0.5)  # classes 1 and 3 (2 is NaN)


def test_pixels_to_change_by_hand() -> None:
    # Wrong pixels: frame 1 at (0,3) and (1,1) = 2; frame 2: 1; frame 3: 2; frame 4: 0.
    assert pixels_to_change(PREDS, GTS) == pytest.approx(5 / 32)
    assert pixels_to_change(GTS, GTS) == 0.0
    assert math.isnan(pixels_to_change([PRED1], [np.full((2, 4), 255)]))


def test_stack_and_list_inputs_agree_and_are_json_friendly() -> None:
    from_list = evaluate_frames(PREDS, GTS, 3)
    from_stack = evaluate_frames(np.stack(PREDS).astype(np.uint8), np.stack(GTS), 3)
    assert json.dumps(from_list) == json.dumps(from_stack)
    assert set(from_list) == {
        "challenge_iou",
        "iou",
        "mciou",
        "miou",
        "per_class_iou",
        "per_class_dice",
    }
    for key in ("challenge_iou", "iou", "mciou", "miou"):
        assert type(from_list[key]) is float
    assert all(type(v) is float for v in from_list["per_class_iou"])
    assert len(from_list["per_class_dice"]) == 3


def test_no_frames_gives_nan() -> None:
    m = evaluate_frames([], [], 3)
    assert math.isnan(m["challenge_iou"]) and math.isnan(m["miou"])
    assert len(m["per_class_iou"]) == 3


def test_bad_input_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="2 predicted frames but 1"):
        evaluate_frames([PRED1, PRED2], [GT1], 3)
    with pytest.raises(ValueError, match=r"frame 0: prediction shape \(2, 3\)"):
        evaluate_frames([PRED1[:, :3]], [GT1], 3)
    with pytest.raises(ValueError, match=r"prediction has class ids outside 0\.\.2.*\[7\]"):
        confusion_matrix(np.full((2, 2), 7), np.zeros((2, 2), int), 3)
    with pytest.raises(ValueError, match="ground truth has class ids"):
        confusion_matrix(np.zeros((2, 2), int), np.full((2, 2), 9), 3)
