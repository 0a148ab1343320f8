"""Label schemas: the ordered classes of a labelling task, their colours and text prompts.

A :class:`LabelSchema` is what every other part agrees on: ids are contiguous (0 = background),
colours render labels in napari and in EndoVis 2018 RGB label files, ``value`` is the pixel value
a class has in single-channel encodings (CholecSeg8k codes, EndoVis 2017 ground truth), and
``prompts`` are names a CLIP text encoder understands.

:mod:`.core` defines the classes and their JSON form, :mod:`.builtin` the built-in schemas;
this module is the registry (:func:`get_schema`, :func:`list_schemas`, :func:`register_schema`).
"""

from __future__ import annotations

import os

from napari_cliprl.schemas.builtin import (
    CHOLECSEG8K,
    ENDOVIS2017_BINARY,
    ENDOVIS2017_PARTS,
    ENDOVIS2017_TYPE,
    ENDOVIS2018,
)
from napari_cliprl.schemas.core import (
    ENCODINGS,
    IGNORE_INDEX,
    LabelClass,
    LabelSchema,
    SchemaError,
)

__all__ = [
    "CHOLECSEG8K",
    "ENCODINGS",
    "ENDOVIS2017_BINARY",
    "ENDOVIS2017_PARTS",
    "ENDOVIS2017_TYPE",
    "ENDOVIS2018",
    "IGNORE_INDEX",
    "LabelClass",
    "LabelSchema",
    "SchemaError",
    "get_schema",
    "list_schemas",
    "register_schema",
]

_REGISTRY: dict[str, LabelSchema] = {
    s.name: s
    for s in (ENDOVIS2018, ENDOVIS2017_PARTS, ENDOVIS2017_TYPE, ENDOVIS2017_BINARY, CHOLECSEG8K)
}


def list_schemas() -> list[str]:
    """Names of the registered schemas."""
    return sorted(_REGISTRY)


def register_schema(schema: LabelSchema) -> None:
    _REGISTRY[schema.name] = schema


def get_schema(name_or_path: str | os.PathLike | LabelSchema) -> LabelSchema:
    """A registered schema by name, or a custom one from a JSON file path."""
    if isinstance(name_or_path, LabelSchema):
        return name_or_path
    key = str(name_or_path)
    if key in _REGISTRY:
        return _REGISTRY[key]
    if key.endswith(".json") or os.path.sep in key:
        return LabelSchema.load(key)
    raise SchemaError(f"unknown schema {key!r}; built-in schemas: {', '.join(list_schemas())}")
