"""Writer contributions: a Labels layer (optionally with its image) -> an EndoVis folder.

The folder follows the plugin's export layout (``labels/frameNNN.png`` in the encoding of the
layer's schema, ``labels.json``, ``schema.json``; ``left_frames/`` when an image layer is saved
with it), so the readers, ``cliprl evaluate`` and ``cliprl finetune`` read it back. The schema
is the one named in ``layer.metadata["cliprl_schema"]`` (EndoVis 2018 when absent). Existing
files are never overwritten: choose a new folder.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from napari_cliprl.annotation.export import export_names, write_label_stack
from napari_cliprl.io.lazy import as_frames

from ._layers import SOURCE_KEY, schema_from_metadata


def write_labels(path: str, data: Any, attributes: dict) -> list[str]:
    """Write one Labels layer (T x H x W or H x W ids) as an EndoVis folder at ``path``."""
    return _write(path, data, attributes, None)


def write_sequence(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write one Labels layer and, when given, one image layer (its frames) to ``path``."""
    labels = [(d, m) for d, m, kind in layer_data if kind == "labels"]
    images = [(d, m) for d, m, kind in layer_data if kind == "image"]
    if len(labels) != 1 or len(images) > 1:
        raise ValueError("save exactly one Labels layer (and at most one image layer)")
    image = images[0] if images else None
    return _write(path, labels[0][0], labels[0][1], image)


def _write(path: str, data: Any, attributes: dict, image: tuple[Any, dict] | None) -> list[str]:
    metadata = attributes.get("metadata") or {}
    schema = schema_from_metadata(metadata)
    if np.ndim(data) not in (2, 3):
        raise ValueError(f"labels must be H x W or T x H x W, got shape {np.shape(data)}")
    stack = data if np.ndim(data) == 3 else np.asarray(data)[None]
    frames = None
    if image is not None:
        frames = as_frames(image[0], bool(image[1].get("rgb", True)))
        if len(frames) != stack.shape[0] or frames.shape[1:3] != tuple(stack.shape[1:]):
            raise ValueError(
                f"image of {len(frames)} frames {frames.shape[1:3]} does not match labels "
                f"{tuple(stack.shape)}"
            )
    names = export_names(frames, stack.shape[0])
    manifest = _manifest(metadata, image, names, schema)
    written = write_label_stack(
        path,
        stack,
        list(range(stack.shape[0])),
        names,
        schema,
        frames=frames,
        manifest=manifest,
    )
    return [os.fspath(p) for p in written]


def _manifest(
    metadata: dict, image: tuple[Any, dict] | None, names: list[str], schema: Any
) -> dict | None:
    """Reviewed flags from the layer's session, when it is a session layer."""
    folder = metadata.get("cliprl_session_dir")
    if not folder:
        return None
    from napari_cliprl.annotation.session import Session, SessionError
    from napari_cliprl.io.export import make_manifest

    try:
        session = Session.open(folder)
    except SessionError:
        return None
    reviewed = set(session.reviewed)
    source = session.info.source or (
        image[1].get("metadata", {}).get(SOURCE_KEY, "") if image else ""
    )
    frames = [(n, i, i in reviewed) for i, n in enumerate(names)]
    return make_manifest(source, schema, frames, checkpoint=session.info.checkpoint_hash)
