"""A damaged or crafted checkpoint is refused in one line that names the file and the problem.

Every case is checked before anything large is built (a crafted input size used to allocate
24 GB), and through ``cliprl predict`` as a person would meet it: exit status 2, one line on
stderr, no traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from napari_cliprl.cli import main
from napari_cliprl.model import build_model, read_checkpoint_config, save_checkpoint
from napari_cliprl.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return save_checkpoint(build_model("tiny-test"), tmp_path_factory.mktemp("ckpt") / "ckpt")


def _edited(saved: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(saved, folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    edit(config)
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


def _add_class(config: dict) -> None:
    last = config["schema"]["classes"][-1]
    config["schema"]["classes"].append({**last, "id": last["id"] + 1, "name": "extra",
                                        "color": [1, 2, 3]})  # fmt: skip


def _rename_arch(config: dict) -> None:
    config["architecture"] = config["model"]["arch"] = "ViT-X"


def _both(key: str, value) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        config[key] = value
        config["model"][key] = value

    return edit


CASES = {
    "no model section": (lambda c: c.pop("model"), r"no 'model' section"),
    "no schema": (lambda c: c.pop("schema"), r"no 'schema' section"),
    "format version is text": (
        lambda c: c.update(format_version="two"),
        r"format_version must be a whole number, got 'two'",
    ),
    "steps is text": (_both("steps", "two"), r"steps must be .*'two'"),
    "13 classes against weights for 12": (
        _add_class,
        r"schema has 13 classes but the weights were trained for 12",
    ),
    "top-level architecture differs from the model section": (
        lambda c: c.update(architecture="ViT-B-16"),
        r"architecture 'ViT-B-16' disagrees with the model section's 'tiny-test'",
    ),
    "huge input size": (_both("input_size", [100000, 100000]), r"over the limit of 2,048"),
    "input size not a patch multiple": (
        _both("input_size", [130, 160]),
        r"input size \(130, 160\).*multiple of the patch size 16",
    ),
    "huge steps": (_both("steps", 10**6), r"over the limit of 10"),
    "negative steps": (_both("steps", -1), r"steps must be .*>= 0"),
    "unknown architecture": (_rename_arch, r"unknown architecture 'ViT-X'"),
    "schema is not a schema": (lambda c: c.update(schema={"name": 3}), r"schema"),
    "model section is a list": (lambda c: c.update(model=[1, 2]), r"'model' section"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_checkpoint_config_is_one_line_naming_the_file(saved, tmp_path, case, monkeypatch):
    import napari_cliprl.model.build as build

    edit, pattern = CASES[case]
    folder = _edited(saved, tmp_path, edit)

    def never(*args, **kwargs):
        raise AssertionError("a model was built from a refused checkpoint")

    monkeypatch.setattr(build, "_create_clip", never)
    with pytest.raises(CheckpointError) as info:
        build_model(checkpoint=folder)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(folder)), message
    assert re.search(pattern, message), message


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("decoder_dim", 48, r"decoder\.\S+ is \(32,.*\) in the file, \(48,.*\) in the model"),
        ("agent_dim", 24, r"agent\.\S+ is \(16,.*\) in the file, \(24,.*\) in the model"),
    ],
)
def test_weights_that_do_not_fit_are_named_after_building(saved, tmp_path, field, value, pattern):
    """A shape mismatch is only visible once the (bounded) model exists: one line, first key."""
    folder = _edited(saved, tmp_path, lambda c: c["model"].update({field: value}))
    with pytest.raises(CheckpointError) as info:
        build_model(checkpoint=folder)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(folder / WEIGHTS_NAME)), message
    assert "weights do not fit the model" in message and "more)" in message
    assert re.search(pattern, message), message


@pytest.mark.parametrize("kind", ["fifo", "loop"])
def test_special_config_files_are_refused(saved, tmp_path, kind):
    folder = tmp_path / "special"
    shutil.copytree(saved, folder)
    config = folder / CONFIG_NAME
    config.unlink()
    if kind == "fifo":
        os.mkfifo(config)  # opening it would block forever
    else:
        config.symlink_to(config)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint_config(folder)
    assert str(info.value).startswith(str(folder)) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "case", ["no model section", "13 classes against weights for 12", "huge input size"]
)
def test_the_command_line_reports_a_bad_checkpoint_in_one_line(saved, tmp_path, case, capsys):
    edit, pattern = CASES[case]
    folder = _edited(saved, tmp_path, edit)
    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    Image.new("RGB", (40, 32)).save(frames / "a.png")
    args = ["predict", str(frames), "--out", str(tmp_path / "out"), "--checkpoint", str(folder)]
    assert main([*args, "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"cliprl predict: error: {folder}"), err
    assert re.search(pattern, err), err
