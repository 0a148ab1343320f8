"""Only reviewed frames are ground truth: ``ground_truth`` (``--ground-truth``) reaches io's
``read_labeled``, which refuses an export-layout folder without a manifest unless it is set."""

from __future__ import annotations

import pytest
from _training_data import tiny_config, write_export

from napari_cliprl.io import read_labeled
from napari_cliprl.training import dataset, setup
from napari_cliprl.training.cli_options import parse_config
from napari_cliprl.training.config import FinetuneConfig


class SeenError(Exception):
    """Stops finetune() once it has asked for the data."""


def test_the_option_reaches_the_readers(tiny_export, tmp_path, monkeypatch):
    config = parse_config(
        ["--data", str(tiny_export), "--out", "o", "--ground-truth"], FinetuneConfig
    )
    assert config.ground_truth and not FinetuneConfig().ground_truth
    calls = []

    def recording(folder, schema=None, **kwargs):
        calls.append(dict(kwargs))
        return read_labeled(folder, schema, **kwargs)

    monkeypatch.setattr(dataset, "read_labeled", recording)
    dataset.open_sequences([tiny_export], ground_truth=True)
    dataset.open_sequences([tiny_export])
    assert calls[0]["ground_truth"] is True and calls[0]["reviewed_only"] is True
    assert calls[1]["ground_truth"] is False and calls[1]["reviewed_only"] is True

    def opened(paths, schema=None, **kwargs):
        raise SeenError(kwargs)

    monkeypatch.setattr(setup, "open_sequences", opened)
    with pytest.raises(SeenError) as info:
        from napari_cliprl.training.finetune import finetune

        finetune(tiny_config(tiny_export, tmp_path / "ckpt", ground_truth=True))
    assert info.value.args[0] == {"ground_truth": True}


def test_a_folder_without_manifest_is_training_data_only_when_declared(tmp_path):
    from napari_cliprl.training.finetune import finetune

    folder = write_export(tmp_path / "predictions", unreviewed=())
    (folder / "manifest.json").unlink()
    with pytest.raises(ValueError, match="predictions"):
        finetune(tiny_config(folder, tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()
    result = finetune(tiny_config(folder, tmp_path / "ckpt", ground_truth=True))
    assert result.checkpoint.is_dir() and not result.stopped
