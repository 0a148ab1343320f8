"""napari_cliprl.files and napari_cliprl.limits: the checks every reader and writer relies on."""

import os
from pathlib import Path

import pytest
from _hostile import fifo, link_loop

from napari_cliprl import files
from napari_cliprl.limits import LIMITS, LimitError, check_limit, limit


def test_present_answers_for_regular_files_and_refuses_the_rest(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    assert files.present(tmp_path / "a.json") and not files.present(tmp_path / "none.json")
    for bad, words in [
        (fifo(tmp_path / "p.json"), "not a regular file"),
        (link_loop(tmp_path / "l.json"), "symbolic link loop"),
        (tmp_path, "is a folder"),
    ]:
        with pytest.raises(files.FileProblemError, match=words):
            files.present(bad)


def test_check_inside_resolves_links_and_dots(tmp_path: Path) -> None:
    (tmp_path / "out" / "sub").mkdir(parents=True)
    os.symlink(tmp_path, tmp_path / "out" / "up")
    assert files.check_inside(tmp_path / "out", tmp_path / "out" / "sub" / "new.png")
    for bad in ("../x", "up/x", "sub/../../x"):
        with pytest.raises(files.FileProblemError, match="outside"):
            files.check_inside(tmp_path / "out", tmp_path / "out" / bad)


@pytest.mark.parametrize(
    ("out", "relation"), [("data", "is"), (".", "contains"), ("data/o", "lies inside")]
)
def test_check_separate_keeps_outputs_off_the_inputs(
    tmp_path: Path, out: str, relation: str
) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(files.FileProblemError, match=f"output folder {relation} the input"):
        files.check_separate(tmp_path / out, [tmp_path / "data"])
    files.check_separate(tmp_path / "elsewhere", [tmp_path / "data"])


def test_remove_stale_temporaries_removes_only_ours(tmp_path: Path) -> None:
    ours = [".cliprl-tmp-a.png.x1", ".schema.json.ab_12xyz.tmp"]
    theirs = [".notes.tmp", "data.tmp", ".a.b.tmp", "frame.png"]
    for name in ours + theirs:
        (tmp_path / name).write_text("x")
    os.symlink(tmp_path / "frame.png", tmp_path / ".cliprl-tmp-link")
    assert files.remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*theirs, ".cliprl-tmp-link"])


def test_read_json_is_bounded_and_one_line(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(limit("MAX_JSON_BYTES") + 1)
    with pytest.raises(LimitError, match="big.json: size of this session file in bytes"):
        files.read_json(big, "session file")


def test_limits_are_raised_never_lowered_or_switched_off(monkeypatch) -> None:
    for name, item in LIMITS.items():
        assert limit(name) == item.default
    monkeypatch.setenv("CLIPRL_MAX_FRAMES", "5000000")
    assert limit("MAX_FRAMES") == 5_000_000
    for raw in ("10", "0", "-1", "off", "1e9"):
        monkeypatch.setenv("CLIPRL_MAX_FRAMES", raw)
        assert limit("MAX_FRAMES") == LIMITS["MAX_FRAMES"].default


def test_check_limit_names_source_value_and_variable() -> None:
    class MineError(LimitError):
        pass

    assert check_limit("MAX_STEPS", 3, "--steps") == 3
    with pytest.raises(
        MineError, match=r"^--steps: .* is 11, over the limit of 10 .*CLIPRL_MAX_STEPS=N"
    ):
        check_limit("MAX_STEPS", 11, "--steps", error=MineError)
