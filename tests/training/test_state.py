"""The typed training state: its file round trip, refusal of states it cannot continue, and
the unfinished marker that keeps a stopped run from passing for a model."""

from __future__ import annotations

import json

import pytest

from napari_cliprl.training.state import STATE_JSON, Phase, TrainState


def test_state_round_trips_through_its_json_form():
    state = TrainState(Phase.RL, epoch=2, step=9, rl_iter=4, history=[{"a": 1}], difficulty=[0.5])
    data = json.loads(json.dumps(state.to_dict()))
    assert data["phase"] == "rl"  # train_state.json stays readable
    assert TrainState.from_dict(data, "x") == state
    old = {k: v for k, v in data.items() if k != "version"}  # written before the version key
    assert TrainState.from_dict(old, "x") == state


@pytest.mark.parametrize(
    "change",
    [{"phase": "warmup"}, {"epoch": -1}, {"version": 99}, {"history": None}, {"rl_iter": "2"}],
)
def test_a_state_this_version_cannot_continue_is_one_line(change):
    data = {**TrainState().to_dict(), **change}
    with pytest.raises(ValueError) as info:
        TrainState.from_dict(data, "ckpt/train_state.json")
    message = str(info.value)
    assert message.startswith("ckpt/train_state.json: ") and "\n" not in message
    assert "new run" in message


def test_unfinished_note_names_where_the_run_stopped():
    assert "epoch 1 of 5" in TrainState(Phase.SUPERVISED, epoch=1).unfinished_note(5, 30)
    assert "iteration 7 of 30" in TrainState(Phase.RL, rl_iter=7).unfinished_note(5, 30)
    assert "--resume" in TrainState(Phase.TSTAR).unfinished_note(5, 30)
    assert TrainState(Phase.DONE).unfinished_note(5, 30) is None


def test_a_stopped_run_is_refused_by_loaders_and_resumes(tiny_export, tmp_path):
    from _training_data import tiny_config

    from napari_cliprl.model.build import build_model
    from napari_cliprl.model.checkpoint import CheckpointError
    from napari_cliprl.training.finetune import finetune

    out = tmp_path / "ckpt"
    first = finetune(tiny_config(tiny_export, out), should_stop=lambda: True)
    assert first.stopped
    assert json.loads((out / STATE_JSON).read_text())["state"]["phase"] == "supervised"
    with pytest.raises(CheckpointError, match="unfinished fine-tune.*--resume") as info:
        build_model(checkpoint=out)
    assert str(info.value).startswith(str(out)) and "\n" not in str(info.value)
    done = finetune(tiny_config(tiny_export, out, resume=True))
    assert not done.stopped
    assert build_model(checkpoint=out).config.steps == done.tstar
    assert "unfinished" not in json.loads((out / "config.json").read_text())


def test_recovery_never_replaces_a_folder_holding_other_files(tmp_path):
    from napari_cliprl.training.state import recover_checkpoint

    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "thesis.txt").write_text("x")
    old = tmp_path / ".ckpt.old-123"  # as a swap killed between its two renames leaves it
    old.mkdir()
    (old / "config.json").write_text("{}")
    assert recover_checkpoint(out) is None
    assert (out / "thesis.txt").read_text() == "x"
