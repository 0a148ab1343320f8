"""CholecSeg8k clips: watershed codes to schema ids, 255 ignore kept; real data."""

from pathlib import Path

import numpy as np
import pytest
from _io_builders import random_frames, save_png

from napari_cliprl.io import DataError, open_frames, read_cholecseg8k_sequence, read_labeled
from napari_cliprl.schemas import CHOLECSEG8K

CODES = [c.pixel_value for c in CHOLECSEG8K.classes]


def make_clip(root: Path, n: int = 2) -> tuple[Path, np.ndarray, np.ndarray]:
    frames = random_frames(n, 4, 14)
    values = np.array([[CODES + [255]] * 4] * n, dtype=np.uint8)  # every code + ignore
    for i in range(n):
        save_png(root / f"frame_{80 + i}_endo.png", frames[i])
        save_png(root / f"frame_{80 + i}_endo_watershed_mask.png", np.stack([values[i]] * 3, -1))
        save_png(root / f"frame_{80 + i}_endo_color_mask.png", frames[i])
    return root, frames, values


def test_codes_map_to_ids_and_ignore_stays(tmp_path: Path) -> None:
    clip, frames, _ = make_clip(tmp_path)
    seq = read_labeled(clip)
    assert seq.schema is CHOLECSEG8K and seq.frame_names == ["frame_80", "frame_81"]
    labels = seq.labels(1)
    assert labels[0].tolist() == list(range(13)) + [255]
    np.testing.assert_array_equal(seq.frames[1], frames[1])


def test_unknown_code_and_missing_masks(tmp_path: Path) -> None:
    clip, _, _ = make_clip(tmp_path)
    save_png(clip / "frame_80_endo_watershed_mask.png", np.full((4, 14, 3), 99, np.uint8))
    with pytest.raises(DataError, match=r"frame_80_endo_watershed_mask.png: .*\[99\]"):
        read_cholecseg8k_sequence(clip).labels(0)
    for f in clip.glob("*watershed*"):
        f.unlink()
    with pytest.raises(DataError, match="no watershed masks"):
        read_cholecseg8k_sequence(clip)


def test_real_cholecseg8k_sequence(cholec_seq: Path) -> None:
    seq = read_cholecseg8k_sequence(cholec_seq)
    assert len(seq) == 72 and seq.frame_names[0] == "frame_561"
    frame, labels = seq[0]
    assert frame.shape == (480, 854, 3) and frame.dtype == np.uint8
    assert labels.shape == (480, 854) and labels.dtype == np.uint8
    present = set(np.unique(labels).tolist())
    assert present <= set(range(13)) | {255} and CHOLECSEG8K.class_id("liver") in present
    assert open_frames(cholec_seq).shape == (72, 480, 854, 3)
