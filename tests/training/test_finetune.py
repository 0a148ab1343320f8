"""finetune(): a loadable checkpoint with T*, callbacks, stop + resume, atomic checkpoints."""

import json
import os

import pytest
import torch
from _training_data import tiny_config

from napari_cliprl.training.finetune import FinetuneResult, finetune
from napari_cliprl.training.state import (
    STATE_JSON,
    load_training_state,
    recover_checkpoint,
    save_training_checkpoint,
)


def _weights(folder) -> dict[str, torch.Tensor]:
    from napari_cliprl.model.checkpoint import read_checkpoint_weights

    return read_checkpoint_weights(folder)


def test_finetune_writes_a_checkpoint_that_build_model_loads(tiny_export, tmp_path):
    from napari_cliprl.model.build import build_model

    metrics, progress = [], []
    result = finetune(
        tiny_config(tiny_export, tmp_path / "ckpt"),
        progress=lambda done, total, message="": progress.append((done, total)),
        on_metrics=metrics.append,
    )
    assert isinstance(result, FinetuneResult) and not result.stopped
    model = build_model(checkpoint=result.checkpoint)
    assert model.config.steps == result.tstar and 0 <= result.tstar <= 3
    epochs = [m for m in metrics if m["phase"] == "supervised"]
    assert [m["epoch"] for m in epochs] == [1, 2]
    assert all(
        set(m["val"]) == {"zero_shot", "step_0", "step_1", "step_2", "step_3"} for m in epochs
    )
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in metrics if "loss" in m)
    assert any(m["phase"] == "rl" and "reward" in m for m in metrics)
    assert metrics[-1]["phase"] == "tstar" and metrics[-1]["tstar"] == result.tstar
    assert progress[-1][0] == progress[-1][1]  # progress reaches its total
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    config = json.loads((result.checkpoint / "config.json").read_text())
    validation = config["extra"]["tstar"]["validation"]
    assert validation[f"step_{result.tstar}"]["miou"] >= validation["step_0"]["miou"]
    assert config["extra"]["finetune"]["data"] == [str(tiny_export)]


def test_refuses_to_clobber_a_checkpoint_and_a_schema_mismatch(tiny_export, tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="--resume"):
        finetune(tiny_config(tiny_export, out))
    with pytest.raises(ValueError, match="schema"):
        finetune(tiny_config(tiny_export, tmp_path / "other", schema="cholecseg8k"))


def test_stop_then_resume_gives_the_same_model_as_a_straight_run(tiny_export, tmp_path):
    straight = finetune(tiny_config(tiny_export, tmp_path / "straight"))
    seen = []

    def stop_after_epoch_one() -> bool:
        return any(m.get("epoch") == 1 for m in seen)

    out = tmp_path / "killed"
    first = finetune(
        tiny_config(tiny_export, out), should_stop=stop_after_epoch_one, on_metrics=seen.append
    )
    assert first.stopped
    state = json.loads((out / STATE_JSON).read_text())["state"]
    assert (state["phase"], state["epoch"]) == ("supervised", 1)
    resumed = finetune(tiny_config(tiny_export, out, resume=True))
    assert not resumed.stopped and resumed.tstar == straight.tstar
    a, b = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert [h.get("epoch") for h in resumed.history if h["phase"] == "supervised"] == [1, 2]


def _tiny_model_and_optimizer():
    from napari_cliprl.model.build import build_model

    model = build_model("tiny-test", input_size=(64, 80))
    optimizer = torch.optim.AdamW(model.decoder.parameters(), lr=1e-3)
    model.decoder(*_decoder_inputs(model))[0].sum().backward()
    optimizer.step()
    return model, optimizer


def _decoder_inputs(model):
    features = model.encode(torch.zeros(1, 3, 64, 80))
    zero_shot = model.logit_scale * model.text_bank.zero_shot(features.dense)
    return features.maps, features.dense, zero_shot, model.text_bank()


def test_an_interrupted_save_leaves_the_previous_checkpoint_valid(tmp_path, monkeypatch):
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training import state as state_module

    model, optimizer = _tiny_model_and_optimizer()
    out = tmp_path / "ckpt"
    save_training_checkpoint(model, out, optimizers={"sup": optimizer}, state={"epoch": 1})
    with torch.no_grad():
        model.decoder.bias.add_(1.0)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # a kill while the new checkpoint is being written

    monkeypatch.setattr(state_module, "replace_folder", killed)
    monkeypatch.setattr(state_module.shutil, "rmtree", lambda *a, **k: None)  # no clean-up
    with pytest.raises(KeyboardInterrupt):
        save_training_checkpoint(model, out, optimizers={"sup": optimizer}, state={"epoch": 2})
    monkeypatch.undo()
    assert any(p.name.startswith(".ckpt.staging-") for p in tmp_path.iterdir())
    assert recover_checkpoint(out) == out
    assert not any(p.name.startswith(".ckpt.") for p in tmp_path.iterdir())
    assert load_training_state(out, {"sup": optimizer}) == {"epoch": 1}
    assert torch.allclose(build_model(checkpoint=out).decoder.bias, model.decoder.bias - 1.0)


def test_a_kill_between_the_two_renames_is_recovered(tmp_path, monkeypatch):
    from napari_cliprl.model.build import build_model

    model, optimizer = _tiny_model_and_optimizer()
    out = tmp_path / "ckpt"
    save_training_checkpoint(model, out, optimizers={"sup": optimizer}, state={"epoch": 1})
    real_replace = os.replace

    def replace_then_die(src, dst):
        if os.fspath(dst) == os.fspath(out):
            raise KeyboardInterrupt  # the old one is moved aside, the new one not yet in place
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_training_checkpoint(model, out, optimizers={"sup": optimizer}, state={"epoch": 2})
    monkeypatch.undo()
    assert not out.exists()
    assert recover_checkpoint(out) == out
    assert load_training_state(out, {"sup": optimizer}) == {"epoch": 1}
    build_model(checkpoint=out)


def test_optimizer_state_round_trips(tmp_path):
    model, optimizer = _tiny_model_and_optimizer()
    save_training_checkpoint(model, tmp_path / "c", optimizers={"sup": optimizer}, state={})
    fresh = torch.optim.AdamW(model.decoder.parameters(), lr=5.0)
    load_training_state(tmp_path / "c", {"sup": fresh})
    a, b = optimizer.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for idx, slots in a["state"].items():
        for key, value in slots.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][idx][key]))
