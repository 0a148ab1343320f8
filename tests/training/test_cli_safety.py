"""``cliprl finetune`` / ``cliprl evaluate`` as a user runs them: nothing a user made is ever
overwritten or deleted, and every bad option is one line naming it, before any work starts.

Each test runs the console script and hashes the files around it before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _training_data import write_export

CLIPRL = Path(sys.executable).parent / "cliprl"
TINY = ["--arch", "tiny-test", "--input-size", "64", "80", "--device", "cpu", "--epochs", "1"]
TINY += ["--rl-iters", "0", "--imitation-iters", "0", "--batch-size", "2", "--quiet"]


def cliprl(*args: object) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("CLIPRL_DEBUG", None)
    cmd = [str(CLIPRL), *(str(a) for a in args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (folders as "dir")."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_refused(proc: subprocess.CompletedProcess, command: str, *names: object) -> None:
    """Status 2, one line on stderr naming ``names``, no traceback, no training output."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], err[-2000:])
    assert len(err.splitlines()) == 1 and err.startswith(f"cliprl {command}: error: "), err
    assert all(str(n) in err for n in names), err
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "epoch" not in proc.stdout and "checkpoint:" not in proc.stdout


@pytest.fixture
def data(tmp_path) -> Path:
    return write_export(tmp_path / "project" / "export")


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    from napari_cliprl.model.build import build_model
    from napari_cliprl.model.checkpoint import save_checkpoint

    model = build_model("tiny-test", input_size=(64, 80))
    return save_checkpoint(model, tmp_path / "ckpt")


@pytest.mark.parametrize("flags", [["--resume"], ["--overwrite"], []])
def test_a_folder_that_is_not_a_checkpoint_is_never_written(data, tmp_path, flags):
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "thesis.txt").write_text("x")
    before = tree(tmp_path)
    proc = cliprl("finetune", "--data", data, "--out", folder, *flags, *TINY)
    assert_refused(proc, "finetune", folder, "thesis.txt")
    assert tree(tmp_path) == before


def test_resume_without_a_saved_run_says_so_and_stops(data, tmp_path):
    before = tree(tmp_path)
    proc = cliprl("finetune", "--data", data, "--out", tmp_path / "new", "--resume", *TINY)
    assert_refused(proc, "finetune", tmp_path / "new", "nothing to resume")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("where", ["data", "parent", "inside"])
def test_the_output_never_overlaps_the_training_data(data, tmp_path, where):
    out = {"data": data, "parent": data.parent, "inside": data / "ckpt"}[where]
    before = tree(tmp_path)
    proc = cliprl("finetune", "--data", data, "--out", out, "--overwrite", *TINY)
    assert_refused(proc, "finetune", out, "--data")
    assert tree(tmp_path) == before


def test_overwrite_replaces_our_checkpoint_only_without_foreign_files(data, checkpoint, tmp_path):
    (checkpoint / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    proc = cliprl("finetune", "--data", data, "--out", checkpoint, "--overwrite", *TINY)
    assert_refused(proc, "finetune", checkpoint, "notes.txt")
    assert tree(tmp_path) == before
    (checkpoint / "notes.txt").unlink()
    before = tree(data)
    proc = cliprl("finetune", "--data", data, "--out", checkpoint, "--overwrite", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"checkpoint: {checkpoint}" in proc.stdout and tree(data) == before
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["extra"]["finetune"]["overwrite"] is True


def test_the_base_checkpoint_is_never_the_output(data, checkpoint, tmp_path):
    before = tree(tmp_path)
    args = ["--data", data, "--from", checkpoint, "--out", checkpoint, "--overwrite", *TINY]
    proc = cliprl("finetune", *args)
    assert_refused(proc, "finetune", checkpoint, "--from")
    assert tree(tmp_path) == before


BAD_OPTIONS = [
    ("--lr", "nan"),
    ("--val-fraction", "1.5"),
    ("--max-steps", "-1"),
    ("--max-steps", "11"),
    ("--batch-size", "0"),
    ("--epochs", "-1"),
    ("--num-envs", "0"),
    ("--algo", "PPO"),
    ("--input-size", "0"),
]


@pytest.mark.parametrize("option,value", BAD_OPTIONS[:3])
def test_a_bad_number_is_one_line_naming_the_option(data, tmp_path, option, value):
    before = tree(tmp_path)
    proc = cliprl("finetune", "--data", data, "--out", tmp_path / "o", *TINY, option, value)
    assert_refused(proc, "finetune", option)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("option,value", BAD_OPTIONS)
def test_every_bad_option_is_refused_before_any_work(data, tmp_path, capsys, option, value):
    from napari_cliprl.cli import main

    before = tree(tmp_path)
    try:
        status = main(
            ["finetune", "--data", str(data), "--out", str(tmp_path / "o"), option, value]
        )
    except SystemExit as e:  # argparse: a choice or a count of values
        status = e.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and option in err, err
    assert err.startswith("cliprl finetune: error: ") and tree(tmp_path) == before


# -- evaluate --json -------------------------------------------------------------------------
def _evaluate(data: Path, checkpoint: Path, report: Path, *more: str):
    return cliprl(
        "evaluate", "--data", data, "--checkpoint", checkpoint, "--json", report, "--device", "cpu",
        *more,
    )  # fmt: skip


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_evaluate_never_replaces_a_file_it_did_not_write(data, checkpoint, tmp_path, overwrite):
    label = next((data / "labels").glob("*.png"))
    before = tree(tmp_path)
    proc = _evaluate(data, checkpoint, label, *overwrite)
    assert_refused(proc, "evaluate", label)
    assert proc.stdout == ""  # refused before evaluating anything
    assert tree(tmp_path) == before
    other = tmp_path / "results.json"
    other.write_text('{"mine": 1}')
    before = tree(tmp_path)
    assert_refused(_evaluate(data, checkpoint, other, *overwrite), "evaluate", other)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("where", ["inside data", "inside checkpoint", "under a file"])
def test_evaluate_json_path_is_checked_first(data, checkpoint, tmp_path, where):
    target = {
        "inside data": data / "report.json",
        "inside checkpoint": checkpoint / "report.json",
        "under a file": data / "manifest.json" / "report.json",
    }[where]
    before = tree(tmp_path)
    proc = _evaluate(data, checkpoint, target)
    assert_refused(proc, "evaluate", target)
    assert proc.stdout == "" and tree(tmp_path) == before


def test_evaluate_replaces_its_own_report_only_with_overwrite(data, checkpoint, tmp_path):
    report = tmp_path / "reports" / "eval.json"
    proc = _evaluate(data, checkpoint, report, "--steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = json.loads(report.read_text())
    assert first["format"] == "napari-cliprl/evaluation" and first["steps"] == 1
    assert_refused(_evaluate(data, checkpoint, report), "evaluate", report, "--overwrite")
    proc = _evaluate(data, checkpoint, report, "--steps", "2", "--overwrite")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(report.read_text())["steps"] == 2
    assert [p.name for p in report.parent.iterdir()] == ["eval.json"]  # no temporaries left


def test_evaluate_steps_are_bounded(data, checkpoint, tmp_path):
    proc = cliprl("evaluate", "--data", data, "--checkpoint", checkpoint, "--steps", "1000000")
    assert_refused(proc, "evaluate", "--steps", "CLIPRL_MAX_STEPS")


# -- any other failure -----------------------------------------------------------------------
def test_an_unexpected_error_is_one_line_without_traceback(monkeypatch, capsys):
    from napari_cliprl import cli
    from napari_cliprl._commands import info

    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(info, "run", broken)
    monkeypatch.delenv("CLIPRL_DEBUG", raising=False)
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "Traceback" not in err
    assert err.startswith("cliprl info: error: TypeError: unsupported operand")
    assert "CLIPRL_DEBUG=1" in err
    monkeypatch.setenv("CLIPRL_DEBUG", "1")
    with pytest.raises(TypeError):
        cli.main(["info"])


def test_a_mistyped_option_is_one_line(tmp_path):
    proc = cliprl("finetune", "--data", tmp_path, "--out", tmp_path / "o", "--epocs", "2")
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert "--epocs" in err and "cliprl finetune --help" in err


def test_the_console_script_is_the_one_under_test():
    assert CLIPRL.is_file(), f"{CLIPRL}: console script not installed next to {sys.executable}"
    assert shutil.which(str(CLIPRL))
