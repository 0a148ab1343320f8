"""``cliprl finetune`` and ``cliprl evaluate`` from the command line (in-process)."""

import json

import pytest

from napari_cliprl.cli import main

TINY = [
    "--arch",
    "tiny-test",
    "--input-size",
    "64",
    "80",
    "--device",
    "cpu",
    "--epochs",
    "1",
    "--rl-iters",
    "1",
    "--imitation-iters",
    "1",
    "--batch-size",
    "2",
]
STEP_KEYS = {"challenge_iou", "iou", "mciou", "miou", "per_class_iou", "per_class_dice"}


@pytest.fixture(scope="module")
def cli_checkpoint(tiny_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "ckpt"
    assert main(["finetune", "--data", str(tiny_export), "--out", str(out), "--quiet", *TINY]) == 0
    return out


def test_finetune_prints_a_line_per_epoch_and_the_checkpoint(tiny_export, tmp_path, capsys):
    out = tmp_path / "ckpt"
    args = ["finetune", "--data", str(tiny_export), "--out", str(out), "--no-curriculum", *TINY]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/1" in printed and "loss" in printed and "val miou" in printed
    assert f"checkpoint: {out}" in printed and (out / "weights.safetensors").is_file()
    assert main(args) == 2  # exists: refused with a one-line message
    assert "--resume" in capsys.readouterr().err


def test_evaluate_json_has_every_step_and_timing(tiny_export, cli_checkpoint, tmp_path, capsys):
    report = tmp_path / "eval.json"
    args = [
        "evaluate",
        "--data",
        str(tiny_export),
        "--checkpoint",
        str(cli_checkpoint),
        "--json",
        str(report),
        "--steps",
        "2",
    ]
    assert main(args) == 0
    data = json.loads(report.read_text())
    for name in ("zero_shot", "step_0", "step_1", "step_2"):
        assert STEP_KEYS <= set(data[name]), name
        assert len(data[name]["per_class_iou"]) == 12
    assert "step_3" not in data
    assert data["frames"] == 5  # reviewed frames only
    assert data["seconds_per_frame"] > 0 and data["steps"] == 2
    assert set(data["pixels_to_change"]) == {"zero_shot", "step_0", "step_1", "step_2"}
    assert data["tstar"] >= 0 and len(data["class_names"]) == 12
    assert "step_2" in capsys.readouterr().out


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    missing = tmp_path / "nothing"
    assert main(["evaluate", "--data", str(missing), "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cliprl evaluate: error:") and len(err.splitlines()) == 1
    assert main(["finetune", "--data", str(missing), "--out", str(tmp_path / "o"), *TINY]) == 2
