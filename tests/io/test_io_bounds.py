"""Sizes from headers are bounded before memory is committed (images and videos)."""

from pathlib import Path

import pytest
from _hostile import assert_one_line, lying_avi, png_bomb
from PIL import ImageFile

from napari_cliprl.io import DataError, FrameFolder, VideoReader, open_frames
from napari_cliprl.io._png import image_size, read_image, read_mask, read_rgb_label
from napari_cliprl.limits import LimitError


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to decode pixels fails the test: refusal must come from the header."""

    def load(self, *args, **kwargs):
        raise AssertionError(f"decoded {self.size} pixels of a file that should be refused")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.mark.parametrize("read", [read_image, read_mask, read_rgb_label])
def test_png_bomb_is_refused_from_its_header(tmp_path: Path, no_decoding, read) -> None:
    bomb = png_bomb(tmp_path / "bomb.png", 10000, 9000)  # 90 M pixels, ~88 KB on disk
    assert bomb.stat().st_size < 200_000
    with pytest.raises(DataError) as info:
        read(bomb)
    assert isinstance(info.value, LimitError)
    assert_one_line(str(info.value), "bomb.png", "90,000,000", "CLIPRL_MAX_IMAGE_PIXELS")


def test_decompression_bomb_error_is_one_line(tmp_path: Path) -> None:
    bomb = png_bomb(tmp_path / "huge.png", 16000, 15000, full=False)  # PIL itself refuses
    for read in (read_image, image_size):
        with pytest.raises(DataError) as info:
            read(bomb)
        assert_one_line(str(info.value), "huge.png", "240,000,000", "over the limit")


def test_image_side_is_bounded(tmp_path: Path, no_decoding) -> None:
    strip = png_bomb(tmp_path / "strip.png", 20000, 1, full=False)
    with pytest.raises(DataError) as info:
        read_mask(strip)
    assert_one_line(str(info.value), "strip.png", "20000 x 1", "CLIPRL_MAX_IMAGE_SIDE")


def test_frame_folder_shape_is_bounded_before_any_frame_is_read(tmp_path: Path) -> None:
    png_bomb(tmp_path / "frames" / "frame000.png", 10000, 9000, full=False)
    source = FrameFolder(tmp_path / "frames")
    with pytest.raises(DataError, match="frame000.png: pixel count of this 10000 x 9000 image"):
        source.shape  # noqa: B018


def test_a_raised_limit_lets_a_big_image_through(tmp_path: Path, monkeypatch) -> None:
    bomb = png_bomb(tmp_path / "big.png", 10000, 9000, full=False)
    monkeypatch.setenv("CLIPRL_MAX_IMAGE_PIXELS", "100000000")
    assert image_size(bomb) == (9000, 10000)
    monkeypatch.setenv("CLIPRL_MAX_IMAGE_PIXELS", "1000")  # lowering is ignored, never off
    with pytest.raises(DataError, match="over the limit of 40,000,000"):
        image_size(bomb)


def test_video_claiming_a_billion_frames_is_refused(tmp_path: Path) -> None:
    video = lying_avi(tmp_path / "lie.avi", frames=6, claim=10**9)
    with pytest.raises(DataError) as info:
        open_frames(video)
    assert_one_line(str(info.value), "lie.avi", "1,000,000,000", "CLIPRL_MAX_FRAMES")


def test_frame_names_of_a_video_are_never_built_whole(tmp_path: Path, monkeypatch) -> None:
    video = lying_avi(tmp_path / "lie.avi", frames=6, claim=10**9)
    monkeypatch.setenv("CLIPRL_MAX_FRAMES", str(2 * 10**9))  # let the header through
    with VideoReader(video) as reader:
        names = reader.frame_names
        assert len(names) == 10**9 and not isinstance(names, list)
        assert names[0] == "frame000000000" and names[-1] == "frame999999999"
        assert names[2:4] == ["frame000000002", "frame000000003"]
        assert reader[5].shape == (32, 48, 3)
        with pytest.raises(DataError, match="lie.avi: frame 10 could not be decoded"):
            reader[10]


def test_video_frame_size_from_the_header_is_bounded(tmp_path: Path) -> None:
    video = lying_avi(tmp_path / "wide.avi", size=(16000, 16000))
    with pytest.raises(DataError) as info:
        VideoReader(video)
    assert_one_line(str(info.value), "wide.avi", "16000 x 16000", "CLIPRL_MAX_IMAGE_PIXELS")


def test_short_video_names_keep_three_digits(tmp_path: Path) -> None:
    video = lying_avi(tmp_path / "ok.avi", frames=3)
    with VideoReader(video) as reader:
        assert list(reader.frame_names) == ["frame000", "frame001", "frame002"]
        assert reader.frame_names == ["frame000", "frame001", "frame002"]
