"""Label schemas: the ordered classes of a labelling task, their colours and text prompts.

A :class:`LabelSchema` is what every other part agrees on: ids are contiguous (0 = background),
colours render labels in napari and in EndoVis 2018 RGB label files, ``value`` is the pixel value
a class has in single-channel encodings (CholecSeg8k codes, EndoVis 2017 ground truth), and
``prompts`` are names a CLIP text encoder understands.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> LabelSchema:
        return _schema_from_dict(data, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelSchema:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError as e:
            raise SchemaError(f"{path}: schema file not found") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SchemaError(f"{path}: not valid JSON ({e})") from e
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


def _classes(rows: Iterable[Sequence[Any]]) -> tuple[LabelClass, ...]:
    out = []
    for i, row in enumerate(rows):
        name, color, prompts, *value = row
        out.append(LabelClass(i, name, tuple(color), tuple(prompts), value[0] if value else None))
    return tuple(out)


ENDOVIS2018 = LabelSchema(
    "endovis2018",
    _classes(
        [
            ("background-tissue", (0, 0, 0), ("tissue", "background tissue", "organ surface")),
            ("instrument-shaft", (0, 255, 0), ("instrument shaft", "metal shaft of a tool")),
            ("instrument-clasper", (0, 255, 255), ("instrument clasper", "grasper jaws")),
            ("instrument-wrist", (125, 255, 12), ("instrument wrist", "robotic wrist joint")),
            ("kidney-parenchyma", (255, 55, 0), ("kidney", "kidney parenchyma")),
            ("covered-kidney", (24, 55, 125), ("covered kidney", "kidney covered by fat")),
            ("thread", (187, 155, 25), ("thread", "suture thread")),
            ("clamps", (0, 255, 125), ("clamp", "surgical clip")),
            ("suturing-needle", (255, 255, 125), ("needle", "suturing needle")),
            ("suction-instrument", (123, 15, 175), ("suction instrument", "suction tube")),
            ("small-intestine", (124, 155, 5), ("small intestine", "bowel", "intestine")),
            ("ultrasound-probe", (12, 255, 141), ("ultrasound probe", "probe")),
        ]
    ),
    description="EndoVis 2018 robotic scene segmentation (12 classes, RGB label files)",
)

ENDOVIS2017_PARTS = LabelSchema(
    "endovis2017-parts",
    _classes(
        [
            ("background", (0, 0, 0), ("tissue", "background"), 0),
            ("shaft", (0, 255, 0), ("instrument shaft", "metal shaft"), 30),
            ("wrist", (125, 255, 12), ("instrument wrist", "wrist joint"), 100),
            ("clasper", (0, 255, 255), ("instrument clasper", "grasper jaws"), 255),
        ]
    ),
    encoding="value",
    description="EndoVis 2017 instrument parts (test ground truth values 0/30/100/255)",
)

ENDOVIS2017_TYPE = LabelSchema(
    "endovis2017-type",
    _classes(
        [
            ("background", (0, 0, 0), ("tissue", "background")),
            ("bipolar-forceps", (0, 255, 0), ("bipolar forceps", "maryland bipolar forceps")),
            ("prograsp-forceps", (0, 255, 255), ("prograsp forceps", "grasping forceps")),
            ("large-needle-driver", (125, 255, 12), ("needle driver", "large needle driver")),
            ("vessel-sealer", (255, 55, 0), ("vessel sealer",)),
            ("grasping-retractor", (24, 55, 125), ("grasping retractor", "retractor")),
            ("monopolar-curved-scissors", (187, 155, 25), ("curved scissors", "scissors")),
            ("other", (123, 15, 175), ("ultrasound probe", "surgical instrument")),
        ]
    ),
    encoding="value",
    description="EndoVis 2017 instrument types (test ground truth: type id per pixel)",
)

ENDOVIS2017_BINARY = LabelSchema(
    "endovis2017-binary",
    _classes(
        [
            ("background", (0, 0, 0), ("tissue", "background"), 0),
            ("instrument", (0, 255, 0), ("surgical instrument", "robotic instrument"), 255),
        ]
    ),
    encoding="value",
    description="EndoVis 2017 binary instrument segmentation (0/255)",
)

CHOLECSEG8K = LabelSchema(
    "cholecseg8k",
    _classes(
        [
            ("black-background", (127, 127, 127), ("black background", "dark border"), 50),
            ("abdominal-wall", (210, 140, 140), ("abdominal wall",), 11),
            ("liver", (255, 114, 114), ("liver",), 21),
            ("gastrointestinal-tract", (231, 70, 156), ("gastrointestinal tract", "bowel"), 13),
            ("fat", (186, 183, 75), ("fat", "fatty tissue"), 12),
            ("grasper", (170, 255, 0), ("grasper", "surgical grasper"), 31),
            ("connective-tissue", (255, 85, 0), ("connective tissue",), 23),
            ("blood", (255, 0, 0), ("blood",), 24),
            ("cystic-duct", (255, 255, 0), ("cystic duct",), 25),
            ("l-hook-electrocautery", (169, 255, 184), ("electrocautery hook", "l-hook"), 32),
            ("gallbladder", (255, 160, 165), ("gallbladder",), 22),
            ("hepatic-vein", (0, 50, 128), ("hepatic vein",), 33),
            ("liver-ligament", (111, 74, 0), ("liver ligament",), 5),
        ]
    ),
    description="CholecSeg8k laparoscopic cholecystectomy (13 classes; codes in 'value')",
)

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
