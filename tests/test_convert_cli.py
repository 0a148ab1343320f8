"""``cliprl convert`` through ``napari_cliprl.cli.main``."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_cliprl.cli import main
from napari_cliprl.io import read_labeled
from napari_cliprl.schemas import ENDOVIS2018

sys.path.insert(0, str(Path(__file__).parent / "io"))
from _io_builders import (  # noqa: E402
    expected_2017,
    make_endovis2017_seq,
    make_endovis2018_seq,
    random_frames,
    save_png,
)


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "L", f"{path} is {img.mode}, expected single-channel"
        return np.asarray(img)


@pytest.mark.parametrize("task", ["parts", "type", "binary"])
def test_endovis2017_to_index_pngs(tmp_path: Path, task: str) -> None:
    src = tmp_path / "train"
    make_endovis2017_seq(src, "instrument_dataset_1")
    make_endovis2017_seq(src, "instrument_dataset_2", n=1)
    out = tmp_path / "out"
    assert main(["convert", str(src), str(out), "--from", "endovis2017", "--task", task]) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == [
        "instrument_dataset_1/frame000.png",
        "instrument_dataset_1/frame001.png",
        "instrument_dataset_2/frame000.png",
    ]
    for f in files:
        np.testing.assert_array_equal(_png(out / f), expected_2017(task))


def test_single_sequence_with_crop(tmp_path: Path) -> None:
    seq = tmp_path / "instrument_dataset_4"
    save_png(seq / "left_frames" / "frame000.png", random_frames(1, 1080, 1920)[0])
    mask = np.zeros((1080, 1920), np.uint8)
    mask[28:30, 320:330] = 20
    save_png(seq / "ground_truth" / "Prograsp_Forceps" / "frame000.png", mask)
    out = tmp_path / "out"
    argv = ["convert", str(seq), str(out), "--from", "endovis2017", "--task", "parts", "--crop"]
    assert main(argv) == 0
    labels = _png(out / "instrument_dataset_4" / "frame000.png")
    assert labels.shape == (1024, 1280) and (labels[:2, :10] == 2).all() and labels.sum() == 40


def test_never_overwrites_without_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = make_endovis2017_seq(tmp_path / "train")
    out = tmp_path / "out"
    target = out / "instrument_dataset_1" / "frame001.png"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"precious")
    rc = main(["convert", str(src), str(out), "--from", "endovis2017", "--task", "type"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith("cliprl convert: error: ") and "frame001.png: already exists" in err[-1]
    )
    assert target.read_bytes() == b"precious"
    assert not (out / "instrument_dataset_1" / "frame000.png").exists()  # nothing written
    argv = ["convert", str(src), str(out), "--from", "endovis2017", "--overwrite"]
    assert main(argv) == 0
    np.testing.assert_array_equal(_png(target), expected_2017("parts"))


def test_endovis2018_round_trip_through_index(tmp_path: Path) -> None:
    _, _, ids = make_endovis2018_seq(tmp_path / "train", "seq_3")
    index = tmp_path / "index"
    assert main(["convert", str(tmp_path / "train"), str(index), "--from", "endovis2018"]) == 0
    np.testing.assert_array_equal(_png(index / "seq_3" / "frame002.png"), ids[2])
    back = tmp_path / "back"
    argv = ["convert", str(index), str(back), "--from", "index", "--to", "endovis2018"]
    assert main([*argv, "--schema", "endovis2018"]) == 0
    rgb = np.asarray(Image.open(back / "seq_3" / "labels" / "frame001.png"))
    np.testing.assert_array_equal(rgb, ENDOVIS2018.ids_to_rgb(ids[1]))
    assert (back / "seq_3" / "labels.json").is_file()


def test_endovis2018_layout_with_frames(tmp_path: Path) -> None:
    _, frames, ids = make_endovis2018_seq(tmp_path / "train", "seq_5")
    out = tmp_path / "out"
    argv = ["convert", str(tmp_path / "train" / "seq_5"), str(out), "--from", "endovis2018"]
    assert main([*argv, "--to", "endovis2018", "--frames"]) == 0
    seq = read_labeled(out / "seq_5")
    np.testing.assert_array_equal(seq.labels(1), ids[1])
    np.testing.assert_array_equal(seq.frames[1], frames[1])


def test_real_cholecseg8k_to_index(cholec_seq: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["convert", str(cholec_seq), str(out), "--from", "cholecseg8k"]) == 0
    files = sorted((out / cholec_seq.name).glob("*.png"))
    assert len(files) == 72 and files[0].name == "frame_561.png"
    labels = _png(files[0])
    assert labels.shape == (480, 854) and set(np.unique(labels)) <= set(range(13)) | {255}


@pytest.mark.parametrize(
    ("setup", "argv_tail", "message"),
    [
        ("missing", ["--from", "endovis2017"], "missing: no such folder"),
        ("empty", ["--from", "endovis2017"], "empty: not a labelled sequence"),
        ("seq2018", ["--from", "endovis2017"], "no instrument_dataset_N folders"),
        ("seq2018", ["--from", "endovis2018", "--crop"], "--crop applies to --from endovis2017"),
        ("empty", ["--from", "index", "--to", "endovis2018"], "no index PNGs found"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, setup: str, argv_tail: list, message: str
) -> None:
    src = tmp_path / setup
    if setup == "empty":
        src.mkdir()
    elif setup == "seq2018":
        make_endovis2018_seq(src)
    assert main(["convert", str(src), str(tmp_path / "out"), *argv_tail]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists()
