"""Exporting a session's reviewed frames in the plugin's export layout (EndoVis labels,
optionally the frames, labels.json, schema.json and a manifest of what was reviewed).

Writing is batched so memory stays at a few frames whatever the video's length; every file is
written atomically by :func:`napari_cliprl.io.export.write_labels`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cliprl.annotation.session_info import CORRECTED
from napari_cliprl.errors import describe_error
from napari_cliprl.io._png import write_png
from napari_cliprl.io.errors import DataError
from napari_cliprl.io.export import make_manifest, write_labels
from napari_cliprl.io.lazy import frame_names_of
from napari_cliprl.steps import step_label

if TYPE_CHECKING:
    from napari_cliprl.annotation.session import Session

EXPORT_BATCH = 16  # frames written per io.export.write_labels call (bounds memory)
CHANGED_DIR = "changed"  # masks of corrected pixels, read by training.dataset.changed_mask


def try_export(
    session: Session, out_dir: str | os.PathLike, frames: Any = None, overwrite: bool = False
) -> tuple[list[Path], str | None, bool]:
    """:func:`export_session` for a worker: (written paths, error sentence, target existed)."""
    try:
        return export_session(session, out_dir, frames, overwrite=overwrite), None, False
    except FileExistsError as e:
        return [], str(e), True
    except Exception as e:  # noqa: BLE001
        return [], describe_error(e), False


def export_session(
    session: Session,
    out_dir: str | os.PathLike,
    frames: Any = None,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Path]:
    """Write the reviewed frames of ``corrected`` as an export folder; returns written paths.

    ``frames`` (T x H x W x 3, indexed lazily) are written to left_frames/ when given, so the
    export can be fine-tuned on without the video. ``changed/<name>.png`` marks (255) the
    pixels where the correction differs from the frame's last proposal, which fine-tuning
    weighs more (DESIGN 2.9). FileExistsError names an existing target unless ``overwrite``;
    DataError if no frame is reviewed.
    """
    reviewed = session.reviewed
    if not reviewed:
        raise DataError(f"{out_dir}: no reviewed frames to export; edit or accept frames first")
    session.check_reviewed_stored()  # a vanished chunk would read as a blank frame
    names = export_names(frames, session.shape[0])
    manifest = make_manifest(
        session.info.source or "",
        session.schema,
        [(names[i], i, True) for i in reviewed],
        checkpoint=session.info.checkpoint_hash,
    )
    corrected = session.array(CORRECTED)
    proposal = session.array(step_label(session.steps))
    predicted = set(session.predicted)

    def changed(i: int) -> np.ndarray | None:
        if i not in predicted:
            return None
        return np.asarray(corrected[i]) != np.asarray(proposal[i])

    return write_label_stack(
        out_dir,
        corrected,
        reviewed,
        names,
        session.schema,
        frames=frames,
        manifest=manifest,
        overwrite=overwrite,
        progress=progress,
        changed=changed,
    )


def write_label_stack(
    out_dir: str | os.PathLike,
    labels: Any,
    indices: Sequence[int],
    names: Sequence[str],
    schema: Any,
    *,
    frames: Any = None,
    manifest: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    changed: Callable[[int], np.ndarray | None] | None = None,
) -> list[Path]:
    """Write ``labels[i]`` (and ``frames[i]``) for i in ``indices`` in the export layout.

    ``labels``: T x H x W ids and ``frames``: T x H x W x 3, both indexed one frame at a
    time; ``names[i]`` is the file stem of frame i; ``changed(i)``: H x W bool "a person
    changed this pixel" (or None), written to ``changed/<name>.png`` before the label. Every
    target is checked before anything is written (FileExistsError names the first existing
    one unless ``overwrite``); files are then written in batches so memory stays at a few
    frames.
    """
    out = Path(out_dir)
    if not overwrite:
        check_targets_free(out, [names[i] for i in indices], frames is not None, manifest)
    written: list[Path] = []
    for start in range(0, len(indices), EXPORT_BATCH):
        batch = indices[start : start + EXPORT_BATCH]
        last = start + EXPORT_BATCH >= len(indices)
        if changed is not None:
            written += _write_changed(out, batch, names, changed)
        label_maps = {names[i]: np.asarray(labels[i], dtype=np.uint8) for i in batch}
        images = {names[i]: np.asarray(frames[i]) for i in batch} if frames is not None else None
        written += write_labels(
            out,
            label_maps,
            schema,
            images=images,
            manifest=manifest if last else None,
            overwrite=True,
        )
        if progress is not None:
            progress(min(start + EXPORT_BATCH, len(indices)), len(indices), "exporting")
    return written


def _write_changed(
    out: Path, batch: Sequence[int], names: Sequence[str], changed: Callable[[int], Any]
) -> list[Path]:
    """``changed/<name>.png`` (0 / 255) of the frames in ``batch`` that have a mask."""
    written = []
    for i in batch:
        mask = changed(i)
        if mask is not None:
            image = np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8)
            written.append(write_png(out / CHANGED_DIR / f"{names[i]}.png", image, True))
    return written


def export_names(frames: Any, n: int) -> list[str]:
    """File stems of ``n`` frames: the frames' own names when they have them, else frameNNN."""
    if frames is not None and len(frames) == n:
        return frame_names_of(frames)
    width = max(3, len(str(n - 1)))
    return [f"frame{i:0{width}d}" for i in range(n)]


def check_targets_free(
    out: Path, names: Sequence[str], with_frames: bool, manifest: Any = None
) -> None:
    """FileExistsError naming the first export file under ``out`` that exists already."""
    targets = [out / d / f"{n}.png" for d in ("labels", CHANGED_DIR) for n in names]
    if with_frames:
        targets += [out / "left_frames" / f"{n}.png" for n in names]
    meta = ["labels.json", "schema.json"] + (["manifest.json"] if manifest is not None else [])
    for path in [*targets, *(out / m for m in meta)]:
        if path.exists():
            raise FileExistsError(f"{path} exists; export again with overwrite to replace it")
