"""CholecSeg8k clips: ``frame_N_endo.png`` with ``frame_N_endo_watershed_mask.png``.

Watershed masks hold the class code in every channel (channel 0 is read); codes map to the
``cholecseg8k`` schema's ids through ``LabelClass.value``; 255 (unannotated) stays 255.
Frame names drop the ``_endo`` suffix (``frame_561``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_cliprl.io._files import file_present
from napari_cliprl.io._png import read_mask
from napari_cliprl.io.errors import DataError, data_error
from napari_cliprl.io.frames import FrameFolder
from napari_cliprl.io.labeled import LabeledSequence
from napari_cliprl.io.sources import CHOLEC_FRAME_SUFFIX, cholec_frame_files
from napari_cliprl.schemas import CHOLECSEG8K, SchemaError

MASK_SUFFIX = "_watershed_mask.png"


def load_cholec_mask(path: str | os.PathLike) -> np.ndarray:
    """A watershed mask file -> H x W uint8 ``cholecseg8k`` ids (255 stays 255)."""
    try:
        return CHOLECSEG8K.values_to_ids(read_mask(path), source=path)
    except SchemaError as e:
        raise DataError(str(e)) from e


def read_cholecseg8k_sequence(path: str | os.PathLike) -> LabeledSequence:
    """Read one CholecSeg8k clip folder; frames without a watershed mask are left out."""
    path = Path(path)
    if not path.is_dir():
        raise data_error(path, "folder not found")
    frame_files = cholec_frame_files(path)
    if not frame_files:
        raise data_error(path, f"folder holds no CholecSeg8k frames (*{CHOLEC_FRAME_SUFFIX}.png)")
    pairs = [(f, f.with_name(f.stem + MASK_SUFFIX)) for f in frame_files]
    pairs = [(f, m) for f, m in pairs if file_present(m)]
    if not pairs:
        raise data_error(path, f"folder holds no watershed masks (*_endo{MASK_SUFFIX})")
    names = [f.stem[: -len(CHOLEC_FRAME_SUFFIX)] for f, _ in pairs]
    frames = FrameFolder([f for f, _ in pairs], names=names)
    return LabeledSequence(
        frames, [m for _, m in pairs], CHOLECSEG8K, loader=load_cholec_mask, name=path.name
    )
