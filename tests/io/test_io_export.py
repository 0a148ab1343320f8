"""The export layout: write_labels / read_export round trips, manifest, overwrite rules."""

import json
from pathlib import Path

import numpy as np
import pytest
from _io_builders import random_frames, random_ids, write_video
from PIL import Image

from napari_cliprl.io import (
    DataError,
    make_manifest,
    read_export,
    read_labeled,
    write_labels,
)
from napari_cliprl.schemas import CHOLECSEG8K, ENDOVIS2017_PARTS, ENDOVIS2017_TYPE, ENDOVIS2018

NAMES = ["frame000", "frame001", "frame002"]


def _data(k: int) -> tuple[dict, dict]:
    ids, frames = random_ids(3, 5, 6, k), random_frames(3, 5, 6)
    return dict(zip(NAMES, ids)), dict(zip(NAMES, frames))


@pytest.mark.parametrize("schema", [ENDOVIS2018, ENDOVIS2017_PARTS, ENDOVIS2017_TYPE, CHOLECSEG8K])
def test_round_trip_every_schema(tmp_path: Path, schema) -> None:
    labels, images = _data(schema.num_classes)
    write_labels(tmp_path, labels, schema, images=images)
    assert {p.name for p in tmp_path.iterdir()} == {
        "labels",
        "left_frames",
        "labels.json",
        "schema.json",
    }
    seq = read_labeled(tmp_path)
    assert seq.schema == schema and seq.frame_names == NAMES and seq.reviewed is None
    for i, name in enumerate(NAMES):
        np.testing.assert_array_equal(seq.labels(i), labels[name])
        np.testing.assert_array_equal(seq.frames[i], images[name])


def test_value_encoding_writes_official_values(tmp_path: Path) -> None:
    labels = {"frame000": np.array([[0, 1, 2, 3]], np.uint8)}
    write_labels(tmp_path, labels, ENDOVIS2017_PARTS)
    raw = np.asarray(Image.open(tmp_path / "labels" / "frame000.png"))
    assert raw.tolist() == [[0, 30, 100, 255]]


def test_ignore_pixels_round_trip(tmp_path: Path) -> None:
    ids = np.array([[0, 255, 3]], np.uint8)
    write_labels(tmp_path / "rgb", {"a": ids}, CHOLECSEG8K, images={"a": random_frames(1, 1, 3)[0]})
    np.testing.assert_array_equal(read_export(tmp_path / "rgb").labels(0), ids)
    write_labels(
        tmp_path / "type", {"a": ids}, ENDOVIS2017_TYPE, images={"a": random_frames(1, 1, 3)[0]}
    )
    np.testing.assert_array_equal(read_export(tmp_path / "type").labels(0), ids)
    with pytest.raises(DataError, match="ignore pixels cannot be stored"):
        write_labels(tmp_path / "parts", {"a": ids}, ENDOVIS2017_PARTS)


def test_bad_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"label ids \[12\] are not classes"):
        write_labels(tmp_path, {"a": np.full((2, 2), 12, np.uint8)}, ENDOVIS2018)
    with pytest.raises(DataError, match="must be H x W uint8"):
        write_labels(tmp_path, {"a": np.zeros((2, 2), np.int64)}, ENDOVIS2018)


def test_manifest_and_reviewed_only(tmp_path: Path) -> None:
    labels, images = _data(12)
    frames = [("frame000", 10, True), ("frame001", 11, False), ("frame002", 12, True)]
    manifest = make_manifest("clip.mp4", "endovis2018", frames, checkpoint="sha256:abc")
    write_labels(tmp_path, labels, "endovis2018", images=images, manifest=manifest)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["version"] == 1 and data["schema"] == "endovis2018"
    assert data["checkpoint"] == "sha256:abc" and data["frames"][1]["reviewed"] is False
    assert {"source", "created"} <= set(data)
    seq = read_export(tmp_path)
    assert seq.reviewed == [True, False, True] and seq.indices == [10, 11, 12]
    reviewed = read_labeled(tmp_path, reviewed_only=True)
    assert reviewed.frame_names == ["frame000", "frame002"] and reviewed.indices == [10, 12]
    np.testing.assert_array_equal(reviewed.labels(1), labels["frame002"])
    np.testing.assert_array_equal(reviewed.frames[1], images["frame002"])


def test_manifest_defaults_list_every_label_unreviewed(tmp_path: Path) -> None:
    labels, images = _data(12)
    write_labels(tmp_path, labels, ENDOVIS2018, images=images, manifest={"source": "x"})
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert [f["reviewed"] for f in data["frames"]] == [False] * 3
    with pytest.raises(DataError, match="no frame is marked reviewed"):
        read_export(tmp_path, reviewed_only=True)


@pytest.mark.parametrize("where", ["inside", "absolute"])
def test_frames_come_from_the_manifest_source_video(tmp_path: Path, where: str) -> None:
    export = tmp_path / "export"
    video = export / "video" / "clip.avi" if where == "inside" else tmp_path / "clip.avi"
    video.parent.mkdir(parents=True, exist_ok=True)
    codes = write_video(video, 20, h=5, w=6)
    labels = {"frame007": random_ids(1, 5, 6, 12)[0], "frame015": random_ids(1, 5, 6, 12)[0]}
    source = "video/clip.avi" if where == "inside" else str(video)
    manifest = make_manifest(source, ENDOVIS2018, [("frame007", 7, True), ("frame015", 15, True)])
    write_labels(export, labels, ENDOVIS2018, manifest=manifest)
    seq = read_export(export, reviewed_only=True)
    assert seq.frames[1][0, 0, 0] == codes[15]
    np.testing.assert_array_equal(seq.labels(0), labels["frame007"])


def test_existing_file_refused_before_anything_is_written(tmp_path: Path) -> None:
    labels, _ = _data(12)
    (tmp_path / "labels.json").write_text("keep me")
    with pytest.raises(FileExistsError, match="labels.json: already exists"):
        write_labels(tmp_path, labels, ENDOVIS2018)
    assert not (tmp_path / "labels").exists()
    assert (tmp_path / "labels.json").read_text() == "keep me"
    write_labels(tmp_path, labels, ENDOVIS2018, overwrite=True)
    assert json.loads((tmp_path / "labels.json").read_text())[0]["classid"] == 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_bad_manifest_is_a_data_error(tmp_path: Path) -> None:
    labels, images = _data(12)
    write_labels(tmp_path, labels, ENDOVIS2018, images=images)
    (tmp_path / "manifest.json").write_text('{"version": 1, "frames": [{"name": 3}]}')
    with pytest.raises(DataError, match=r"manifest.json: manifest field 'frames\[0\]'"):
        read_export(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(DataError, match="manifest.json: not a valid manifest: Expecting"):
        read_export(tmp_path)
