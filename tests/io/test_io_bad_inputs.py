"""Every bad input to the io readers: one DataError line naming the file, never a hang.

Each case builds a valid dataset, damages one file, then reads everything a user would
(frames' shape, one frame, one label map) through the public readers.
"""

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _hostile import (
    assert_one_line,
    deadline,
    fifo,
    link_loop,
    lying_avi,
    png_bomb,
    png_grey16,
    png_rgb16,
    truncate,
)
from _io_builders import (
    make_endovis2017_seq,
    make_endovis2018_seq,
    random_frames,
    random_ids,
    save_png,
)

from napari_cliprl.io import DataError, make_manifest, open_frames, read_labeled, write_labels
from napari_cliprl.schemas import ENDOVIS2018


def _read_all(path: Path) -> None:
    with read_labeled(path) as seq:
        seq.frames.shape  # noqa: B018
        seq[len(seq) - 1]


def _open_all(path: Path) -> None:
    with open_frames(path) as source:
        source.shape  # noqa: B018
        source[len(source) - 1]


def _export(root: Path, frames: bool = True) -> Path:
    names = ["frame000", "frame001"]
    labels = dict(zip(names, random_ids(2, 5, 6, 12)))
    images = dict(zip(names, random_frames(2, 5, 6))) if frames else None
    manifest = make_manifest("src", ENDOVIS2018, [(n, i, True) for i, n in enumerate(names)])
    write_labels(root / "e", labels, ENDOVIS2018, images=images, manifest=manifest)
    return root / "e"


def _seq2018(root: Path) -> Path:
    return make_endovis2018_seq(root, "seq_1")[0]


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def _manifest(data) -> Callable[[Path], tuple[Path, str]]:
    def build(root: Path) -> tuple[Path, str]:
        e = _export(root)
        text = data if isinstance(data, str | bytes) else json.dumps(data)
        (e / "manifest.json").write_bytes(text if isinstance(text, bytes) else text.encode())
        return e, "manifest.json"

    return build


def _labels_json(text: str | bytes) -> Callable[[Path], tuple[Path, str]]:
    def build(root: Path) -> tuple[Path, str]:
        seq = _seq2018(root)
        target = seq / "labels.json"
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
        return seq, "labels.json"

    return build


def _special(kind: str, where: str) -> Callable[[Path], tuple[Path, str]]:
    def build(root: Path) -> tuple[Path, str]:
        e = _export(root)
        target = e / where
        target.unlink()
        if kind == "fifo":
            fifo(target)
        elif kind == "loop":
            link_loop(target)
        elif kind == "dangling":
            os.symlink(root / "gone", target)
        else:
            target.mkdir()
        return e, target.name

    return build


def _damaged_png(damage: Callable[[Path], object], where: str) -> Callable:
    def build(root: Path) -> tuple[Path, str]:
        e = _export(root)
        damage(e / where)
        return e, Path(where).name

    return build


def _frame_source(source: str) -> Callable[[Path], tuple[Path, str]]:
    def build(root: Path) -> tuple[Path, str]:
        e = _export(root / "a" / "b", frames=False)
        data = json.loads((e / "manifest.json").read_text())
        data["source"] = source
        (e / "manifest.json").write_text(json.dumps(data))
        return e, "manifest.json"

    return build


def _schema_json(text: str) -> Callable[[Path], tuple[Path, str]]:
    def build(root: Path) -> tuple[Path, str]:
        e = _export(root)
        (e / "schema.json").write_text(text)
        return e, "schema.json"

    return build


def _big_json(name: str) -> Callable[[Path], tuple[Path, str]]:
    def build(root: Path) -> tuple[Path, str]:
        e = _export(root) if name != "labels.json" else _seq2018(root)
        _sparse(e / name, (64 << 20) + 1)
        return e, name

    return build


def _mask_2017(damage: Callable[[Path], object]) -> Callable[[Path], tuple[Path, str]]:
    def build(root: Path) -> tuple[Path, str]:
        seq = make_endovis2017_seq(root)
        target = seq / "ground_truth" / "Prograsp_Forceps" / "frame001.png"
        target.unlink()
        damage(target)
        return seq, "frame001.png"

    return build


def _cholec_mask_fifo(root: Path) -> tuple[Path, str]:
    clip = root / "video01_00080"
    save_png(clip / "frame_1_endo.png", np.zeros((4, 5, 3), np.uint8))
    fifo(clip / "frame_1_endo_watershed_mask.png")
    return clip, "frame_1_endo_watershed_mask.png"


CLASSES_300 = json.dumps(
    [{"name": f"c{i}", "color": [i % 256, 0, 9], "classid": i} for i in range(300)]
)
SCHEMA_300 = json.dumps(
    {
        "name": "big",
        "classes": [{"name": f"c{i}", "color": [i % 256, i // 256, 1]} for i in range(300)],
    }
)
FRAME = "left_frames/frame001.png"
LABEL = "labels/frame001.png"

READER_CASES = {
    "manifest: broken JSON": _manifest("{broken"),
    "manifest: not an object": _manifest("[]"),
    "manifest: bad version": _manifest({"version": 9, "frames": []}),
    "manifest: frames not a list": _manifest({"version": 1, "frames": {}}),
    "manifest: negative index": _manifest({"version": 1, "frames": [{"name": "a", "index": -1}]}),
    "manifest: bool index": _manifest({"version": 1, "frames": [{"name": "a", "index": True}]}),
    "manifest: source not a string": _manifest({"version": 1, "source": 3, "frames": []}),
    "manifest: deeply nested": _manifest("[" * 100_000 + "]" * 100_000),
    "manifest: not UTF-8": _manifest(b'{"version": 1, "source": "\xff"}'),
    "manifest: over MAX_JSON_BYTES": _big_json("manifest.json"),
    "manifest: FIFO": _special("fifo", "manifest.json"),
    "manifest: symlink loop": _special("loop", "manifest.json"),
    "manifest: dangling link": _special("dangling", "manifest.json"),
    "manifest: a folder": _special("folder", "manifest.json"),
    "schema.json: broken": _schema_json("{"),
    "schema.json: 300 classes": _schema_json(SCHEMA_300),
    "schema.json: FIFO": _special("fifo", "schema.json"),
    "schema.json: symlink loop": _special("loop", "schema.json"),
    "schema.json: over MAX_JSON_BYTES": _big_json("schema.json"),
    "labels.json: broken": _labels_json("{"),
    "labels.json: not a list": _labels_json('{"a": 1}'),
    "labels.json: bad colour": _labels_json('[{"name": "a", "color": [0, 0, 300], "classid": 0}]'),
    "labels.json: bool classid": _labels_json(
        '[{"name": "a", "color": [0, 0, 0], "classid": true}]'
    ),
    "labels.json: duplicate classid": _labels_json(
        '[{"name": "a", "color": [0, 0, 0], "classid": 0}, '
        '{"name": "b", "color": [0, 255, 0], "classid": 0}]'
    ),
    "labels.json: 300 classes": _labels_json(CLASSES_300),
    "labels.json: not UTF-8": _labels_json(b"\xff\xfe["),
    "labels.json: over MAX_JSON_BYTES": _big_json("labels.json"),
    "label: truncated PNG": _damaged_png(truncate, LABEL),
    "label: empty file": _damaged_png(lambda p: p.write_bytes(b""), LABEL),
    "label: 16-bit value 1000": _damaged_png(lambda p: png_grey16(p, np.full((5, 6), 1000)), LABEL),
    "label: 16-bit RGB": _damaged_png(lambda p: png_rgb16(p, 1000, 5, 6), LABEL),
    "label: PNG bomb": _damaged_png(lambda p: png_bomb(p, 10000, 9000, full=False), LABEL),
    "label: FIFO": _special("fifo", LABEL),
    "label: symlink loop": _special("loop", LABEL),
    "frame: truncated PNG": _damaged_png(truncate, FRAME),
    "frame: PNG bomb": _damaged_png(lambda p: png_bomb(p, 10000, 9000, full=False), FRAME),
    "frame: side too long": _damaged_png(lambda p: png_bomb(p, 30000, 2, full=False), FRAME),
    "frame: FIFO": _special("fifo", FRAME),
    "frame: dangling link": _special("dangling", FRAME),
    "source: ../../..": _frame_source("../../.."),
    "source: ../sibling": _frame_source("../other.avi"),
    "EndoVis 2017 mask: FIFO": _mask_2017(fifo),
    "EndoVis 2017 mask: 16-bit 1000": _mask_2017(lambda p: png_grey16(p, np.full((6, 8), 1000))),
    "CholecSeg8k mask: FIFO": _cholec_mask_fifo,
}


@pytest.mark.parametrize("case", list(READER_CASES))
def test_bad_labelled_input_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    folder, name = READER_CASES[case](tmp_path)
    with deadline(), pytest.raises(DataError) as info:
        _read_all(folder)
    assert_one_line(str(info.value), name)


def _video(build: Callable[[Path], Path]) -> Callable[[Path], tuple[Path, str]]:
    def make(root: Path) -> tuple[Path, str]:
        path = build(root)
        return path, path.name

    return make


def _not_a_video(root: Path) -> Path:
    (root / "x.mp4").write_bytes(b"\0" * 64)
    return root / "x.mp4"


def _folder_with(damage: Callable[[Path], object]) -> Callable[[Path], tuple[Path, str]]:
    def make(root: Path) -> tuple[Path, str]:
        save_png(root / "f" / "a.png", np.zeros((5, 6, 3), np.uint8))
        damage(root / "f" / "b.png")
        return root / "f", "b.png"

    return make


FRAME_CASES = {
    "video: claims 10^9 frames": _video(lambda r: lying_avi(r / "lie.avi", claim=10**9)),
    "video: claims 16000 x 16000": _video(lambda r: lying_avi(r / "wide.avi", size=(16000, 16000))),
    "video: claims no size": _video(lambda r: lying_avi(r / "flat.avi", size=(0, 0))),
    "video: truncated": _video(lambda r: truncate(lying_avi(r / "cut.avi"), 0.05)),
    "video: not a video": _video(_not_a_video),
    "video: FIFO": _video(lambda r: fifo(r / "pipe.mkv")),
    "video: symlink loop": _video(lambda r: link_loop(r / "loop.mp4")),
    "frames: FIFO in a folder": _folder_with(fifo),
    "frames: symlink loop in a folder": _folder_with(link_loop),
    "frames: bomb in a folder": _folder_with(lambda p: png_bomb(p, 10000, 9000, full=False)),
    "frames: truncated in a folder": _folder_with(
        lambda p: truncate(save_png(p, np.zeros((5, 6, 3), np.uint8)))
    ),
}


@pytest.mark.parametrize("case", list(FRAME_CASES))
def test_bad_frame_source_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    path, name = FRAME_CASES[case](tmp_path)
    with deadline(), pytest.raises(DataError) as info:
        _open_all(path)
    assert_one_line(str(info.value), name)
