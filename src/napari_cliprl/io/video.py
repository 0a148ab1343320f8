"""Random access to the frames of a video file with PyAV, without decoding the whole video.

Opening reads only the container header: the frame count comes from the stream metadata
(``nb_frames``); where a container does not store it (Matroska, WebM), it is estimated from
the duration and made exact by decoding the last group of pictures only. ``reader[i]`` seeks to
the nearest keyframe at or before frame ``i`` and decodes forward; reading forward from the
last decoded frame continues the same decoder without seeking. A small LRU cache holds the
last few decoded frames, so memory stays at a few frames whatever the video length.

Every size from the header is bounded before it is used (:mod:`napari_cliprl.limits`): the
frame count by ``MAX_FRAMES``, the frame size by ``MAX_IMAGE_SIDE`` and ``MAX_IMAGE_PIXELS``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from napari_cliprl.io._files import check_file
from napari_cliprl.io._png import check_image_size
from napari_cliprl.io.errors import DataError, check_data_limit, data_error
from napari_cliprl.io.frames import FrameNames, _SourceBase

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
FORWARD_WINDOW = 48  # decode forward instead of seeking when the target is this close ahead


class VideoReader(_SourceBase):
    """Frames of a video file: ``reader[i] -> H x W x 3 uint8`` RGB, decoded on demand.

    ``decoded_count`` and ``seek_count`` count decoded frames and seeks (for tests and
    benchmarks). Thread-safe: one lock serialises access to the decoder.
    """

    def __init__(self, path: str | os.PathLike, cache_size: int = 8) -> None:
        self.path = Path(path)
        check_file(self.path, "video file")  # a FIFO would block the demuxer forever
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as e:
            raise data_error(self.path, f"not a readable video ({e})") from e
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(1, cache_size)
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._last = -1  # index of the last frame the current decoder yielded
        self._lock = threading.Lock()
        self.decoded_count = 0
        self.seek_count = 0
        try:
            self._read_header()
            self._count = self._frame_count()
        except av.FFmpegError as e:
            self._container.close()
            raise data_error(self.path, f"not a readable video ({e})") from e
        except DataError:
            self._container.close()
            raise

    # -- metadata ------------------------------------------------------------------------------
    def _read_header(self) -> None:
        """Stream, time base, fps and frame size from the header, bounded before decoding."""
        if not self._container.streams.video:
            raise data_error(self.path, "file holds no video stream")
        self._stream = self._container.streams.video[0]
        self._time_base = self._stream.time_base or Fraction(1, 1_000_000)
        self._start = self._stream.start_time or 0
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        self._fps = float(rate) if rate and float(rate) > 0 else 25.0
        self._height = int(self._stream.codec_context.height or 0)
        self._width = int(self._stream.codec_context.width or 0)
        if self._width <= 0 or self._height <= 0:
            raise data_error(self.path, "video header gives no usable frame size")
        check_image_size(self._width, self._height, self.path, "video frame")

    def _frame_count(self) -> int:
        """Frames in the video: the header's count, else estimated and made exact; bounded by
        MAX_FRAMES before anything depends on it."""
        if self._stream.frames and self._stream.frames > 0:
            what = "frame count in this video's header"
            return check_data_limit("MAX_FRAMES", int(self._stream.frames), self.path, what)
        if self._stream.duration:
            seconds = float(self._stream.duration * self._time_base)
        elif self._container.duration:
            seconds = self._container.duration / 1_000_000
        else:
            raise data_error(self.path, "video stores neither a frame count nor a duration")
        estimate = max(1, round(seconds * self._fps))
        check_data_limit("MAX_FRAMES", estimate, self.path, "frames implied by its duration")
        return check_data_limit("MAX_FRAMES", self._exact_count(estimate), self.path)

    def _exact_count(self, estimate: int) -> int:
        """Decode from the keyframe before the estimated last frame to the end."""
        self._seek(max(0, estimate - 1))
        last = -1
        assert self._decoder is not None
        for frame in self._decoder:
            self.decoded_count += 1
            last = self._index_of(frame)
        self._decoder, self._last = None, -1
        if last < 0:
            raise data_error(self.path, "no frame could be decoded")
        return last + 1

    def __len__(self) -> int:
        return self._count

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self._count, self._height, self._width, 3)

    @property
    def fps(self) -> float | None:
        return self._fps

    @property
    def frame_names(self) -> FrameNames:
        """``frameNNN`` names, made when indexed (a long video needs no list of them)."""
        return FrameNames(self._count)

    # -- decoding ------------------------------------------------------------------------------
    def _index_of(self, frame: av.VideoFrame) -> int:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            return self._last + 1
        return round(float((pts - self._start) * self._time_base) * self._fps)

    def _seek(self, index: int) -> None:
        target = self._start + int(index / self._fps / self._time_base)
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(self._stream)
        self._last = -1
        self.seek_count += 1

    def _decode_until(self, index: int) -> np.ndarray | None:
        """Decode forward to ``index``; None if the decoder passed it or ran out."""
        assert self._decoder is not None
        for frame in self._decoder:
            self.decoded_count += 1
            i = self._index_of(frame)
            self._last = i
            if i > index:
                return None
            if i >= index - self._cache_size:
                self._remember(i, frame.to_ndarray(format="rgb24"))
            if i == index:
                return self._cache[i]
        self._decoder = None
        return None

    def _remember(self, index: int, array: np.ndarray) -> None:
        self._cache[index] = array
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _get(self, index: int) -> np.ndarray:
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index].copy()
            if self._container is None:
                raise ValueError(f"{self.path}: reader is closed")
            ahead = self._decoder is not None and self._last < index <= self._last + FORWARD_WINDOW
            try:
                frame = self._decode_until(index) if ahead else None
                for start in (index, 0):  # keyframe seek, then from the start if it overshot
                    if frame is not None:
                        break
                    self._seek(start)
                    frame = self._decode_until(index)
            except av.FFmpegError as e:
                raise data_error(self.path, f"cannot decode frame {index} ({e})") from e
            if frame is None:
                raise data_error(self.path, f"frame {index} could not be decoded")
            return frame.copy()

    def close(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.close()
                self._container = None  # type: ignore[assignment]
                self._decoder = None
                self._cache.clear()


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 25,
    codec: str = "mpeg4",
    gop: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Encode H x W x 3 uint8 frames as a video (``ffv1`` is lossless, in .avi/.mkv).

    An existing file raises ``FileExistsError`` unless ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; not overwriting it")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.pix_fmt = "yuv444p" if codec == "ffv1" else "yuv420p"
        if gop is not None:
            stream.gop_size = gop
        for k, array in enumerate(frames):
            if k == 0:
                stream.height, stream.width = array.shape[:2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
