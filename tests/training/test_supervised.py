"""Phase A: one tiny supervised epoch learns; trained parameters move, frozen ones do not."""

import pytest
import torch
from _training_data import SIZE
from torch.utils.data import DataLoader

from napari_cliprl.training.dataset import FrameDataset, open_sequences
from napari_cliprl.training.distributed import DistContext
from napari_cliprl.training.losses import class_weights
from napari_cliprl.training.supervised import (
    Segmenter,
    SupervisedConfig,
    drop_unused,
    make_optimizer,
    mark_trainable,
    train_one_epoch,
)


@pytest.fixture
def tiny_model():
    from napari_cliprl.model.build import build_model

    return build_model("tiny-test", schema="endovis2018", input_size=SIZE)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("train_backbone", [True, False])
def test_one_supervised_epoch_trains_decoder_and_only_what_it_should(
    tiny_export, tiny_model, train_backbone
):
    config = SupervisedConfig(
        epochs=1, batch_size=2, learning_rate=3e-3, warmup_steps=1, train_backbone=train_backbone
    )
    ds = FrameDataset(open_sequences([tiny_export]), SIZE)
    weight = class_weights(torch.stack([ds.load(i)[1] for i in range(len(ds))]), 12)
    mark_trainable(tiny_model, config)
    tiny_model.train()
    segmenter = Segmenter(tiny_model)
    drop_unused(segmenter, ds.load(0)[0][None])
    optimizer = make_optimizer(tiny_model, config)
    before = {n: _snapshot(getattr(tiny_model, n)) for n in ("decoder", "backbone", "agent")}
    loader = DataLoader(ds, batch_size=2, shuffle=False)
    ctx = DistContext()
    losses = [train_one_epoch(segmenter, loader, optimizer, weight, config, ctx, total_steps=9)]
    for _ in range(2):
        losses.append(train_one_epoch(segmenter, loader, optimizer, weight, config, ctx))
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in losses)
    assert losses[-1]["loss"] < losses[0]["loss"]

    def changed(name: str) -> bool:
        after = _snapshot(getattr(tiny_model, name))
        return any(not torch.equal(before[name][k], after[k]) for k in after)

    assert changed("decoder")
    assert changed("backbone") == train_backbone
    assert not changed("agent")  # phase A never touches the refinement agent
