"""The GUI's fine-tune path reads a checkpoint's config.json and lineage.json: within the size
bound every other JSON read has (MAX_JSON_BYTES), and a crafted file never raises."""

from __future__ import annotations

import json

from napari_cliprl import limits
from napari_cliprl.annotation.finetune_job import read_lineage
from napari_cliprl.annotation.models import ModelSpec, spec_architecture
from napari_cliprl.limits import Limit
from napari_cliprl.training.folders import LINEAGE_FILE


def _checkpoint(tmp_path, name, payload):
    folder = tmp_path / "ckpt"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(payload))
    return folder


def _small_json_limit(monkeypatch, value=100):
    monkeypatch.setitem(limits.LIMITS, "MAX_JSON_BYTES", Limit("MAX_JSON_BYTES", value, "bytes"))


def test_the_architecture_comes_from_the_checkpoint_config(tmp_path):
    folder = _checkpoint(tmp_path, "config.json", {"architecture": "ViT-B-16"})
    assert spec_architecture(ModelSpec(checkpoint=str(folder), arch="tiny-test")) == "ViT-B-16"


def test_an_oversized_checkpoint_config_is_not_read(tmp_path, monkeypatch):
    folder = _checkpoint(tmp_path, "config.json", {"architecture": "ViT-B-16", "pad": "x" * 200})
    _small_json_limit(monkeypatch)
    assert spec_architecture(ModelSpec(checkpoint=str(folder), arch="tiny-test")) == "tiny-test"


def test_a_config_that_is_not_an_object_falls_back_to_the_spec(tmp_path):
    folder = _checkpoint(tmp_path, "config.json", [1, 2, 3])
    assert spec_architecture(ModelSpec(checkpoint=str(folder), arch="tiny-test")) == "tiny-test"


def test_lineage_within_the_bound_is_read(tmp_path):
    folder = _checkpoint(tmp_path, LINEAGE_FILE, {"tstar": 2})
    assert read_lineage(folder) == {"tstar": 2}


def test_an_oversized_or_crafted_lineage_reads_as_none(tmp_path, monkeypatch):
    folder = _checkpoint(tmp_path, LINEAGE_FILE, ["not", "an", "object"])
    assert read_lineage(folder) is None
    (folder / LINEAGE_FILE).write_text(json.dumps({"tstar": 2, "pad": "x" * 200}))
    _small_json_limit(monkeypatch)
    assert read_lineage(folder) is None
