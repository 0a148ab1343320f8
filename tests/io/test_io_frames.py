"""Frame folders, image reading quirks, atomic writes and open_frames dispatch."""

from pathlib import Path

import numpy as np
import pytest
from _io_builders import random_frames, save_png, write_video
from PIL import Image

from napari_cliprl.io import (
    DataError,
    FrameFolder,
    FrameSource,
    VideoReader,
    open_frames,
)
from napari_cliprl.io._png import read_image, read_mask, write_png


def test_frame_folder_natural_order_names_and_shape(tmp_path: Path) -> None:
    frames = random_frames(3, 5, 7)
    for i, name in zip(range(3), ("frame2", "frame10", "frame1")):
        save_png(tmp_path / f"{name}.png", frames[i])
    src = FrameFolder(tmp_path)
    assert isinstance(src, FrameSource)
    assert src.frame_names == ["frame1", "frame2", "frame10"]
    assert src.shape == (3, 5, 7, 3) and src.fps is None
    np.testing.assert_array_equal(src[0], frames[2])
    np.testing.assert_array_equal(src[-1], frames[1])
    with pytest.raises(IndexError, match="out of range"):
        src[3]


def test_grayscale_and_rgba_frames_become_rgb(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0] = 200
    save_png(tmp_path / "a.png", gray)
    save_png(tmp_path / "b.png", rgba)
    with FrameFolder(tmp_path) as src:
        a, b = src[0], src[1]
    assert a.shape == b.shape == (3, 4, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a[..., 1], gray)
    assert (b[..., 0] == 200).all()


def test_read_mask_takes_channel_0_of_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 30, 99
    assert (read_mask(save_png(tmp_path / "m.png", rgb)) == 30).all()


def test_corrupt_and_truncated_png_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="corrupt.png"):
        read_image(bad)
    good = save_png(tmp_path / "trunc.png", random_frames(1, 64, 64)[0])
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match=r"trunc.png: .*(corrupt|truncated)"):
        read_mask(good)


def test_missing_and_empty_folders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope: no such file or folder"):
        open_frames(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: folder holds no image files") as e:
        open_frames(tmp_path / "empty")
    assert "\n" not in str(e.value)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type"):
        open_frames(tmp_path / "x.txt")


def test_write_png_is_atomic_and_refuses_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.png"
    write_png(target, np.ones((2, 2), np.uint8))
    with pytest.raises(FileExistsError, match="a.png: already exists"):
        write_png(target, np.zeros((2, 2), np.uint8))
    assert (read_mask(target) == 1).all()
    write_png(target, np.zeros((2, 2), np.uint8), overwrite=True)
    assert (read_mask(target) == 0).all()
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]  # no temp files left


def test_open_frames_dispatch(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", 5)
    assert isinstance(open_frames(tmp_path / "clip.avi"), VideoReader)
    save_png(tmp_path / "seq" / "left_frames" / "frame000.png", random_frames(1, 4, 4)[0])
    assert open_frames(tmp_path / "seq").frame_names == ["frame000"]
    cholec = tmp_path / "cholec"
    save_png(cholec / "frame_9_endo.png", random_frames(1, 4, 4)[0])
    save_png(cholec / "frame_10_endo.png", random_frames(1, 4, 4)[0])
    save_png(cholec / "frame_9_endo_watershed_mask.png", np.zeros((4, 4), np.uint8))
    assert open_frames(cholec).frame_names == ["frame_9", "frame_10"]
    plain = tmp_path / "plain"
    Image.fromarray(random_frames(1, 4, 4)[0]).save(plain.mkdir() or plain / "x.jpg")
    assert open_frames(plain).shape == (1, 4, 4, 3)
