"""``cliprl convert`` through ``napari_cliprl.cli.main``."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_cliprl.cli import main
from napari_cliprl.io import read_labeled
from napari_cliprl.schemas import ENDOVIS2018

sys.path.insert(0, str(Path(__file__).parent / "io"))
from _hostile import link_loop, png_bomb  # noqa: E402
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
    assert main(["convert", str(src), str(out), "--from", "endovis2017", "--task", "type"]) == 0
    target = out / "instrument_dataset_1" / "frame001.png"
    target.write_bytes(b"precious")
    capsys.readouterr()
    rc = main(["convert", str(src), str(out), "--from", "endovis2017", "--task", "type"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith("cliprl convert: error: ") and "frame000.png: already exists" in err[-1]
    )
    assert target.read_bytes() == b"precious"
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


# -- the console script, as a user runs it -----------------------------------------------------
def _cliprl(*args: str | Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CLIPRL_DEBUG"}
    script = Path(sys.executable).parent / "cliprl"
    cmd = [str(script), "convert", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _tree(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` except under ``skip``: relative path -> (size, mtime)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        if p.is_file() or p.is_symlink() or p.is_fifo():
            st = p.lstat()
            out[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def _assert_refused(result: subprocess.CompletedProcess, *names: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("cliprl convert: error: ")
    for name in names:
        assert name in lines[0], lines[0]


def _two_sequences(root: Path) -> Path:
    make_endovis2018_seq(root / "train", "seq_1")
    make_endovis2018_seq(root / "train", "seq_2")
    return root / "train"


def test_bad_input_stops_before_anything_is_written(tmp_path: Path) -> None:
    src = _two_sequences(tmp_path)
    bad = src / "seq_2" / "labels" / "frame001.png"
    good = bad.read_bytes()
    save_png(bad, np.full((12, 16, 3), 7, np.uint8))  # a colour in no class
    out = tmp_path / "out"
    before = _tree(tmp_path, skip=out)
    result = _cliprl(src, out, "--from", "endovis2018", "--to", "endovis2018", "--frames")
    _assert_refused(result, str(bad), "colours in no class")
    assert _tree(tmp_path, skip=out) == before
    assert not out.exists()  # no half output, no labels without labels.json
    bad.write_bytes(good)
    result = _cliprl(src, out, "--from", "endovis2018", "--to", "endovis2018", "--frames")
    assert result.returncode == 0, result.stderr  # no --overwrite needed after a failure
    for seq in ("seq_1", "seq_2"):
        assert len(read_labeled(out / seq, reviewed_only=True)) == 3  # ground truth stays so


def test_out_of_schema_index_value_is_reported_against_the_input(tmp_path: Path) -> None:
    index = tmp_path / "index" / "seq_1"
    save_png(index / "frame000.png", np.zeros((4, 5), np.uint8))
    save_png(index / "frame001.png", np.full((4, 5), 40, np.uint8))
    out = tmp_path / "out"
    result = _cliprl(tmp_path / "index", out, "--from", "index", "--to", "endovis2018")
    _assert_refused(result, str(index / "frame001.png"), "[40]")
    assert str(out) not in result.stderr and not out.exists()


def test_a_folder_that_is_not_a_convert_output_is_refused(tmp_path: Path) -> None:
    src = _two_sequences(tmp_path)
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.txt").write_text("precious")
    for extra in ([], ["--overwrite"]):
        result = _cliprl(src, out, "--from", "endovis2018", *extra)
        _assert_refused(result, str(out), "not an output of cliprl convert")
    assert [p.name for p in out.iterdir()] == ["chapter1.txt"]


def test_overwrite_replaces_only_files_convert_writes(tmp_path: Path) -> None:
    src = _two_sequences(tmp_path)
    out = tmp_path / "out"
    assert _cliprl(src, out, "--from", "endovis2018").returncode == 0
    notes = out / "seq_1" / "notes.txt"
    notes.write_text("mine")
    (out / "seq_1" / "frame000.png").write_bytes(b"old")
    _assert_refused(_cliprl(src, out, "--from", "endovis2018"), "frame000.png: already exists")
    result = _cliprl(src, out, "--from", "endovis2018", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert notes.read_text() == "mine"
    assert _png(out / "seq_1" / "frame000.png").shape == (12, 16)
    assert not [p for p in out.rglob(".cliprl-*")]


@pytest.mark.parametrize("where", ["equal", "parent", "inside"])
def test_output_never_equals_contains_or_lies_inside_the_input(tmp_path: Path, where: str) -> None:
    src = _two_sequences(tmp_path)
    out = {"equal": src, "parent": tmp_path, "inside": src / "converted"}[where]
    before = _tree(tmp_path)
    for target in ("index", "endovis2018"):
        result = _cliprl(src, out, "--from", "endovis2018", "--to", target)
        _assert_refused(result, "the input")
    assert _tree(tmp_path) == before


def test_staging_left_by_a_killed_run_is_removed(tmp_path: Path) -> None:
    src = _two_sequences(tmp_path)
    out = tmp_path / "out"
    stale = out / ".cliprl-staging-k1ll3d" / "seq_1" / "labels"
    stale.mkdir(parents=True)
    (stale / "frame000.png").write_bytes(b"half")
    result = _cliprl(src, out, "--from", "endovis2018", "--to", "endovis2018")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["seq_1", "seq_2"]


def _fifo_label(src: Path) -> Path:
    target = src / "seq_2" / "labels" / "frame001.png"
    target.unlink()
    os.mkfifo(target)
    return target


def _bomb_label(src: Path) -> Path:
    target = src / "seq_2" / "labels" / "frame001.png"
    png_bomb(target, 10000, 9000, full=False)
    return target


def _truncated_label(src: Path) -> Path:
    target = src / "seq_2" / "labels" / "frame002.png"
    target.write_bytes(target.read_bytes()[:60])
    return target


def _looping_labels_json(src: Path) -> Path:
    target = src / "seq_2" / "labels.json"
    target.unlink()
    return link_loop(target)


def _duplicate_classid(src: Path) -> Path:
    target = src / "seq_2" / "labels.json"
    entries = json.loads(target.read_text())
    entries[2]["classid"] = 1
    target.write_text(json.dumps(entries))
    return target


@pytest.mark.parametrize(
    "damage", [_fifo_label, _bomb_label, _truncated_label, _looping_labels_json, _duplicate_classid]
)
@pytest.mark.parametrize("target", ["index", "endovis2018"])
def test_hostile_input_is_one_line_and_changes_nothing(
    tmp_path: Path, damage: Callable[[Path], Path], target: str
) -> None:
    src = _two_sequences(tmp_path)
    bad = damage(src)
    out = tmp_path / "out"
    before = _tree(tmp_path, skip=out)
    result = _cliprl(src, out, "--from", "endovis2018", "--to", target)
    _assert_refused(result, str(bad))
    assert _tree(tmp_path, skip=out) == before and not out.exists()
