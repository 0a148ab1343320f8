"""``cliprl predict``'s output folder (the export layout) as a label store.

Layout (see :mod:`napari_cliprl.io.export`)::

    OUT/manifest.json                 written first (every frame unreviewed until a person
                                      says otherwise), then every MANIFEST_EVERY frames
    OUT/labels.json, OUT/schema.json  written once, before any label
    OUT/left_frames/<name>.png        the frame (``save_frames``), before its labels
    OUT/steps/zero_shot/labels/...    every proposal (``save_steps``)
    OUT/steps/step_<t>/labels/...
    OUT/steps/propagated/labels/...   with propagation and reviewed frames: the labels
                                      carried from them (``save_steps``)
    OUT/labels/<name>.png             the last step, written last: it marks the frame done
    OUT/.cliprl.lock                  held while a run writes the folder

What it guarantees about the folder:

- it writes only into a new or empty folder or one it wrote itself (an existing
  ``manifest.json`` of ours, the same schema, frames of the same source): a folder of ground
  truth, or anyone's other files, is refused by :func:`check_output_folder` before anything
  is written; OUT and the input never overlap;
- without ``overwrite`` it never replaces a file: a frame whose files all exist is skipped
  (resume), and a frame missing some gets only the missing ones; with ``overwrite`` it
  replaces only the files a frame produces;
- a frame whose label is replaced loses its reviewed flag, in manifest.json *before* the new
  label is written (a kill never leaves a raw prediction marked reviewed);
- every file is written atomically; temporaries a killed run left are removed on the next run.

``anchors`` (frame index -> H x W uint8 labels, e.g. ``cliprl predict --corrections``) are
reviewed frames: :meth:`write_anchors` writes them as the frames' label files, marked reviewed,
and the other frames are predicted from them (``annotation.run``); so are frames OUT's own
manifest marks reviewed. Before anything is written (:mod:`output_checks`), a run refuses a
manifest that lists a frame of the source under another index, a reviewed frame whose label
file is gone (when propagating) and, without ``overwrite``, a correction that would replace a
different reviewed label.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cliprl.annotation import locking
from napari_cliprl.annotation.output_checks import (
    IO_TMP,
    OutputFolderError,
    acquire,
    check_output_folder,
    check_reviewed_labels,
    listed_elsewhere,
    read_own_manifest,
    same_source,
)
from napari_cliprl.files import (
    FileProblemError,
    read_json,
    remove_stale_temporaries,
    write_json_atomic,
)
from napari_cliprl.io._png import write_png
from napari_cliprl.io.errors import DataError
from napari_cliprl.io.export import IGNORE_RGB, encode_labels, make_manifest
from napari_cliprl.io.labeled import load_schema_labels
from napari_cliprl.limits import LimitError
from napari_cliprl.schemas import LabelSchema
from napari_cliprl.steps import proposal_keys

PROPAGATED = "propagated"  # OUT/steps/<this>/labels: the labels carried from reviewed frames
FRAME = object()  # stands for the frame's pixels among the maps a frame writes
MANIFEST_EVERY = 50  # frames between manifest updates (the last one is written at the end)


class OutputFolder:
    """Frames' label files in ``out``; ``names[i]`` is frame i's file stem."""

    def __init__(
        self,
        out: str | os.PathLike,
        schema: LabelSchema,
        names: Sequence[str],
        *,
        steps: int,
        source: str,
        checkpoint_hash: str | None = None,
        save_steps: bool = False,
        save_frames: bool = False,
        overwrite: bool = False,
        anchors: Mapping[int, np.ndarray] | None = None,
        propagate: bool = False,
        frame_size: tuple[int, int] | None = None,
    ) -> None:
        self.out = Path(out)
        self.schema = schema
        self.names = list(names)
        self._steps = int(steps)
        self.source = source
        self.checkpoint_hash = checkpoint_hash
        self.save_steps = save_steps
        self.save_frames = save_frames
        self.overwrite = overwrite
        self.propagate = bool(propagate)
        self.frame_size = None if frame_size is None else (int(frame_size[0]), int(frame_size[1]))
        self._listed: set[int] = set()
        self._others: list[dict[str, Any]] = []  # manifest entries of names not ours
        self._reviewed: set[int] = set()
        self._written: set[int] = set()
        self._lock: locking.FolderLock | None = None
        self._anchors = {int(i): np.asarray(labels) for i, labels in (anchors or {}).items()}
        self._reviewed |= set(self._anchors)

    @property
    def steps(self) -> int:
        """T: the proposals step 0 .. step T each frame gets. Settable until the first
        prediction is written (``cliprl predict`` takes T* with a context once :meth:`start`
        has read which frames OUT's manifest marks reviewed)."""
        return self._steps

    @steps.setter
    def steps(self, value: int) -> None:
        if self._written - set(self._anchors):
            raise RuntimeError("the number of steps is fixed once a prediction is written")
        self._steps = int(value)

    @property
    def propagates(self) -> bool:
        """Whether predicted frames get labels carried from reviewed frames (a context)."""
        return self.propagate and bool(self._reviewed) and len(self.names) >= 2

    def outputs(self, index: int) -> list[Path]:
        """Files frame ``index`` produces, in writing order (the main label file last); with
        ``save_steps``, its proposals, and the propagated labels when the run propagates."""
        name = self.names[index]
        files = []
        if self.save_frames:
            files.append(self.out / "left_frames" / f"{name}.png")
        if self.save_steps:
            keys = list(proposal_keys(self._steps))
            if self._writes_propagated(index):
                keys.append(PROPAGATED)
            files += [self.out / "steps" / k / "labels" / f"{name}.png" for k in keys]
        return [*files, self.out / "labels" / f"{name}.png"]

    def _writes_propagated(self, index: int) -> bool:
        return self.save_steps and self.propagates and not self.is_reviewed(index)

    def needs_prediction(self, index: int) -> bool:
        if self.propagates and self.is_reviewed(index):
            return False  # an anchor of the propagation: never predicted
        return self.overwrite or not all(p.is_file() for p in self.outputs(index))

    def is_reviewed(self, index: int) -> bool:
        return int(index) in self._reviewed

    @property
    def reviewed(self) -> list[int]:
        """Frames whose labels are a person's: the anchors, and OUT's reviewed files."""
        return sorted(i for i in self._reviewed if 0 <= i < len(self.names))

    def anchor_labels(self, index: int) -> np.ndarray:
        labels = self._anchors.get(int(index))
        if labels is None:
            labels = self.seed_labels(index)
        if labels is None:
            raise ValueError(
                f"frame {index} is marked reviewed but has no label file in {self.out}"
            )
        return labels

    def write_anchors(self) -> None:
        """Write each anchor as its frame's label file, then list them reviewed (after
        :meth:`start`; a kill in between leaves them listed unreviewed, never the reverse)."""
        for i, labels in sorted(self._anchors.items()):
            if not self._holds(i, labels):  # a resumed run leaves an identical file alone
                self._write_labels(self.out / "labels" / f"{self.names[i]}.png", labels)
            self._written.add(i)
        if self._anchors:
            self.write_manifest()

    def _holds(self, index: int, labels: np.ndarray) -> bool:
        """Whether frame ``index``'s label file already holds ``labels`` (unreadable: no)."""
        try:
            current = self.seed_labels(index)
        except (DataError, ValueError):
            return False
        return current is not None and np.array_equal(current, labels)

    def seed_labels(self, index: int) -> np.ndarray | None:
        path = self.out / "labels" / f"{self.names[index]}.png"
        if not path.is_file():
            return None
        return load_schema_labels(path, self.schema, ignore_rgb=IGNORE_RGB)

    def start(self) -> None:
        """Lock the folder, check it again (under the lock) and write the manifest, then
        labels.json and schema.json, before any label file; clean a killed run's temporaries.
        """
        if self.source:
            manifest = check_output_folder(self.out, self.source)
        else:
            manifest = read_own_manifest(self.out)
        self._check_same_data(manifest or {})  # refused: nothing written
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = acquire(self.out)
        try:
            manifest = read_own_manifest(self.out) or {}  # again, now that no one else writes
            self._check_same_data(manifest)
            listed_elsewhere(self.out, manifest.get("frames", []), self.names)
            index_of = {name: i for i, name in enumerate(self.names)}
            self._listed, self._reviewed, self._others = set(), set(), []
            for f in manifest.get("frames", []):
                if index_of.get(f["name"]) != f["index"]:
                    self._others.append(f)  # another naming of the frames: kept as it is
                    continue
                self._listed.add(f["index"])
                if f.get("reviewed"):
                    self._reviewed.add(f["index"])
            if self.propagate:  # OUT's reviewed frames are anchors: their labels must be there
                mine = self._reviewed - set(self._anchors)
                check_reviewed_labels(self.out, self.names, mine, self.frame_size)
            self._check_corrections()
            self._reviewed |= set(self._anchors)
            labels = self.out / "labels"
            if labels.is_dir():  # label files a killed run wrote after its last manifest
                self._listed |= {
                    index_of[p.stem] for p in labels.glob("*.png") if p.stem in index_of
                }
            self._remove_temporaries()
            self.write_manifest()
            for name, data in (
                ("labels.json", self.schema.labels_json()),
                ("schema.json", self.schema.to_dict()),
            ):
                if not (self.out / name).is_file():
                    write_json_atomic(self.out / name, data, overwrite=True)
        except BaseException:
            self.close()
            raise

    def _check_corrections(self) -> None:
        """Refuse (before anything is written) a correction that would replace a different
        label OUT's manifest marks reviewed (a person's), unless ``overwrite``."""
        for i, labels in sorted(self._anchors.items()):
            if not self.overwrite and i in self._reviewed and not self._holds(i, labels):
                path = self.out / "labels" / f"{self.names[i]}.png"
                raise OutputFolderError(
                    f"{path}: reviewed in this folder and different from the correction given "
                    f"for frame {i}; pass --overwrite to replace it with the correction"
                )

    def close(self) -> None:
        """Release the folder's lock (idempotent)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def write_prediction(
        self,
        index: int,
        zero_shot: np.ndarray,
        steps: Sequence[np.ndarray],
        *,
        uncertainty: float | None = None,
        frame: np.ndarray | None = None,
        propagated: np.ndarray | None = None,
    ) -> None:
        """Write frame ``index``'s files in :meth:`outputs` order (frame, steps, propagated,
        label); without ``overwrite`` only those missing. Replacing a reviewed label clears its
        flag first."""
        paths, propagates = self.outputs(index), self._writes_propagated(index)
        maps: list[Any] = [zero_shot, *steps] if self.save_steps else []
        if propagates:
            maps.append(propagated)  # None only for a frame without a context: not written
        maps.append(steps[-1])
        if self.save_frames:
            if frame is None:
                raise ValueError("save_frames needs the frame's pixels")
            maps = [FRAME, *maps]
        todo = [
            (p, m)
            for p, m in zip(paths, maps)
            if m is not None and (self.overwrite or not p.is_file())
        ]
        label = paths[-1]
        if any(p == label for p, _ in todo) and int(index) in self._reviewed:
            self._reviewed.discard(int(index))
            self.write_manifest()  # on disk before the reviewed label is replaced
        for path, labels in todo:
            if labels is FRAME:
                write_png(path, np.asarray(frame), overwrite=True)
            else:
                self._write_labels(path, labels)
        self._written.add(int(index))
        if len(self._written) % MANIFEST_EVERY == 0:
            self.write_manifest()

    def _write_labels(self, path: Path, labels: Any) -> None:
        """One H x W label map in the schema's encoding, written atomically over ``path``."""
        write_png(path, encode_labels(np.asarray(labels), self.schema, str(path)), overwrite=True)

    def write_manifest(self) -> None:
        """manifest.json listing every frame with a label file (reviewed flags are kept)."""
        listed = sorted(self._listed | self._written)
        frames = [
            (self.names[i], i, i in self._reviewed)
            for i in listed
            if 0 <= i < len(self.names) and (self.out / "labels" / f"{self.names[i]}.png").is_file()
        ]
        frames += [(f["name"], f["index"], f.get("reviewed", False)) for f in self._others]
        manifest = make_manifest(self.source, self.schema, frames, self.checkpoint_hash)
        write_json_atomic(self.out / "manifest.json", manifest, overwrite=True)

    def _check_same_data(self, manifest: dict[str, Any]) -> None:
        """OutputFolderError when the folder holds labels of another schema or source."""
        theirs = manifest.get("schema")
        schema_file = self.out / "schema.json"
        if os.path.lexists(schema_file):
            try:
                stored = read_json(schema_file, "schema file")
            except (FileProblemError, LimitError) as e:
                raise OutputFolderError(str(e)) from None
            if not isinstance(stored, dict):
                theirs = "unknown"
            elif stored.get("classes") != self.schema.to_dict()["classes"]:
                theirs = f"{stored.get('name')} (other classes)"
        if theirs is not None and theirs != self.schema.name:
            raise OutputFolderError(
                f"{self.out}: holds labels of schema {theirs!r}, not {self.schema.name!r}; "
                "choose another --out"
            )
        source = str(manifest.get("source") or "")
        if source and manifest.get("frames") and self.source:
            path = Path(source) if Path(source).is_absolute() else self.out / source
            if not same_source(path, Path(self.source)):
                raise OutputFolderError(
                    f"{self.out}: holds labels of frames from {source}, not {self.source}; "
                    "choose another --out"
                )

    def _remove_temporaries(self) -> None:
        folders = [self.out, self.out / "labels", self.out / "left_frames"]
        if (self.out / "steps").is_dir():
            folders += [p / "labels" for p in (self.out / "steps").iterdir() if p.is_dir()]
        for folder in folders:
            if not folder.is_dir() or folder.is_symlink():
                continue
            remove_stale_temporaries(folder)
            for path in folder.iterdir():
                if IO_TMP.match(path.name) and path.is_file() and not path.is_symlink():
                    path.unlink(missing_ok=True)
