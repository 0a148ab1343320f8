"""Paths: special files are refused, links never lead readers or writers out of a folder."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from _hostile import assert_one_line, deadline, fifo, link_loop
from _io_builders import make_endovis2018_seq, random_frames, random_ids, save_png, write_video

from napari_cliprl.io import (
    DataError,
    make_manifest,
    open_frames,
    read_export,
    read_labeled,
    write_labels,
)
from napari_cliprl.schemas import ENDOVIS2018

NAMES = ["frame000", "frame001"]


def _export(folder: Path, reviewed=(True, True), frames: bool = True) -> Path:
    labels = dict(zip(NAMES, random_ids(2, 5, 6, 12)))
    images = dict(zip(NAMES, random_frames(2, 5, 6))) if frames else None
    manifest = make_manifest(
        "src", ENDOVIS2018, [(n, i, r) for i, (n, r) in enumerate(zip(NAMES, reviewed))]
    )
    write_labels(folder, labels, ENDOVIS2018, images=images, manifest=manifest)
    return folder


def test_fifo_frame_is_refused_not_skipped(tmp_path: Path) -> None:
    seq, _, _ = make_endovis2018_seq(tmp_path, "seq_1")
    fifo(seq / "left_frames" / "frame003.png")
    with deadline(), pytest.raises(DataError) as info:
        open_frames(seq)
    assert_one_line(str(info.value), "frame003.png", "not a regular file")


def test_fifo_label_file_is_refused(tmp_path: Path) -> None:
    export = _export(tmp_path / "e")
    fifo(export / "labels" / "frame002.png")
    with deadline(), pytest.raises(DataError) as info:
        read_labeled(export, reviewed_only=True)
    assert_one_line(str(info.value), "frame002.png", "not a regular file")


def test_fifo_given_as_a_video_is_refused(tmp_path: Path) -> None:
    with deadline(), pytest.raises(DataError) as info:
        open_frames(fifo(tmp_path / "clip.mp4"))
    assert_one_line(str(info.value), "clip.mp4", "not a regular file")


def test_manifest_symlink_loop_is_an_error_not_no_manifest(tmp_path: Path) -> None:
    export = _export(tmp_path / "e", reviewed=(False, False))
    (export / "manifest.json").unlink()
    link_loop(export / "manifest.json")
    for read in (read_export, read_labeled):
        with pytest.raises(DataError) as info:
            read(export)
        assert_one_line(str(info.value), "manifest.json", "symbolic link loop")


def test_loop_manifest_in_a_labels_folder_never_makes_ground_truth(tmp_path: Path) -> None:
    seq, _, _ = make_endovis2018_seq(tmp_path, "seq_1")
    link_loop(seq / "manifest.json")
    with pytest.raises(DataError, match="manifest.json: symbolic link loop"):
        read_labeled(seq, reviewed_only=True)


def test_manifest_source_cannot_lead_out_of_the_export(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", 4, h=5, w=6)
    export = _export(tmp_path / "deep" / "e", frames=False)
    data = json.loads((export / "manifest.json").read_text())
    for source in ("../../..", "../../clip.avi"):
        data["source"] = source
        (export / "manifest.json").write_text(json.dumps(data))
        with pytest.raises(DataError) as info:
            read_export(export)
        assert_one_line(str(info.value), "manifest.json", repr(source), "outside the export")


def test_manifest_source_link_out_of_the_export_is_refused(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", 4, h=5, w=6)
    export = _export(tmp_path / "e", frames=False)
    os.symlink(tmp_path / "clip.avi", export / "clip.avi")
    data = json.loads((export / "manifest.json").read_text())
    data["source"] = "clip.avi"
    (export / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="'clip.avi' leads outside the export"):
        read_export(export)


@pytest.mark.parametrize("folder", ["labels", "left_frames"])
def test_symlinked_folder_is_not_written_through(tmp_path: Path, folder: str) -> None:
    elsewhere = tmp_path / "someone_else"
    elsewhere.mkdir()
    (elsewhere / "frame000.png").write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(elsewhere, out / folder)
    labels = dict(zip(NAMES, random_ids(2, 5, 6, 12)))
    images = dict(zip(NAMES, random_frames(2, 5, 6)))
    with pytest.raises(DataError) as info:
        write_labels(out, labels, ENDOVIS2018, images=images, overwrite=True)
    assert_one_line(str(info.value), folder, "outside", "refusing to write")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["frame000.png"]
    assert (elsewhere / "frame000.png").read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == [folder]  # nothing written at all


def test_symlinked_file_pointing_out_is_not_replaced(tmp_path: Path) -> None:
    precious = tmp_path / "thesis.json"
    precious.write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(precious, out / "labels.json")
    labels = dict(zip(NAMES, random_ids(2, 5, 6, 12)))
    with pytest.raises(DataError, match="labels.json: resolves to .*thesis.json, outside"):
        write_labels(out, labels, ENDOVIS2018, overwrite=True)
    assert precious.read_text() == "{}" and (out / "labels.json").is_symlink()


def test_links_inside_the_output_are_fine(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "real_labels").mkdir(parents=True)
    os.symlink("real_labels", out / "labels")
    write_labels(out, dict(zip(NAMES, random_ids(2, 5, 6, 12))), ENDOVIS2018)
    assert sorted(p.name for p in (out / "real_labels").iterdir()) == [
        "frame000.png",
        "frame001.png",
    ]


def test_dangling_frame_link_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    save_png(folder / "a.png", np.zeros((2, 2, 3), np.uint8))
    os.symlink(tmp_path / "gone.png", folder / "b.png")
    with pytest.raises(DataError, match="b.png: dangling symbolic link"):
        open_frames(folder)
