"""EndoVis 2017 robotic instrument segmentation: the raw training layout and the test GT.

Training layout, one mask per instrument::

    instrument_dataset_N/left_frames/frameNNN.png              1080 x 1920 RGB
    instrument_dataset_N/ground_truth/<instrument>/frameNNN.png  0 bg, 10 shaft, 20 wrist,
                                                               30 clasper ("Other": 40)

Instrument folders are named inconsistently (``Maryland_Bipolar_Forceps_labels``,
``Large_Needle_Driver_Left_labels``, ``Prograsp_Forceps``, ``Left_Bipolar_Forceps``,
``Other_labels``); the type is found by substring (case-insensitive, ``-``/space read as
``_``). Masks stored as RGB are read from channel 0. Masks are merged in sorted folder-name
order; where instruments overlap, the later folder wins.

Merging follows TernausNet's ``prepare_data.py`` (the convention of the published 2017
results):

- parts: pixels equal to 10/20/30 become 1 shaft / 2 wrist / 3 clasper; ``Other`` masks are
  skipped, so 40 ("Other", an instrument without part annotation) stays **background** (0),
  and so does any value outside 10/20/30.
- type: every non-zero pixel of a mask gets its instrument's type id (Bipolar_Forceps incl.
  Maryland 1, Prograsp_Forceps 2, Large_Needle_Driver 3, Vessel_Sealer 4, Grasping_Retractor
  5, Monopolar_Curved_Scissors 6, Other 7).
- binary: every non-zero pixel of a non-``Other`` mask is 1 (instrument); Other is background.

Official test ground truth: ``ground_truth/BinarySegmentation`` (0/255),
``PartsSegmentation`` (30 shaft, 100 wrist, 255 clasper) and ``TypeSegmentation`` (type id);
the folders may also sit directly in the sequence folder. These encodings are the ``value``
fields of the ``endovis2017-*`` schemas. Optional crop: rows 28..1051, columns 320..1599.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from napari_cliprl.io._files import file_present
from napari_cliprl.io._png import (
    check_targets_inside,
    check_writable,
    list_images,
    natural_key,
    read_mask,
    write_png,
)
from napari_cliprl.io.errors import DataError, data_error
from napari_cliprl.io.export import encode_labels
from napari_cliprl.io.frames import CROP_2017, CroppedFrames, FrameFolder, crop_array
from napari_cliprl.io.labeled import LabeledSequence
from napari_cliprl.schemas import (
    ENDOVIS2017_BINARY,
    ENDOVIS2017_PARTS,
    ENDOVIS2017_TYPE,
    LabelSchema,
    SchemaError,
)

TASKS = ("parts", "type", "binary")
SCHEMAS = {"parts": ENDOVIS2017_PARTS, "type": ENDOVIS2017_TYPE, "binary": ENDOVIS2017_BINARY}
TEST_GT_FOLDERS = {
    "parts": "PartsSegmentation",
    "type": "TypeSegmentation",
    "binary": "BinarySegmentation",
}
# (substring of the normalised folder name, type id); checked in this order.
INSTRUMENT_TYPES = (
    ("bipolar_forceps", 1),
    ("prograsp_forceps", 2),
    ("large_needle_driver", 3),
    ("vessel_sealer", 4),
    ("grasping_retractor", 5),
    ("monopolar_curved_scissors", 6),
    ("other", 7),
)
OTHER_TYPE = 7
PART_VALUES = {10: 1, 20: 2, 30: 3}  # raw training mask value -> parts id
FULL_SHAPE = (1080, 1920)


def task_of(schema_or_task: LabelSchema | str) -> str:
    """'parts' / 'type' / 'binary' from a task name or an ``endovis2017-*`` schema (or name)."""
    name = schema_or_task.name if isinstance(schema_or_task, LabelSchema) else str(schema_or_task)
    key = name.removeprefix("endovis2017-")
    key = "type" if key == "instruments" else key
    if key not in TASKS:
        raise DataError(
            f"{name}: unknown EndoVis 2017 task; tasks: {', '.join(TASKS)} "
            f"(or schemas {', '.join(s.name for s in SCHEMAS.values())})"
        )
    return key


def instrument_type(folder_name: str) -> int:
    """Type id (1..7) of an instrument mask folder name, matched by substring."""
    key = folder_name.lower().replace("-", "_").replace(" ", "_")
    for needle, type_id in INSTRUMENT_TYPES:
        if needle in key:
            return type_id
    known = ", ".join(n for n, _ in INSTRUMENT_TYPES)
    raise DataError(f"{folder_name}: instrument folder matches no known type ({known})")


def merge_instrument_masks(
    masks: Sequence[np.ndarray], types: Sequence[int], task: str
) -> np.ndarray:
    """Merge per-instrument H x W uint8 raw masks (in order; later wins) -> H x W uint8 ids."""
    out = np.zeros(masks[0].shape, dtype=np.uint8)
    for mask, type_id in zip(masks, types, strict=True):
        if task == "type":
            out[mask > 0] = type_id
        elif type_id == OTHER_TYPE:
            continue
        elif task == "binary":
            out[mask > 0] = 1
        else:
            for value, part in PART_VALUES.items():
                out[mask == value] = part
    return out


def _load_training(
    files: tuple[Path, ...], types: tuple[int, ...], task: str, crop: bool
) -> np.ndarray:
    masks = [read_mask(f) for f in files]
    for f, m in zip(files[1:], masks[1:]):
        if m.shape != masks[0].shape:
            raise data_error(
                f, f"mask is {m.shape}, {files[0].name} of the same frame is {masks[0].shape}"
            )
    ids = merge_instrument_masks(masks, types, task)
    return crop_array(ids, CROP_2017, str(files[0])) if crop else ids


def _load_test_gt(file: Path, task: str, crop: bool) -> np.ndarray:
    try:
        ids = SCHEMAS[task].values_to_ids(read_mask(file), source=file)
    except SchemaError as e:
        raise DataError(str(e)) from e
    return crop_array(ids, CROP_2017, str(file)) if crop else ids


def instrument_folders(seq_dir: str | os.PathLike) -> list[Path]:
    """The instrument mask folders of a training sequence, in merge (sorted) order."""
    gt = Path(seq_dir) / "ground_truth"
    if not gt.is_dir():
        raise data_error(gt, "folder not found (EndoVis 2017 ground truth)")
    folders = [p for p in gt.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        raise data_error(gt, "folder holds no instrument mask folders")
    return sorted(folders, key=lambda p: natural_key(p.name))


def find_test_gt_folder(seq_dir: str | os.PathLike, task: str) -> Path | None:
    """The official test ground-truth folder of ``task`` in ``seq_dir``, or None."""
    seq_dir = Path(seq_dir)
    for base in (seq_dir / "ground_truth", seq_dir):
        if (base / TEST_GT_FOLDERS[task]).is_dir():
            return base / TEST_GT_FOLDERS[task]
    return None


def _frame_files(seq_dir: Path) -> list[Path]:
    files = list_images(seq_dir / "left_frames")
    if not files:
        raise data_error(seq_dir / "left_frames", "folder holds no frames")
    return files


def read_endovis2017_sequence(
    path: str | os.PathLike, task: str = "parts", crop: bool = False
) -> LabeledSequence:
    """Read an ``instrument_dataset_N`` folder (training layout or official test GT).

    Returns frames (H x W x 3 uint8, 1024 x 1280 with ``crop``) and labels (H x W uint8 ids
    of the ``endovis2017-<task>`` schema). Frames with no mask at all are left out; a frame
    with masks in some instrument folders but not others is an error naming the missing file.
    """
    path = Path(path)
    task = task_of(task)
    if not path.is_dir():
        raise data_error(path, "sequence folder not found")
    frames = _frame_files(path)
    gt_dir = find_test_gt_folder(path, task)
    if gt_dir is not None:
        pairs = [(f, gt_dir / f.name) for f in frames if file_present(gt_dir / f.name)]
        if not pairs:
            raise data_error(gt_dir, "no ground-truth file matches a frame in left_frames/")
        loader = functools.partial(_load_test_gt, task=task, crop=crop)
        labels: list = [g for _, g in pairs]
    else:
        folders = instrument_folders(path)
        types = tuple(instrument_type(f.name) for f in folders)
        pairs, labels = [], []
        for f in frames:
            files = tuple(d / f.name for d in folders)
            present = [file_present(m) for m in files]
            if not any(present):
                continue
            if not all(present):
                raise data_error(files[present.index(False)], "mask missing for this frame")
            pairs.append((f, files))
            labels.append(files)
        if not pairs:
            raise data_error(path / "ground_truth", "no mask file matches a frame in left_frames/")
        loader = functools.partial(_load_training, types=types, task=task, crop=crop)
    source = FrameFolder([f for f, _ in pairs])
    if crop:
        source = CroppedFrames(source, *CROP_2017)
    return LabeledSequence(source, labels, SCHEMAS[task], loader=loader, name=path.name)


def uncrop_labels(ids: np.ndarray, shape: tuple[int, int] = FULL_SHAPE) -> np.ndarray:
    """Paste a 1024 x 1280 cropped H x W uint8 label map back into ``shape`` (0 around it)."""
    top, left, height, width = CROP_2017
    if ids.shape != (height, width):
        raise DataError(f"<labels>: expected a {height}x{width} crop, got {ids.shape}")
    out = np.zeros(shape, dtype=np.uint8)
    out[top : top + height, left : left + width] = ids
    return out


def write_endovis2017_ground_truth(
    out_dir: str | os.PathLike,
    labels: Mapping[str, np.ndarray],
    task: str,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write id maps in the official test-GT encoding: ``out_dir/<Task>Segmentation/<n>.png``.

    Values: parts 0/30/100/255, type the type id, binary 0/255 (single-channel uint8).
    """
    task = task_of(task)
    folder = Path(out_dir) / TEST_GT_FOLDERS[task]
    targets = {folder / f"{n}.png": ids for n, ids in labels.items()}
    check_writable(targets, overwrite)
    check_targets_inside(out_dir, targets)
    encoded = {p: encode_labels(ids, SCHEMAS[task], str(p)) for p, ids in targets.items()}
    return [write_png(p, v, overwrite) for p, v in encoded.items()]
