"""LabelClass and LabelSchema: validation, label encodings (RGB colours, pixel values) and JSON.

Reading a schema file goes through :func:`napari_cliprl.files.read_json` (a regular file, at
most ``MAX_JSON_BYTES``) and a schema holds at most ``MAX_CLASSES`` classes (never above 255:
label maps are uint8 and 255 means ignore).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_cliprl.files import FileProblemError, read_json, write_json_atomic
from napari_cliprl.limits import LimitError, check_limit

IGNORE_INDEX = 255
ENCODINGS = ("rgb", "value")


class SchemaError(ValueError):
    """A schema definition or a label file that does not fit a schema."""


@dataclass(frozen=True)
class LabelClass:
    id: int  # contiguous class id, 0 = background
    name: str  # canonical name, e.g. "instrument-shaft"
    color: tuple[int, int, int]  # RGB used for display and RGB label files
    prompts: tuple[str, ...] = ()  # names/synonyms for the CLIP text encoder
    value: int | None = None  # pixel value in single-channel encodings (None: the id)

    def __post_init__(self) -> None:
        # Accept lists and numpy integers (e.g. a colour read from an image or JSON) and keep
        # the class hashable; anything else is left for LabelSchema to report by field.
        color = self.color
        if isinstance(color, Iterable) and not isinstance(color, str):
            color = tuple(color)
            if all(_is_int(v) for v in color):
                color = tuple(int(v) for v in color)
            object.__setattr__(self, "color", color)
        prompts = (self.prompts,) if isinstance(self.prompts, str) else tuple(self.prompts)
        object.__setattr__(self, "prompts", prompts)
        for key in ("id", "value"):
            if _is_int(getattr(self, key)):
                object.__setattr__(self, key, int(getattr(self, key)))

    @property
    def prompt_names(self) -> tuple[str, ...]:
        return self.prompts or (self.name.replace("-", " ").replace("_", " "),)

    @property
    def pixel_value(self) -> int:
        return self.id if self.value is None else self.value


@dataclass(frozen=True)
class LabelSchema:
    name: str  # registry name, e.g. "endovis2018"
    classes: tuple[LabelClass, ...]
    encoding: str = "rgb"  # how the EndoVis writer stores labels: "rgb" or "value"
    ignore_index: int = IGNORE_INDEX  # label id meaning "not annotated"
    description: str = ""
    _by_color: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _validate(self)
        object.__setattr__(self, "_by_color", {c.color: c.id for c in self.classes})

    # -- views -----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def colors(self) -> np.ndarray:
        """K x 3 uint8 RGB colours, row k for class id k."""
        return np.array([c.color for c in self.classes], dtype=np.uint8)

    def class_id(self, name: str) -> int:
        """Id of the class called ``name`` (case-insensitive, '-'/'_'/' ' alike)."""
        key = _norm(name)
        for c in self.classes:
            if _norm(c.name) == key:
                return c.id
        raise KeyError(f"schema {self.name!r} has no class {name!r}; classes: {self.names}")

    def napari_colors(self) -> dict[int | None, tuple[float, float, float, float]]:
        """Colour dict for napari's DirectLabelColormap (RGBA floats, background transparent)."""
        colors: dict[int | None, tuple[float, float, float, float]] = {
            c.id: (*(v / 255 for v in c.color), 1.0) for c in self.classes
        }
        colors[0] = (0.0, 0.0, 0.0, 0.0)
        colors[None] = (0.0, 0.0, 0.0, 0.0)
        return colors

    # -- encodings -------------------------------------------------------------------------
    def ids_to_rgb(self, ids: np.ndarray) -> np.ndarray:
        """H x W uint8 class ids -> H x W x 3 uint8 RGB (ignore -> black)."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = self.colors
        return lut[np.asarray(ids, dtype=np.uint8)]

    def rgb_to_ids(self, rgb: np.ndarray, source: str | os.PathLike = "<array>") -> np.ndarray:
        """H x W x 3 RGB labels -> H x W uint8 ids; a colour in no class raises SchemaError."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[-1] < 3:
            raise SchemaError(f"{source}: expected an RGB label image, got shape {rgb.shape}")
        packed = _pack(rgb[..., :3])
        keys = np.array([_pack(np.array(c)) for c in self._by_color], dtype=np.int64)
        ids = np.array(list(self._by_color.values()), dtype=np.uint8)
        order = np.argsort(keys)
        pos = np.clip(np.searchsorted(keys[order], packed), 0, len(keys) - 1)
        hit = keys[order][pos] == packed
        if not hit.all():
            bad = packed[~hit]
            values, counts = np.unique(bad, return_counts=True)
            worst = values[counts.argmax()]
            colour = ((worst >> 16) & 255, (worst >> 8) & 255, worst & 255)
            raise SchemaError(
                f"{source}: {int((~hit).sum())} pixels have colours in no class of schema "
                f"{self.name!r} (most common: RGB {tuple(int(v) for v in colour)}, "
                f"{int(counts.max())} pixels)"
            )
        return ids[order][pos]

    def ids_to_values(self, ids: np.ndarray) -> np.ndarray:
        """H x W class ids -> H x W uint8 pixel values of the single-channel encoding."""
        lut = np.zeros(256, dtype=np.uint8)
        for c in self.classes:
            lut[c.id] = c.pixel_value
        return lut[np.asarray(ids, dtype=np.uint8)]

    def values_to_ids(
        self, values: np.ndarray, source: str | os.PathLike = "<array>"
    ) -> np.ndarray:
        """H x W pixel values -> H x W uint8 class ids; ``ignore_index`` passes through."""
        lut = np.full(256, -1, dtype=np.int16)
        for c in self.classes:
            lut[c.pixel_value] = c.id
        if lut[self.ignore_index] < 0:
            lut[self.ignore_index] = self.ignore_index
        out = lut[np.asarray(values, dtype=np.uint8)]
        if (out < 0).any():
            bad, counts = np.unique(np.asarray(values)[out < 0], return_counts=True)
            raise SchemaError(
                f"{source}: {int(counts.sum())} pixels have values in no class of schema "
                f"{self.name!r}: {sorted(int(b) for b in bad)}"
            )
        return out.astype(np.uint8)

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "encoding": self.encoding,
            "ignore_index": self.ignore_index,
            "classes": [
                {
                    "id": c.id,
                    "name": c.name,
                    "color": list(c.color),
                    "prompts": list(c.prompts),
                    **({"value": c.value} if c.value is not None else {}),
                }
                for c in self.classes
            ],
        }

    def labels_json(self) -> list[dict[str, Any]]:
        """The EndoVis 2018 ``labels.json`` list: name, color, classid."""
        return [{"name": c.name, "color": list(c.color), "classid": c.id} for c in self.classes]

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON, atomically (replacing ``path``)."""
        write_json_atomic(path, self.to_dict(), overwrite=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> LabelSchema:
        return _schema_from_dict(data, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelSchema:
        """A schema JSON file (a regular file of at most MAX_JSON_BYTES); SchemaError naming
        the file for anything wrong with it."""
        try:
            data = read_json(path, "schema file")
        except (FileProblemError, LimitError) as e:
            raise SchemaError(str(e)) from e
        return _schema_from_dict(data, str(path))


def _is_int(value: Any) -> bool:
    """True for python and numpy integers, not for bools."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_rgb(color: Any) -> bool:
    """True for a tuple of 3 integers in 0..255."""
    return (
        isinstance(color, tuple)
        and len(color) == 3
        and all(_is_int(v) and 0 <= v <= 255 for v in color)
    )


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(" ", "-")


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _validate(schema: LabelSchema) -> None:
    where = f"schema {schema.name!r}"
    if not isinstance(schema.name, str) or not schema.name:
        raise SchemaError("schema: field 'name' must be a non-empty string")
    if len(schema.classes) < 2:
        raise SchemaError(f"{where}: field 'classes' needs at least 2 classes")
    if len(schema.classes) > 255:
        raise SchemaError(f"{where}: field 'classes' has more than 255 classes")
    if schema.encoding not in ENCODINGS:
        raise SchemaError(
            f"{where}: field 'encoding' must be one of {ENCODINGS}, got {schema.encoding!r}"
        )
    ids = [c.id for c in schema.classes]
    if ids != list(range(len(schema.classes))):
        raise SchemaError(
            f"{where}: field 'classes[].id' must be 0, 1, ..., K-1 in order, got {ids}"
        )
    if not _is_int(schema.ignore_index) or not len(schema.classes) <= schema.ignore_index <= 255:
        raise SchemaError(
            f"{where}: field 'ignore_index' must be an integer in [K={len(schema.classes)}, 255], "
            f"got {schema.ignore_index!r}"
        )
    for c in schema.classes:
        if not _is_rgb(c.color):
            raise SchemaError(
                f"{where}: field 'classes[{c.id}].color' must be 3 ints in 0..255, got {c.color!r}"
            )
    _check_unique(where, "color", [c.color for c in schema.classes], schema)
    if not all(isinstance(c.name, str) and c.name.strip() for c in schema.classes):
        raise SchemaError(f"{where}: field 'classes[].name' must be non-empty strings")
    _check_unique(where, "name", [_norm(c.name) for c in schema.classes], schema)
    values = [c.pixel_value for c in schema.classes]
    if not all(_is_int(v) and 0 <= v <= 255 for v in values):
        raise SchemaError(f"{where}: field 'classes[].value' must be integers in 0..255: {values}")
    _check_unique(where, "value", values, schema)


def _check_unique(where: str, key: str, items: list[Any], schema: LabelSchema) -> None:
    """SchemaError naming the first repeated ``classes[].key`` and the classes sharing it."""
    seen: dict[Any, int] = {}
    for i, item in enumerate(items):
        if item in seen:
            a, b = schema.classes[seen[item]], schema.classes[i]
            raise SchemaError(
                f"{where}: field 'classes[].{key}' must be unique: classes {a.id} ({a.name!r}) "
                f"and {b.id} ({b.name!r}) share {item!r}"
            )
        seen[item] = i


def _schema_from_dict(data: Any, source: str) -> LabelSchema:
    if not isinstance(data, dict):
        raise SchemaError(f"{source}: a schema must be a JSON object")
    for key in ("name", "classes"):
        if key not in data:
            raise SchemaError(f"{source}: missing field {key!r}")
    if not isinstance(data["name"], str) or not data["name"]:
        raise SchemaError(f"{source}: field 'name' must be a non-empty string")
    if not isinstance(data["classes"], list):
        raise SchemaError(f"{source}: field 'classes' must be a list")
    try:
        check_limit("MAX_CLASSES", len(data["classes"]), source, "number of classes")
    except LimitError as e:
        raise SchemaError(str(e)) from e
    ignore_index = data.get("ignore_index", IGNORE_INDEX)
    if not _is_int(ignore_index):
        raise SchemaError(
            f"{source}: field 'ignore_index' must be an integer, got {ignore_index!r}"
        )
    classes = []
    for i, item in enumerate(data["classes"]):
        if not isinstance(item, dict):
            raise SchemaError(f"{source}: field 'classes[{i}]' must be an object")
        for key in ("name", "color"):
            if key not in item:
                raise SchemaError(f"{source}: missing field 'classes[{i}].{key}'")
        color = item["color"]
        if not isinstance(color, list | tuple) or len(color) != 3:
            raise SchemaError(f"{source}: field 'classes[{i}].color' must be [R, G, B]")
        prompts = item.get("prompts", [])
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise SchemaError(f"{source}: field 'classes[{i}].prompts' must be a list of strings")
        value = item.get("value")
        if value is not None and not _is_int(value):
            raise SchemaError(f"{source}: field 'classes[{i}].value' must be an integer")
        if not isinstance(item["name"], str):
            raise SchemaError(f"{source}: field 'classes[{i}].name' must be a string")
        cid = item.get("id", i)
        if cid != i:
            raise SchemaError(f"{source}: field 'classes[{i}].id' must be {i} (ids are 0..K-1)")
        classes.append(
            LabelClass(i, item["name"], tuple(color), tuple(prompts), value)  # type: ignore[arg-type]
        )
    try:
        return LabelSchema(
            name=data["name"],
            classes=tuple(classes),
            encoding=data.get("encoding", "rgb"),
            ignore_index=int(ignore_index),
            description=str(data.get("description", "")),
        )
    except SchemaError as e:
        raise SchemaError(f"{source}: {e}") from e
