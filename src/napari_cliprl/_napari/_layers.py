"""Labels layers in a schema's colours and class names, and the layers of a session."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from napari_cliprl.annotation.session import (
    CORRECTED,
    SESSION_FILE,
    Session,
    find_session,
    session_dir_for,
)
from napari_cliprl.schemas import LabelSchema, get_schema
from napari_cliprl.steps import proposal_labels

SCHEMA_KEY = "cliprl_schema"  # layer.metadata key: schema name (the writer's format)
SCHEMA_DICT_KEY = "cliprl_schema_dict"  # layer.metadata key: full schema (custom schemas)
SOURCE_KEY = "cliprl_source"  # image layer.metadata key: video file or frame folder
SESSION_KEY = "cliprl_session"  # image layer.metadata key: its session folder


def schema_features(schema: LabelSchema) -> dict[str, list]:
    """Layer features table: one row per class id (``index``) with its ``name``."""
    index = [c.id for c in schema.classes] + [schema.ignore_index]
    names = [c.name for c in schema.classes] + ["ignore"]
    return {"index": index, "name": names}


def schema_layer_kwargs(schema: LabelSchema) -> dict[str, Any]:
    """Keyword arguments giving a Labels layer the schema's colours and class names."""
    return {
        "colormap": DirectLabelColormap(color_dict=schema.napari_colors()),
        "features": schema_features(schema),
        "metadata": {SCHEMA_KEY: schema.name, SCHEMA_DICT_KEY: schema.to_dict()},
    }


def labels_layer_data(data: Any, schema: LabelSchema, name: str) -> tuple[Any, dict, str]:
    """A napari LayerDataTuple for label ids ``data`` in ``schema``."""
    return data, {"name": name, **schema_layer_kwargs(schema)}, "labels"


def schema_of_layer(layer: Labels, default: str = "endovis2018") -> LabelSchema:
    """The schema stored in a Labels layer's metadata (``default`` when none)."""
    return schema_from_metadata(layer.metadata, default)


def schema_from_metadata(metadata: dict, default: str = "endovis2018") -> LabelSchema:
    name = metadata.get(SCHEMA_KEY)
    if name:
        try:
            return get_schema(name)
        except ValueError:
            if SCHEMA_DICT_KEY in metadata:
                return LabelSchema.from_dict(metadata[SCHEMA_DICT_KEY])
            raise
    return get_schema(default)


def source_of_layer(layer: Image) -> str | None:
    """The video file or frame folder an image layer was read from, if known."""
    source = layer.metadata.get(SOURCE_KEY) or getattr(layer.source, "path", None)
    return str(source) if source else None


def session_folder(image: Image, chosen: str | None = None) -> Path:
    """Where the session of ``image`` lives: the user's choice, the one it already has,
    beside its video (per user when that is read-only), or a new temporary folder."""
    if chosen:
        return Path(chosen)
    if image.metadata.get(SESSION_KEY):
        return Path(image.metadata[SESSION_KEY])
    source = source_of_layer(image)
    if source:
        folder = session_dir_for(source)
    else:
        folder = Path(tempfile.mkdtemp(prefix="cliprl-session-"))
    image.metadata[SESSION_KEY] = str(folder)
    return folder


def restorable_folder(image: Image | None, chosen: str | None = None) -> Path | None:
    """A saved session for ``image`` (chosen folder, its own, or beside its video), or None."""
    if image is None:
        return None
    candidate = chosen or image.metadata.get(SESSION_KEY)
    if candidate and (Path(candidate) / SESSION_FILE).is_file():
        return Path(candidate)
    source = source_of_layer(image)
    return find_session(source) if source else None


def painted_frames(atoms: Iterable[Any]) -> set[int]:
    """Frame indices (axis 0) touched by the history atoms of a Labels ``paint`` event.

    napari 0.9 stores ``_MaskedPaintAtom(slice_key, ...)`` for brush/fill/polygon edits and
    ``(indices, old_values, new_values)`` tuples for :meth:`Labels.data_setitem`.
    """
    frames: set[int] = set()
    for atom in atoms:
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            if isinstance(first, slice):
                frames.update(range(first.start or 0, first.stop))
            else:
                frames.add(int(first))
            continue
        indices = atom[0]
        first = indices[0] if isinstance(indices, tuple) else indices
        frames.update(int(i) for i in np.unique(np.asarray(first)))
    return frames


class SessionLayers:
    """The viewer layers of a session: read-only proposals and the editable ``corrected``.

    Layers display the session's zarr arrays directly (frames are read when shown, edits
    go straight to disk). ``on_reviewed(frames)`` is called with the frames an edit touched.
    """

    def __init__(
        self,
        viewer: Any,
        session: Session,
        on_reviewed: Callable[[list[int]], None],
        scale: tuple[float, ...] | None = None,
    ) -> None:
        self.viewer = viewer
        self.session = session
        self._on_reviewed = on_reviewed
        self.layers: dict[str, Labels] = {}
        kwargs = schema_layer_kwargs(session.schema)
        for name in session.layer_names:
            if name in viewer.layers:
                viewer.layers.remove(name)
            layer = viewer.add_labels(
                session.array(name), name=name, scale=scale, **_copy_kwargs(kwargs)
            )
            layer.metadata["cliprl_session_dir"] = str(session.folder)
            if name != CORRECTED:
                layer.editable = False
                layer.visible = False
            self.layers[name] = layer
        self.corrected.events.paint.connect(self._on_paint)

    @property
    def corrected(self) -> Labels:
        return self.layers[CORRECTED]

    @property
    def proposals(self) -> list[Labels]:
        return [self.layers[n] for n in proposal_labels(self.session.steps)]

    def is_current(self) -> bool:
        """True while every layer of this session is still in the viewer."""
        return all(layer in self.viewer.layers for layer in self.layers.values())

    def refresh(self, index: int | None = None) -> None:
        """Redraw the layers (only when ``index`` is None or the frame on screen)."""
        if index is not None and self.current_frame() != index:
            return
        for layer in self.layers.values():
            if layer in self.viewer.layers:
                layer.refresh()

    def current_frame(self) -> int:
        step = self.viewer.dims.current_step
        return int(step[0]) if len(step) >= 3 else 0

    def disconnect(self) -> None:
        self.corrected.events.paint.disconnect(self._on_paint)

    def _on_paint(self, event: Any) -> None:
        frames = painted_frames(event.value)
        if frames:
            self._on_reviewed(sorted(frames))


def _copy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    out["metadata"] = dict(kwargs["metadata"])
    out["features"] = {k: list(v) for k, v in kwargs["features"].items()}
    return out
