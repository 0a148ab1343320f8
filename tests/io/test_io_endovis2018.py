"""EndoVis 2018 sequences: colours matched to classes, labels.json placement, bad colours."""

import json
from pathlib import Path

import numpy as np
import pytest
from _io_builders import make_endovis2018_seq, save_png

from napari_cliprl.io import DataError, read_endovis2018_sequence, read_labeled
from napari_cliprl.io.endovis2018 import write_endovis2018_sequence
from napari_cliprl.io.labels_json import schema_from_labels_json
from napari_cliprl.schemas import ENDOVIS2018, get_schema


@pytest.mark.parametrize("where", ["inside", "beside", "none"])
def test_read_sequence_matches_colours(tmp_path: Path, where: str) -> None:
    seq_dir, frames, ids = make_endovis2018_seq(tmp_path, labels_json=where)
    seq = read_labeled(seq_dir)
    assert seq.schema is ENDOVIS2018  # labels.json names differ ("intestine"): colour wins
    assert len(seq) == 3 and seq.frame_names == ["frame000", "frame001", "frame002"]
    for i in range(3):
        frame, labels = seq[i]
        np.testing.assert_array_equal(frame, frames[i])
        np.testing.assert_array_equal(labels, ids[i])
        assert labels.dtype == np.uint8


def test_unknown_colour_names_file_count_and_colour(tmp_path: Path) -> None:
    seq_dir, _, ids = make_endovis2018_seq(tmp_path)
    rgb = ENDOVIS2018.ids_to_rgb(ids[1])
    rgb[:2, :3] = (1, 2, 3)
    save_png(seq_dir / "labels" / "frame001.png", rgb)
    seq = read_endovis2018_sequence(seq_dir)
    with pytest.raises(DataError, match=r"frame001.png: 6 pixels .*RGB \(1, 2, 3\)"):
        seq.labels(1)


def test_round_trip_write_then_read(tmp_path: Path) -> None:
    _, frames, ids = make_endovis2018_seq(tmp_path / "src")
    labels = {f"frame{i:03d}": ids[i] for i in range(3)}
    images = {f"frame{i:03d}": frames[i] for i in range(3)}
    out = tmp_path / "out" / "seq_1"
    write_endovis2018_sequence(out, labels, images=images)
    assert json.loads((out / "labels.json").read_text())[1]["color"] == [0, 255, 0]
    seq = read_endovis2018_sequence(out)
    for i in range(3):
        np.testing.assert_array_equal(seq.labels(i), ids[i])
        np.testing.assert_array_equal(seq.frames[i], frames[i])
    with pytest.raises(FileExistsError, match="already exists"):
        write_endovis2018_sequence(out, labels)


def test_custom_labels_json_builds_a_schema(tmp_path: Path) -> None:
    entries = [
        {"name": "tool", "color": [9, 9, 9], "classid": 1},
        {"name": "bg", "color": [0, 0, 0], "classid": 0},
    ]
    (tmp_path / "labels.json").write_text(json.dumps(entries))
    schema = schema_from_labels_json(tmp_path / "labels.json")
    assert schema.names == ["bg", "tool"] and schema.colors[1].tolist() == [9, 9, 9]
    (tmp_path / "labels.json").write_text('[{"name": "x", "color": [1, 2], "classid": 0}]')
    with pytest.raises(DataError, match=r"labels.json: entry 0 must be"):
        schema_from_labels_json(tmp_path / "labels.json")


def test_missing_frame_and_empty_labels(tmp_path: Path) -> None:
    seq_dir, _, _ = make_endovis2018_seq(tmp_path)
    (seq_dir / "left_frames" / "frame002.png").unlink()
    with pytest.raises(DataError, match=r"frame002.png: frame file missing"):
        read_endovis2018_sequence(seq_dir)
    for f in (seq_dir / "labels").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="labels: folder holds no label PNGs"):
        read_endovis2018_sequence(seq_dir)


def test_explicit_schema_is_used_for_colours(tmp_path: Path) -> None:
    seq_dir, _, ids = make_endovis2018_seq(tmp_path, labels_json="none")
    seq = read_endovis2018_sequence(seq_dir, schema=get_schema("endovis2018"))
    np.testing.assert_array_equal(seq.labels(0), ids[0])
