"""``open_frames``: one entry point for every kind of frame source."""

from __future__ import annotations

import os
from pathlib import Path

from napari_cliprl.io._files import check_file
from napari_cliprl.io._png import list_images
from napari_cliprl.io.errors import data_error
from napari_cliprl.io.frames import FrameFolder, FrameSource
from napari_cliprl.io.video import VIDEO_EXTENSIONS, VideoReader

CHOLEC_FRAME_SUFFIX = "_endo"


def is_video(path: str | os.PathLike) -> bool:
    """True for a file whose extension is a supported video container."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def cholec_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The ``*_endo.png`` frame files of a CholecSeg8k clip folder, in natural order."""
    return list_images(folder, f"*{CHOLEC_FRAME_SUFFIX}.png")


def open_frames(path: str | os.PathLike) -> FrameSource:
    """Open a video file, an EndoVis sequence, a CholecSeg8k clip or a folder of images.

    - a file ending in .mp4 .avi .mov .mkv: :class:`VideoReader`;
    - a folder with ``left_frames/`` (EndoVis 2017/2018 sequence, or an export with frames);
    - a folder with ``*_endo.png`` files (CholecSeg8k; frame names drop ``_endo``);
    - any other folder of images (.png .jpg .jpeg .bmp .tif .tiff).

    Raises DataError for a missing path, an unsupported or special file (FIFO, device,
    symbolic link loop) or a folder without images.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise data_error(path, "no such file or folder")
    if not path.is_dir():
        check_file(path)
        if is_video(path):
            return VideoReader(path)
        raise data_error(
            path, f"unsupported file type {path.suffix!r}; videos: {', '.join(VIDEO_EXTENSIONS)}"
        )
    left = path / "left_frames"
    if left.is_dir():
        return FrameFolder(left)
    cholec = cholec_frame_files(path)
    if cholec:
        names = [p.stem[: -len(CHOLEC_FRAME_SUFFIX)] for p in cholec]
        return FrameFolder(cholec, names=names)
    return FrameFolder(path)
