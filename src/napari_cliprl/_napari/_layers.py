"""Labels layers in a schema's colours and class names; where an image layer's session lives."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from napari_cliprl.annotation.session_info import SESSION_FILE, find_session, session_dir_for
from napari_cliprl.schemas import LabelSchema, get_schema

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


def copy_layer_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy of :func:`schema_layer_kwargs` that a new layer may own (fresh dicts)."""
    out = dict(kwargs)
    out["metadata"] = dict(kwargs["metadata"])
    out["features"] = {k: list(v) for k, v in kwargs["features"].items()}
    return out
