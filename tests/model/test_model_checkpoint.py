"""Checkpoint folders: save -> load gives identical outputs; mismatches are refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from napari_cliprl.model import build_model, read_checkpoint_config, save_checkpoint
from napari_cliprl.model.build import set_backbone_trainable
from napari_cliprl.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError
from napari_cliprl.schemas import LabelSchema

SRC = Path(__file__).resolve().parents[2] / "src" / "napari_cliprl"


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Stand-in for training: change decoder, text residual and agent weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (model.decoder, model.agent, model.text_bank):
            for p in module.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def _outputs(model, steps: int = 2) -> list[torch.Tensor]:
    x = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        out = model(x, steps=steps)
    return [out.zero_shot, *out.logits]


def test_save_load_gives_identical_outputs(tmp_path):
    model = build_model("tiny-test")
    _perturb(model, 0)
    model.config.steps = 2
    folder = save_checkpoint(model, tmp_path / "ckpt", extra={"epochs": 3})
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    loaded = build_model(checkpoint=folder)
    assert loaded.config.steps == 2 and not loaded.training
    for a, b in zip(_outputs(model), _outputs(loaded)):
        assert torch.equal(a, b)
    config = read_checkpoint_config(folder)
    assert config["architecture"] == "tiny-test"
    assert config["input_size"] == [128, 160] and config["steps"] == 2
    assert config["schema"]["name"] == "endovis2018" and len(config["schema"]["classes"]) == 12
    assert config["versions"]["torch"] and config["versions"]["open_clip_torch"]
    assert "clip_weights_sha256" in config and config["extra"] == {"epochs": 3}


def test_tiny_checkpoint_is_self_contained_even_after_backbone_finetuning(tmp_path):
    model = build_model("tiny-test")
    set_backbone_trainable(model, 1)
    with torch.no_grad():
        model.backbone.visual.transformer.resblocks[3].mlp.c_fc.weight.mul_(1.5)
        model.backbone.visual.conv1.weight.mul_(0.9)  # even frozen tiny weights are stored
    before = model.backbone_fingerprint()
    folder = save_checkpoint(model, tmp_path / "ckpt")
    loaded = build_model("tiny-test", checkpoint=folder)
    assert loaded.config.train_backbone_blocks == 1
    assert loaded.backbone_fingerprint() == before
    for a, b in zip(_outputs(model), _outputs(loaded)):
        assert torch.equal(a, b)


def test_big_architectures_store_only_trainable_backbone_weights():
    from napari_cliprl.model.checkpoint import checkpoint_state_dict

    model = build_model("tiny-test")
    state = checkpoint_state_dict(model, self_contained=False)
    assert not any(k.startswith("backbone.") for k in state)
    assert "text_bank.name_embeddings" in state and "text_bank.residual" in state
    set_backbone_trainable(model, 1)
    state = checkpoint_state_dict(model, self_contained=False)
    backbone = [k for k in state if k.startswith("backbone.")]
    assert backbone and all(".resblocks.3." in k or "ln_post" in k or "proj" in k for k in backbone)


def test_custom_schema_travels_with_the_checkpoint(tmp_path):
    schema = LabelSchema.from_dict(
        {
            "name": "my-task",
            "classes": [
                {"name": "tissue", "color": [0, 0, 0]},
                {"name": "tool", "color": [255, 0, 0], "prompts": ["surgical tool"]},
            ],
        }
    )
    model = build_model("tiny-test", schema=schema)
    folder = save_checkpoint(model, tmp_path / "ckpt")
    loaded = build_model(checkpoint=folder)
    assert loaded.schema.names == ["tissue", "tool"] and loaded.num_classes == 2
    for a, b in zip(_outputs(model), _outputs(loaded)):
        assert torch.equal(a, b)


def test_mismatched_architecture_or_schema_is_refused(tmp_path):
    folder = save_checkpoint(build_model("tiny-test"), tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="'tiny-test'.*'ViT-B-16'"):
        build_model("ViT-B-16", checkpoint=folder)
    with pytest.raises(CheckpointError, match="'endovis2018'.*'cholecseg8k'"):
        build_model(checkpoint=folder, schema="cholecseg8k")
    with pytest.raises(CheckpointError, match="fixed at input size"):
        build_model(checkpoint=folder, input_size=(96, 128))
    build_model("tiny-test", checkpoint=folder, schema="endovis2018")  # matching: fine


def test_saving_over_a_checkpoint_is_atomic(tmp_path):
    model = build_model("tiny-test")
    folder = save_checkpoint(model, tmp_path / "ckpt")
    _perturb(model, 1)
    save_checkpoint(model, folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporaries left
    loaded = build_model(checkpoint=folder)
    assert torch.equal(_outputs(model)[1], _outputs(loaded)[1])


def test_not_a_checkpoint_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match="no such folder"):
        build_model(checkpoint=tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    with pytest.raises(CheckpointError, match="needs config.json"):
        build_model(checkpoint=tmp_path / "bad")
    folder = save_checkpoint(build_model("tiny-test"), tmp_path / "ckpt")
    (folder / WEIGHTS_NAME).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="unreadable weights"):
        build_model(checkpoint=folder)
    (folder / CONFIG_NAME).write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="not a napari-cliprl checkpoint"):
        read_checkpoint_config(folder)


def test_no_unpickling_anywhere_in_the_package():
    """torch.load only with weights_only=True; no pickle imports."""
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in match.group(1), f"{path}: {match.group(0)}"
        assert not re.search(r"^\s*import pickle|^\s*from pickle", text, re.M), path
