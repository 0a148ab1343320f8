"""EndoVis 2017: every raw-layout quirk, the three tasks, test ground truth, crop."""

from pathlib import Path

import numpy as np
import pytest
from _io_builders import expected_2017, make_endovis2017_seq, random_frames, save_png
from PIL import Image

from napari_cliprl.io import DataError, read_endovis2017_sequence, read_labeled
from napari_cliprl.io.endovis2017 import (
    instrument_type,
    uncrop_labels,
    write_endovis2017_ground_truth,
)
from napari_cliprl.schemas import ENDOVIS2017_TYPE


@pytest.mark.parametrize(
    ("folder", "type_id"),
    [
        ("Maryland_Bipolar_Forceps_labels", 1),
        ("Left_Bipolar_Forceps", 1),
        ("Bipolar_Forceps_labels", 1),
        ("Right_Prograsp_Forceps_labels", 2),
        ("Prograsp_Forceps", 2),
        ("Large_Needle_Driver_Left_labels", 3),
        ("Left_Large_Needle_Driver_labels", 3),
        ("Right_Vessel_Sealer", 4),
        ("Left_Grasping_Retractor_labels", 5),
        ("Monopolar_Curved_Scissors_labels", 6),
        ("Other_labels", 7),
        ("other labels", 7),
    ],
)
def test_instrument_type_by_substring(folder: str, type_id: int) -> None:
    assert instrument_type(folder) == type_id


@pytest.mark.parametrize("task", ["parts", "type", "binary"])
def test_training_layout_merges_like_ternausnet(tmp_path: Path, task: str) -> None:
    seq = read_endovis2017_sequence(make_endovis2017_seq(tmp_path), task)
    assert seq.schema.name == f"endovis2017-{task}" and len(seq) == 2
    for i in range(2):
        np.testing.assert_array_equal(seq.labels(i), expected_2017(task))


def test_other_is_background_for_parts_and_binary(tmp_path: Path) -> None:
    seq_dir = make_endovis2017_seq(tmp_path)
    other_only = (3, 0)  # a pixel where only the Other mask (value 40) is set
    assert read_endovis2017_sequence(seq_dir, "parts").labels(0)[other_only] == 0
    assert read_endovis2017_sequence(seq_dir, "binary").labels(0)[other_only] == 0
    assert read_endovis2017_sequence(seq_dir, "type").labels(0)[other_only] == 7


def test_rgb_mask_reads_channel_0(tmp_path: Path) -> None:
    # Prograsp_Forceps masks are stored RGB with channel 1 = half the value: channel 0 counts.
    seq = read_endovis2017_sequence(make_endovis2017_seq(tmp_path), "parts")
    assert seq.labels(0)[4, 0] == 1 and seq.labels(0)[3, 2] == 2


def test_unknown_folder_and_missing_mask_are_errors(tmp_path: Path) -> None:
    seq_dir = make_endovis2017_seq(tmp_path)
    (seq_dir / "ground_truth" / "Other_labels" / "frame001.png").unlink()
    with pytest.raises(DataError, match=r"Other_labels/frame001.png: mask missing"):
        read_endovis2017_sequence(seq_dir, "type")
    (seq_dir / "ground_truth" / "Mystery_Tool").mkdir()
    with pytest.raises(DataError, match="Mystery_Tool: instrument folder matches no known type"):
        read_endovis2017_sequence(seq_dir, "type")
    with pytest.raises(DataError, match="unknown EndoVis 2017 task"):
        read_endovis2017_sequence(seq_dir, "semantic")


def test_frames_without_any_mask_are_left_out(tmp_path: Path) -> None:
    seq_dir = make_endovis2017_seq(tmp_path)
    save_png(seq_dir / "left_frames" / "frame225.png", random_frames(1, 6, 8)[0])
    seq = read_endovis2017_sequence(seq_dir, "parts")
    assert seq.frame_names == ["frame000", "frame001"]


def test_crop_frames_and_labels(tmp_path: Path) -> None:
    seq_dir = tmp_path / "instrument_dataset_3"
    frame = random_frames(1, 1080, 1920)[0]
    mask = np.zeros((1080, 1920), np.uint8)
    mask[28, 320], mask[1051, 1599], mask[27, 320] = 30, 20, 10
    save_png(seq_dir / "left_frames" / "frame000.png", frame)
    save_png(seq_dir / "ground_truth" / "Vessel_Sealer_labels" / "frame000.png", mask)
    seq = read_endovis2017_sequence(seq_dir, "parts", crop=True)
    assert seq.frames.shape == (1, 1024, 1280, 3)
    np.testing.assert_array_equal(seq.frames[0], frame[28:1052, 320:1600])
    labels = seq.labels(0)
    assert labels.shape == (1024, 1280) and labels[0, 0] == 3 and labels[-1, -1] == 2
    assert labels.sum() == 5  # the pixel above the crop window is gone
    full = uncrop_labels(labels)
    assert full.shape == (1080, 1920) and full[28, 320] == 3 and full[27, 320] == 0


def test_crop_of_small_frames_is_an_error(tmp_path: Path) -> None:
    seq = read_endovis2017_sequence(make_endovis2017_seq(tmp_path), "parts", crop=True)
    with pytest.raises(DataError, match="too small for a 1024x1280 crop"):
        seq.frames[0]


@pytest.mark.parametrize(
    ("task", "values"),
    [("parts", [0, 30, 100, 255]), ("type", list(range(8))), ("binary", [0, 255])],
)
def test_official_test_ground_truth_round_trip(tmp_path: Path, task: str, values: list) -> None:
    seq_dir = tmp_path / "instrument_dataset_9"
    ids = np.arange(len(values), dtype=np.uint8).repeat(3).reshape(1, -1)
    save_png(seq_dir / "left_frames" / "frame000.png", random_frames(1, *ids.shape)[0])
    write_endovis2017_ground_truth(seq_dir / "ground_truth", {"frame000": ids}, task)
    folder = {"parts": "PartsSegmentation", "type": "TypeSegmentation", "binary": "Binary"}[task]
    written = next((seq_dir / "ground_truth").glob(f"{folder}*/frame000.png"))
    raw = np.asarray(Image.open(written))
    assert raw.ndim == 2 and sorted(np.unique(raw).tolist()) == values
    seq = read_labeled(seq_dir, f"endovis2017-{task}")
    np.testing.assert_array_equal(seq.labels(0), ids)


def test_test_ground_truth_with_unexpected_value(tmp_path: Path) -> None:
    seq_dir = tmp_path / "instrument_dataset_10"
    save_png(seq_dir / "left_frames" / "frame000.png", random_frames(1, 2, 2)[0])
    save_png(seq_dir / "PartsSegmentation" / "frame000.png", np.full((2, 2), 77, np.uint8))
    seq = read_labeled(seq_dir, "parts")
    with pytest.raises(DataError, match=r"frame000.png: 4 pixels have values in no class.*77"):
        seq.labels(0)
    assert ENDOVIS2017_TYPE.num_classes == 8
