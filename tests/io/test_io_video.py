"""VideoReader: frame count from metadata, random access, no whole-video decoding."""

from pathlib import Path

import numpy as np
import pytest
from _io_builders import write_video

from napari_cliprl.io import DataError, VideoReader, open_frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    return path, write_video(path, 60, gop=10)  # lossless ffv1, keyframe every 10 frames


def test_metadata_and_sequential_frames(clip: tuple[Path, np.ndarray]) -> None:
    path, codes = clip
    with VideoReader(path) as video:
        assert len(video) == 60 and video.shape == (60, 32, 48, 3)
        assert video.fps == pytest.approx(25.0)
        assert video.frame_names[:2] == ["frame000", "frame001"]
        frames = [video[i] for i in range(len(video))]
        assert video.seek_count == 1  # sequential access never re-seeks
    assert all(f.dtype == np.uint8 and f.shape == (32, 48, 3) for f in frames)
    np.testing.assert_array_equal([f[0, 0, 0] for f in frames], codes)


def test_random_access_equals_sequential(clip: tuple[Path, np.ndarray]) -> None:
    path, codes = clip
    with VideoReader(path) as seq_reader:
        sequential = [seq_reader[i] for i in range(60)]
    with VideoReader(path) as video:
        for i in (37, 3, 59, 0, 25, 24, 26, 10, 9, 58, -1):
            np.testing.assert_array_equal(video[i], sequential[i])
            assert video[i][5, 5, 0] == codes[i]


def test_random_access_decodes_one_gop_only(clip: tuple[Path, np.ndarray]) -> None:
    video = VideoReader(clip[0])
    assert video.decoded_count == 0  # opening decodes nothing
    video[55]
    assert video.decoded_count <= 10 + 1  # from the keyframe at 50
    video.close()
    with pytest.raises(ValueError, match="closed"):
        video[3]


def test_long_video_opens_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "long.avi"
    codes = write_video(path, 3000, h=16, w=16, gop=50)
    video = open_frames(path)
    assert isinstance(video, VideoReader)
    assert len(video) == 3000 and video.decoded_count == 0
    assert video[2990][0, 0, 0] == codes[2990]
    assert video.decoded_count <= 51
    assert len(video._cache) <= 8  # memory for a few frames only


def test_container_without_frame_count(tmp_path: Path) -> None:
    path = tmp_path / "clip.mkv"  # Matroska stores no frame count: estimated, then made exact
    codes = write_video(path, 23, gop=5)
    with VideoReader(path) as video:
        assert len(video) == 23
        assert video[22][0, 0, 0] == codes[22]
        assert video[7][0, 0, 0] == codes[7]


def test_lossy_mp4_random_access_within_tolerance(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    codes = write_video(path, 30, codec="mpeg4", gop=8)
    with VideoReader(path) as video:
        assert len(video) == 30
        for i in (29, 4, 17):
            assert abs(int(video[i][16, 24].mean()) - int(codes[i])) <= 6


def test_not_a_video_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="bad.mp4: not a readable video"):
        VideoReader(bad)
    with pytest.raises(DataError, match="missing.mp4: video file not found"):
        VideoReader(tmp_path / "missing.mp4")
