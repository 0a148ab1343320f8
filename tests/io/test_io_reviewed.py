"""Reviewed means reviewed: what an export's manifest says, written in an order a kill respects."""

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from _hostile import assert_one_line, png_grey16, truncate
from _io_builders import make_endovis2018_seq, random_frames, random_ids, save_png

from napari_cliprl.io import DataError, make_manifest, read_export, read_labeled, write_labels
from napari_cliprl.io.read import detect_format
from napari_cliprl.schemas import ENDOVIS2018

NAMES = ["frame000", "frame001", "frame002"]


def _write(folder: Path, reviewed=None, **kwargs) -> tuple[dict, dict]:
    labels = dict(zip(NAMES, random_ids(3, 5, 6, 12)))
    images = dict(zip(NAMES, random_frames(3, 5, 6)))
    manifest = None
    if reviewed is not None:
        frames = [(n, i, r) for i, (n, r) in enumerate(zip(NAMES, reviewed))]
        manifest = make_manifest("src", ENDOVIS2018, frames)
    write_labels(folder, labels, ENDOVIS2018, images=images, manifest=manifest, **kwargs)
    return labels, images


def test_export_without_manifest_is_not_training_data(tmp_path: Path) -> None:
    _write(tmp_path / "killed")  # e.g. a predict run killed before its manifest
    with pytest.raises(DataError) as info:
        read_labeled(tmp_path / "killed", reviewed_only=True)
    assert_one_line(str(info.value), "killed", "no manifest.json", "--ground-truth")
    seq = read_labeled(tmp_path / "killed", reviewed_only=True, ground_truth=True)
    assert seq.frame_names == NAMES
    assert len(read_labeled(tmp_path / "killed")) == 3  # viewing it is fine


def test_dataset_layouts_stay_ground_truth(tmp_path: Path) -> None:
    make_endovis2018_seq(tmp_path, "seq_1")
    assert len(read_labeled(tmp_path / "seq_1", reviewed_only=True)) == 3


@pytest.mark.parametrize("damage", ["label missing", "label truncated", "frame missing"])
def test_reviewed_frames_count_only_when_complete(tmp_path: Path, damage: str) -> None:
    labels, _ = _write(tmp_path / "e", reviewed=(True, True, False))
    if damage == "label missing":
        (tmp_path / "e" / "labels" / "frame001.png").unlink()
    elif damage == "label truncated":
        truncate(tmp_path / "e" / "labels" / "frame001.png")
    else:
        (tmp_path / "e" / "left_frames" / "frame001.png").unlink()
    seq = read_labeled(tmp_path / "e", reviewed_only=True)
    assert seq.frame_names == ["frame000"]
    np.testing.assert_array_equal(seq.labels(0), labels["frame000"])


def test_no_complete_reviewed_frame_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "e", reviewed=(True, False, False))
    truncate(tmp_path / "e" / "labels" / "frame000.png")
    with pytest.raises(DataError) as info:
        read_export(tmp_path / "e", reviewed_only=True)
    assert_one_line(str(info.value), "manifest.json", "1 frames are marked reviewed")


class _KilledAt(Mapping):
    """A mapping whose item ``stop`` raises, as a kill in the middle of writing would."""

    def __init__(self, data: dict, stop: str) -> None:
        self.data, self.stop = data, stop

    def __getitem__(self, key: str) -> np.ndarray:
        if key == self.stop:
            raise KeyboardInterrupt("killed")
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_a_killed_write_leaves_no_label_without_its_frame(tmp_path: Path) -> None:
    labels = dict(zip(NAMES, random_ids(3, 5, 6, 12)))
    images = _KilledAt(dict(zip(NAMES, random_frames(3, 5, 6))), stop="frame002")
    manifest = make_manifest("src", ENDOVIS2018, [(n, i, True) for i, n in enumerate(NAMES)])
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        write_labels(out, labels, ENDOVIS2018, images=images, manifest=manifest)
    for label in (out / "labels").iterdir():
        assert (out / "left_frames" / label.name).is_file(), f"{label.name} has no frame"
    assert detect_format(out) == "export"  # schema.json came first: never "EndoVis 2018"
    assert not (out / "manifest.json").exists()
    with pytest.raises(DataError, match="no manifest.json"):
        read_labeled(out, reviewed_only=True)


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    _write(tmp_path / "e", reviewed=(True, True, True))
    stale = [
        tmp_path / "e" / ".schema.json.k2j4h_8q.tmp",  # what earlier versions left
        tmp_path / "e" / ".cliprl-tmp-manifest.json.abc123",
        tmp_path / "e" / "labels" / ".cliprl-tmp-frame001.png.x1y2z3",
    ]
    for path in stale:
        path.write_bytes(b"half")
    keep = tmp_path / "e" / ".notes.tmp"
    keep.write_text("a user's file")
    _write(tmp_path / "e", reviewed=(True, True, True), overwrite=True)
    assert not any(p.exists() for p in stale)
    assert keep.read_text() == "a user's file"


def test_overwriting_a_label_clears_its_reviewed_flag_first(tmp_path: Path) -> None:
    _write(tmp_path / "e", reviewed=(True, True, True))
    labels = {"frame001": np.zeros((5, 6), np.uint8)}
    write_labels(tmp_path / "e", labels, ENDOVIS2018, overwrite=True)
    data = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert [f["reviewed"] for f in data["frames"]] == [True, False, True]
    seq = read_labeled(tmp_path / "e", reviewed_only=True)
    assert seq.frame_names == ["frame000", "frame002"]


def test_sixteen_bit_label_value_is_an_error_not_ignore(tmp_path: Path) -> None:
    _write(tmp_path / "e", reviewed=(True, True, True))
    values = np.zeros((5, 6), np.uint16)
    values[0, 0] = 1000
    png_grey16(tmp_path / "e" / "labels" / "frame001.png", values)
    seq = read_labeled(tmp_path / "e", reviewed_only=True)
    with pytest.raises(DataError) as info:
        seq.labels(1)
    assert_one_line(str(info.value), "frame001.png", "1000", "8-bit")


def test_duplicate_classid_in_labels_json_is_refused(tmp_path: Path) -> None:
    seq, _, _ = make_endovis2018_seq(tmp_path, "seq_1")
    entries = json.loads((seq / "labels.json").read_text())
    entries[3]["classid"] = 1
    (seq / "labels.json").write_text(json.dumps(entries))
    with pytest.raises(DataError) as info:
        read_labeled(seq)
    assert_one_line(str(info.value), "labels.json", "classid 1 is used twice")


def test_too_many_classes_in_labels_json_are_refused(tmp_path: Path) -> None:
    seq, _, _ = make_endovis2018_seq(tmp_path, "seq_1")
    entries = [{"name": f"c{i}", "color": [i % 256, i // 256, 7], "classid": i} for i in range(300)]
    (seq / "labels.json").write_text(json.dumps(entries))
    with pytest.raises(DataError) as info:
        read_labeled(seq)
    assert_one_line(str(info.value), "labels.json", "300", "CLIPRL_MAX_CLASSES")


def test_grey_label_file_in_an_rgb_schema_reads_as_grey_colours(tmp_path: Path) -> None:
    _write(tmp_path / "e", reviewed=(True, True, True))
    save_png(tmp_path / "e" / "labels" / "frame000.png", np.zeros((5, 6), np.uint8))
    assert (read_labeled(tmp_path / "e").labels(0) == 0).all()  # black = background
