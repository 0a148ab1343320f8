"""Label schemas: built-ins match the datasets, JSON round trips, bad input is named."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from napari_cliprl import schemas
from napari_cliprl.schemas import (
    LabelClass,
    LabelSchema,
    SchemaError,
    get_schema,
    list_schemas,
    register_schema,
)

# DESIGN section 3, EndoVis 2018 labels.json.
ENDOVIS2018_TABLE = [
    (0, "background-tissue", (0, 0, 0)),
    (1, "instrument-shaft", (0, 255, 0)),
    (2, "instrument-clasper", (0, 255, 255)),
    (3, "instrument-wrist", (125, 255, 12)),
    (4, "kidney-parenchyma", (255, 55, 0)),
    (5, "covered-kidney", (24, 55, 125)),
    (6, "thread", (187, 155, 25)),
    (7, "clamps", (0, 255, 125)),
    (8, "suturing-needle", (255, 255, 125)),
    (9, "suction-instrument", (123, 15, 175)),
    (10, "small-intestine", (124, 155, 5)),
    (11, "ultrasound-probe", (12, 255, 141)),
]

CHOLEC_CODES = {
    "black-background": 50,
    "abdominal-wall": 11,
    "liver": 21,
    "gastrointestinal-tract": 13,
    "fat": 12,
    "grasper": 31,
    "connective-tissue": 23,
    "blood": 24,
    "cystic-duct": 25,
    "l-hook-electrocautery": 32,
    "gallbladder": 22,
    "hepatic-vein": 33,
    "liver-ligament": 5,
}


def _custom() -> dict[str, Any]:
    return {
        "name": "my-task",
        "description": "two instruments",
        "classes": [
            {"id": 0, "name": "background", "color": [0, 0, 0]},
            {"id": 1, "name": "grasper", "color": [0, 255, 0], "prompts": ["grasper", "forceps"]},
            {"id": 2, "name": "hook", "color": [255, 0, 255], "value": 40},
        ],
    }


def test_endovis2018_is_exactly_the_published_table() -> None:
    schema = get_schema("endovis2018")
    assert schema.num_classes == 12
    got = [(c.id, c.name, c.color) for c in schema.classes]
    assert got == ENDOVIS2018_TABLE
    np.testing.assert_array_equal(schema.colors, [row[2] for row in ENDOVIS2018_TABLE])
    assert schema.colors.dtype == np.uint8
    assert schema.labels_json()[4] == {
        "name": "kidney-parenchyma",
        "color": [255, 55, 0],
        "classid": 4,
    }
    assert schema.class_id("Small Intestine") == 10  # case and separators do not matter
    assert schema.encoding == "rgb" and schema.ignore_index == 255


def test_endovis2017_tasks() -> None:
    parts = get_schema("endovis2017-parts")
    assert parts.names == ["background", "shaft", "wrist", "clasper"]
    # Official test ground truth values: 30 shaft, 100 wrist, 255 clasper.
    assert [c.pixel_value for c in parts.classes] == [0, 30, 100, 255]
    types = get_schema("endovis2017-type")
    assert types.num_classes == 8
    assert types.class_id("bipolar forceps") == 1 and types.class_id("other") == 7
    binary = get_schema("endovis2017-binary")
    assert binary.num_classes == 2 and [c.pixel_value for c in binary.classes] == [0, 255]
    assert {parts.encoding, types.encoding, binary.encoding} == {"value"}


def test_cholecseg8k_codes() -> None:
    schema = get_schema("cholecseg8k")
    assert schema.num_classes == 13
    assert {c.name: c.pixel_value for c in schema.classes} == CHOLEC_CODES
    codes = np.array([[50, 21, 255], [31, 5, 33]], np.uint8)  # 255 = ignore, kept as is
    np.testing.assert_array_equal(schema.values_to_ids(codes), [[0, 2, 255], [5, 12, 11]])


def test_list_and_get_schemas() -> None:
    assert set(list_schemas()) >= {
        "endovis2018",
        "endovis2017-parts",
        "endovis2017-type",
        "endovis2017-binary",
        "cholecseg8k",
    }
    schema = get_schema("endovis2018")
    assert get_schema(schema) is schema
    with pytest.raises(SchemaError, match="unknown schema 'nope'.*endovis2018"):
        get_schema("nope")


@pytest.mark.parametrize("name", ["endovis2018", "endovis2017-parts", "cholecseg8k"])
def test_builtin_json_round_trip(tmp_path, name: str) -> None:
    schema = get_schema(name)
    path = tmp_path / f"{name}.json"
    schema.save(path)
    loaded = LabelSchema.load(path)
    assert loaded == schema
    assert get_schema(str(path)) == schema  # a .json path is loaded
    assert LabelSchema.from_dict(json.loads(path.read_text())) == schema


def test_custom_schema_round_trip(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(schemas, "_REGISTRY", dict(schemas._REGISTRY))  # keep others clean
    schema = LabelSchema.from_dict(_custom(), "custom.json")
    assert schema.names == ["background", "grasper", "hook"]
    assert schema.classes[1].prompt_names == ("grasper", "forceps")
    assert schema.classes[2].prompt_names == ("hook",)  # default prompt: the name
    assert [c.pixel_value for c in schema.classes] == [0, 1, 40]
    schema.save(tmp_path / "s.json")
    assert LabelSchema.load(tmp_path / "s.json") == schema
    register_schema(schema)
    assert get_schema("my-task") is schema


def _broken(edit) -> dict[str, Any]:
    data = copy.deepcopy(_custom())
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("name"), "missing field 'name'"),
        (lambda d: d.update(name=""), "field 'name'"),
        (lambda d: d.update(name=None), "field 'name'"),
        (lambda d: d.pop("classes"), "missing field 'classes'"),
        (lambda d: d.update(classes="abc"), "field 'classes' must be a list"),
        (lambda d: d.update(classes=d["classes"][:1]), "field 'classes' needs at least 2"),
        (lambda d: d["classes"][1].pop("color"), r"missing field 'classes\[1\].color'"),
        (lambda d: d["classes"][1].update(color=[0, 255]), r"'classes\[1\].color'"),
        (lambda d: d["classes"][1].update(color=[0, 256, 0]), r"'classes\[1\].color'.*256"),
        (lambda d: d["classes"][1].update(color="green"), r"'classes\[1\].color'"),
        (lambda d: d["classes"][2].update(color=[0, 255, 0]), r"'classes\[\]\.color'.*unique"),
        (lambda d: d["classes"][2].update(name="Grasper"), r"'classes\[\]\.name'.*unique"),
        (lambda d: d["classes"][2].update(name=7), r"'classes\[2\].name'"),
        (lambda d: d["classes"][2].update(id=5), r"'classes\[2\].id' must be 2"),
        (lambda d: d["classes"].reverse(), r"'classes\[0\].id' must be 0"),
        (lambda d: d["classes"][2].update(value=1), r"'classes\[\]\.value'.*unique"),
        (lambda d: d["classes"][2].update(value=300), r"'classes\[\]\.value'"),
        (lambda d: d["classes"][2].update(value="40"), r"'classes\[2\].value'"),
        (lambda d: d["classes"][1].update(prompts="grasper"), r"'classes\[1\].prompts'"),
        (lambda d: d["classes"].__setitem__(0, 5), r"'classes\[0\]' must be an object"),
        (lambda d: d.update(encoding="png"), "field 'encoding'.*'png'"),
        (lambda d: d.update(ignore_index=1), "field 'ignore_index'"),
        (lambda d: d.update(ignore_index="x"), "field 'ignore_index'"),
    ],
)
def test_malformed_schema_is_refused_naming_the_field(edit, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        LabelSchema.from_dict(_broken(edit), "custom.json")
    assert str(info.value).startswith("custom.json: ")


def test_duplicate_colour_names_both_classes() -> None:
    data = _broken(lambda d: d["classes"][2].update(color=[0, 255, 0]))
    with pytest.raises(SchemaError, match=r"classes 1 \('grasper'\) and 2 \('hook'\)"):
        LabelSchema.from_dict(data)


def test_direct_construction_is_validated_and_normalised() -> None:
    classes = (
        LabelClass(0, "bg", [0, 0, 0]),  # list colour, numpy ints: normalised to ints
        LabelClass(np.int64(1), "tool", tuple(np.array([1, 2, 3], np.uint8)), "tool"),
    )
    schema = LabelSchema("direct", classes)
    assert schema.classes[1].color == (1, 2, 3) and type(schema.classes[1].color[0]) is int
    assert schema.classes[1].prompts == ("tool",)
    json.dumps(schema.to_dict())  # JSON-serialisable
    hash(schema)  # usable as a cache key
    with pytest.raises(SchemaError, match=r"'classes\[\]\.id' must be 0, 1"):
        LabelSchema("bad", (classes[1], classes[0]))
    with pytest.raises(SchemaError, match=r"'classes\[1\]\.color'"):
        LabelSchema("bad", (classes[0], LabelClass(1, "x", (1, 2))))  # type: ignore[arg-type]


def test_load_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(SchemaError, match="missing.json: schema file not found"):
        LabelSchema.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SchemaError, match="bad.json: not a valid schema file: Expecting"):
        LabelSchema.load(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(SchemaError, match="bad.json: a schema must be a JSON object"):
        get_schema(str(bad))


def test_rgb_ids_round_trip() -> None:
    schema = get_schema("endovis2018")
    ids = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = schema.ids_to_rgb(ids)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[1, 0], (255, 55, 0))  # id 4, kidney
    np.testing.assert_array_equal(schema.rgb_to_ids(rgb), ids)
    rgba = np.concatenate([rgb, np.full((3, 4, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(schema.rgb_to_ids(rgba), ids)  # alpha channel ignored


def test_rgb_to_ids_unknown_colour_names_source_count_and_colour() -> None:
    schema = get_schema("endovis2018")
    rgb = schema.ids_to_rgb(np.zeros((4, 5), np.uint8))
    rgb[0, :3] = (10, 20, 30)  # 3 pixels of an unknown colour
    rgb[1, 0] = (1, 1, 1)  # and 1 pixel of another
    with pytest.raises(SchemaError) as info:
        schema.rgb_to_ids(rgb, source="seq_1/labels/frame007.png")
    message = str(info.value)
    assert message.startswith("seq_1/labels/frame007.png: 4 pixels")
    assert "RGB (10, 20, 30), 3 pixels" in message  # the most common unknown colour
    assert "'endovis2018'" in message
    with pytest.raises(SchemaError, match="frame.png: expected an RGB label image"):
        schema.rgb_to_ids(np.zeros((4, 5), np.uint8), source="frame.png")


def test_values_to_ids_and_back() -> None:
    parts = get_schema("endovis2017-parts")
    values = np.array([[0, 30], [100, 255]], np.uint8)
    ids = parts.values_to_ids(values)
    assert ids.dtype == np.uint8
    np.testing.assert_array_equal(ids, [[0, 1], [2, 3]])  # 255 is the clasper here
    np.testing.assert_array_equal(parts.ids_to_values(ids), values)
    with pytest.raises(SchemaError, match=r"gt.png: 2 pixels have values.*\[10, 20\]"):
        parts.values_to_ids(np.array([[10, 20], [0, 0]], np.uint8), source="gt.png")
    binary = get_schema("endovis2017-binary")
    np.testing.assert_array_equal(binary.values_to_ids(np.array([[0, 255]])), [[0, 1]])


def test_napari_colors() -> None:
    colors = get_schema("endovis2018").napari_colors()
    assert colors[0][3] == 0.0 and colors[None][3] == 0.0  # background transparent
    assert colors[1] == (0.0, 1.0, 0.0, 1.0)
    assert len([k for k in colors if k is not None]) == 12
