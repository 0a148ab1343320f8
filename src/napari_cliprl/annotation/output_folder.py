"""``cliprl predict``'s output folder (the export layout) as a label store.

Layout (see :mod:`napari_cliprl.io.export`)::

    OUT/left_frames/<name>.png        the frame (``save_frames``), written first
    OUT/steps/zero_shot/labels/...    every proposal (``save_steps``)
    OUT/steps/step_<t>/labels/...
    OUT/steps/propagated/labels/...   with propagation: the labels carried from the anchors
    OUT/labels/<name>.png             the last step, written last: it marks the frame done
    OUT/labels.json, OUT/schema.json  written once, before any label
    OUT/manifest.json                 every frame with a label file; reviewed flags kept

A frame whose files all exist is skipped (resume) unless ``overwrite``. A frame that is
predicted again loses its reviewed flag: the file no longer holds what a person checked.

``anchors`` (frame index -> H x W uint8 labels, e.g. ``cliprl predict --corrections``) are
reviewed frames: :meth:`write_anchors` writes them as the frames' label files, marked reviewed,
and the other frames are predicted from them (``annotation.run``); so are frames OUT's own
manifest marks reviewed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from napari_cliprl.io._png import write_png
from napari_cliprl.io.export import (
    IGNORE_RGB,
    encode_labels,
    make_manifest,
    read_manifest,
    write_json_atomic,
)
from napari_cliprl.io.labeled import load_schema_labels
from napari_cliprl.schemas import LabelSchema
from napari_cliprl.steps import ZERO_SHOT_KEY, step_key

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
        old = read_manifest(self.out) if (self.out / "manifest.json").is_file() else None
        frames = (old or {}).get("frames", [])
        self._listed = {int(f["index"]) for f in frames}
        self._reviewed = {int(f["index"]) for f in frames if f.get("reviewed")}
        self._written: set[int] = set()
        self._anchors = {int(i): np.asarray(labels) for i, labels in (anchors or {}).items()}
        self._reviewed |= set(self._anchors)

    @property
    def steps(self) -> int:
        return self._steps

    def outputs(self, index: int) -> list[Path]:
        """Files frame ``index`` produces, in writing order (the main label file last)."""
        name = self.names[index]
        files = []
        if self.save_frames:
            files.append(self.out / "left_frames" / f"{name}.png")
        if self.save_steps:
            keys = [ZERO_SHOT_KEY, *(step_key(t) for t in range(self._steps + 1))]
            files += [self.out / "steps" / k / "labels" / f"{name}.png" for k in keys]
        return [*files, self.out / "labels" / f"{name}.png"]

    def needs_prediction(self, index: int) -> bool:
        return self.overwrite or not all(p.is_file() for p in self.outputs(index))

    def is_reviewed(self, index: int) -> bool:
        return int(index) in self._reviewed

    @property
    def reviewed(self) -> list[int]:
        """Frames whose labels are a person's: the anchors, and OUT's reviewed files."""
        return sorted(i for i in self._reviewed if i < len(self.names))

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
        """Write each anchor as its frame's label file, marked reviewed (after :meth:`start`)."""
        for i, labels in sorted(self._anchors.items()):
            path = self.out / "labels" / f"{self.names[i]}.png"
            write_png(path, encode_labels(labels, self.schema, str(path)), True)
            self._written.add(i)

    def seed_labels(self, index: int) -> np.ndarray | None:
        path = self.out / "labels" / f"{self.names[index]}.png"
        if not path.is_file():
            return None
        return load_schema_labels(path, self.schema, ignore_rgb=IGNORE_RGB)

    def start(self) -> None:
        """Write labels.json and schema.json (once, before any label file)."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / "labels.json", self.schema.labels_json(), overwrite=True)
        write_json_atomic(self.out / "schema.json", self.schema.to_dict(), overwrite=True)

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
        """Write frame ``index``'s files in :meth:`outputs` order (frame, steps, label)."""
        paths = self.outputs(index)
        if self.save_steps and propagated is not None:
            path = self.out / "steps" / "propagated" / "labels" / f"{self.names[index]}.png"
            write_png(path, encode_labels(np.asarray(propagated), self.schema, str(path)), True)
        maps = ([zero_shot, *steps] if self.save_steps else []) + [steps[-1]]
        if self.save_frames:
            if frame is None:
                raise ValueError("save_frames needs the frame's pixels")
            write_png(paths[0], np.asarray(frame), overwrite=True)
            paths = paths[1:]
        for path, labels in zip(paths, maps):
            write_png(path, encode_labels(np.asarray(labels), self.schema, str(path)), True)
        self._reviewed.discard(int(index))
        self._written.add(int(index))
        if len(self._written) % MANIFEST_EVERY == 0:
            self.write_manifest()

    def write_manifest(self) -> None:
        """manifest.json listing every frame with a label file (reviewed flags are kept)."""
        listed = sorted(self._listed | self._written)
        frames = [
            (self.names[i], i, i in self._reviewed)
            for i in listed
            if i < len(self.names) and (self.out / "labels" / f"{self.names[i]}.png").is_file()
        ]
        if not frames:
            return
        manifest = make_manifest(self.source, self.schema, frames, self.checkpoint_hash)
        write_json_atomic(self.out / "manifest.json", manifest, overwrite=True)
