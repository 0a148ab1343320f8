"""The synthetic sample clip: deterministic, consistent labels, moving instruments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_cliprl.io.sample import (
    SyntheticClip,
    sample_clip,
    synthetic_clip,
    write_sample_sequence,
)
from napari_cliprl.schemas import ENDOVIS2018

INSTRUMENT = (1, 2, 3)  # shaft, clasper, wrist


def _saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation of ... x 3 uint8 pixels, in [0, 1]."""
    rgb = rgb.astype(np.float32)
    top, low = rgb.max(-1), rgb.min(-1)
    return (top - low) / np.maximum(top, 1)


@pytest.fixture(scope="module")
def clip() -> SyntheticClip:
    return synthetic_clip()


def test_shapes_dtypes_and_schema(clip: SyntheticClip) -> None:
    assert clip.frames.shape == (16, 256, 320, 3) and clip.frames.dtype == np.uint8
    assert clip.labels.shape == (16, 256, 320) and clip.labels.dtype == np.uint8
    assert clip.schema is ENDOVIS2018
    small = synthetic_clip(n_frames=3, size=(64, 80), seed=1)
    assert small.frames.shape == (3, 64, 80, 3) and small.labels.shape == (3, 64, 80)


def test_classes_drawn_are_schema_classes(clip: SyntheticClip) -> None:
    drawn = set(np.unique(clip.labels).tolist())
    assert drawn <= set(range(clip.schema.num_classes))
    # The default clip shows tissue, the three instrument parts, kidney and small intestine.
    assert drawn == {0, 1, 2, 3, 4, 10}


def test_deterministic_and_prefix_stable(clip: SyntheticClip) -> None:
    again = synthetic_clip()
    np.testing.assert_array_equal(clip.frames, again.frames)
    np.testing.assert_array_equal(clip.labels, again.labels)
    short = synthetic_clip(n_frames=4)  # frame k does not depend on the clip length
    np.testing.assert_array_equal(short.frames, clip.frames[:4])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_instruments_visible_in_every_frame(seed: int) -> None:
    labels = synthetic_clip(seed=seed).labels
    for k, frame in enumerate(labels):
        for part in INSTRUMENT:
            assert (frame == part).sum() > 100, f"seed {seed} frame {k}: class {part} missing"


def test_labels_match_pixels(clip: SyntheticClip) -> None:
    sat = _saturation(clip.frames)
    tools = np.isin(clip.labels, INSTRUMENT)
    tissue = ~tools
    # Instruments are grey metal, tissue is pink/red: the saturation separates them.
    assert np.median(sat[tools]) < 0.12
    assert np.median(sat[tissue]) > 0.4
    assert np.percentile(sat[tools], 95) < 0.25
    red = clip.frames[..., 0].astype(int) - clip.frames[..., 1]
    assert np.median(red[tissue]) > 40  # tissue is red-dominant
    # The kidney is darker than the surrounding tissue.
    kidney = clip.labels == 4
    background = clip.labels == 0
    assert clip.frames[kidney].mean() < clip.frames[background].mean()


def test_motion_between_frames(clip: SyntheticClip) -> None:
    for k in range(len(clip.labels) - 1):
        tools_now = np.isin(clip.labels[k], INSTRUMENT)
        tools_next = np.isin(clip.labels[k + 1], INSTRUMENT)
        assert (tools_now != tools_next).sum() > 200, f"instruments static at frame {k}"
    assert (clip.labels[0] != clip.labels[-1]).mean() > 0.05
    brightness = clip.frames.reshape(len(clip.frames), -1).mean(axis=1)
    assert brightness.max() - brightness.min() > 5  # the lighting drifts


def test_seeds_give_different_scenes(clip: SyntheticClip) -> None:
    other = synthetic_clip(seed=1)
    assert (other.labels[0] != clip.labels[0]).mean() > 0.2
    assert np.abs(other.frames[0].astype(int) - clip.frames[0]).mean() > 10


def test_sample_clip_is_cached_and_safe_to_edit() -> None:
    first = sample_clip()
    np.testing.assert_array_equal(first.labels, synthetic_clip().labels)
    first.labels[:] = 0  # an annotator paints over the sample
    assert sample_clip().labels.any()  # the cache is untouched


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="n_frames"):
        synthetic_clip(n_frames=0)
    with pytest.raises(ValueError, match="size"):
        synthetic_clip(size=(8, 8))


def test_write_sample_sequence(tmp_path) -> None:
    folder = write_sample_sequence(tmp_path / "seq_1", n_frames=3, seed=2)
    clip = synthetic_clip(n_frames=3, seed=2)
    assert sorted(p.name for p in (folder / "left_frames").iterdir()) == [
        "frame000.png",
        "frame001.png",
        "frame002.png",
    ]
    for k in range(3):
        frame = np.asarray(Image.open(folder / "left_frames" / f"frame{k:03d}.png"))
        np.testing.assert_array_equal(frame, clip.frames[k])
        rgb = np.asarray(Image.open(folder / "labels" / f"frame{k:03d}.png").convert("RGB"))
        np.testing.assert_array_equal(ENDOVIS2018.rgb_to_ids(rgb), clip.labels[k])
    labels_json = json.loads((folder / "labels.json").read_text())
    assert labels_json == ENDOVIS2018.labels_json()
    with pytest.raises(FileExistsError, match="frame000"):
        write_sample_sequence(folder, n_frames=3, seed=2)
    write_sample_sequence(folder, n_frames=3, seed=3, overwrite=True)


def test_written_sequence_reads_back(tmp_path) -> None:
    from napari_cliprl.io import read_labeled

    folder = write_sample_sequence(tmp_path / "seq_1", n_frames=2)
    seq = read_labeled(folder)
    clip = synthetic_clip(n_frames=2)
    assert len(seq) == 2
    np.testing.assert_array_equal(seq.labels(1), clip.labels[1])
    np.testing.assert_array_equal(seq.frames[1], clip.frames[1])
