"""Readers and writers for frames and labels: paths and numpy only (no torch, no Qt).

Frame sources (:class:`FrameSource`: ``len``, ``src[i] -> H x W x 3 uint8``, ``shape``, ``fps``,
``frame_names``, ``path``, ``close``) come from :func:`open_frames`; labelled sequences
(:class:`LabeledSequence`: ``frames``, ``labels(i) -> H x W uint8 ids``, ``schema``) from
:func:`read_labeled`; :func:`write_labels` writes the export layout (see :mod:`.export`).
"""

from napari_cliprl.io.errors import DataError
from napari_cliprl.io.frames import CroppedFrames, FrameFolder, FrameSource, SubsetFrames
from napari_cliprl.io.labeled import LabeledSequence, detect_format, find_labeled, read_labeled
from napari_cliprl.io.sources import open_frames
from napari_cliprl.io.video import VideoReader, write_video

from napari_cliprl.io.cholec import read_cholecseg8k_sequence  # noqa: E402  isort: skip
from napari_cliprl.io.endovis2017 import read_endovis2017_sequence  # noqa: E402  isort: skip
from napari_cliprl.io.endovis2018 import read_endovis2018_sequence  # noqa: E402  isort: skip
from napari_cliprl.io.export import make_manifest, read_export, write_labels  # noqa: E402  isort: skip

__all__ = [
    "CroppedFrames",
    "DataError",
    "FrameFolder",
    "FrameSource",
    "LabeledSequence",
    "SubsetFrames",
    "VideoReader",
    "write_video",
    "detect_format",
    "find_labeled",
    "make_manifest",
    "open_frames",
    "read_cholecseg8k_sequence",
    "read_endovis2017_sequence",
    "read_endovis2018_sequence",
    "read_export",
    "read_labeled",
    "write_labels",
]
