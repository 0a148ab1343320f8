"""Readers and writers for frames and labels: paths and numpy only (no torch, no Qt).

Frame sources (:class:`FrameSource`: ``len``, ``src[i] -> H x W x 3 uint8``, ``shape``, ``fps``,
``frame_names``, ``path``, ``close``) come from :func:`open_frames`; labelled sequences
(:class:`LabeledSequence`: ``frames``, ``labels(i) -> H x W uint8 ids``, ``schema``) from
:func:`read_labeled`; :func:`write_labels` writes the export layout (see :mod:`.export`).

Modules, lower ones first (each imports only those above it): ``errors``, ``_files``,
``_png``, ``frames``, ``video``, ``sources``, ``labeled``, ``labels_json``, ``manifest``,
``export``, ``endovis2018``, ``endovis2017``, ``cholec``, ``read`` (the dispatcher); beside
them ``convert`` (``cliprl convert``), ``lazy`` (frames as a lazy array for napari) and
``sample`` (the built-in synthetic clip).
Every input is checked before memory is committed (see :mod:`napari_cliprl.limits`) and every
bad input is one :class:`DataError` line naming the file.
"""

from napari_cliprl.io.cholec import read_cholecseg8k_sequence
from napari_cliprl.io.endovis2017 import read_endovis2017_sequence
from napari_cliprl.io.endovis2018 import read_endovis2018_sequence
from napari_cliprl.io.errors import DataError, DataLimitError
from napari_cliprl.io.export import make_manifest, read_export, write_labels
from napari_cliprl.io.frames import CroppedFrames, FrameFolder, FrameSource, SubsetFrames
from napari_cliprl.io.labeled import LabeledSequence
from napari_cliprl.io.read import detect_format, find_labeled, read_labeled
from napari_cliprl.io.sources import open_frames
from napari_cliprl.io.video import VideoReader, write_video

__all__ = [
    "CroppedFrames",
    "DataError",
    "DataLimitError",
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
