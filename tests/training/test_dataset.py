"""Training data: every reader's format, reviewed frames only, augmentation keeps labels aligned."""

import numpy as np
import torch
from _training_data import SIZE, UNREVIEWED, write_export

from napari_cliprl.training.dataset import (
    AugmentConfig,
    FrameDataset,
    augment,
    open_sequences,
    split_frames,
)


def test_only_reviewed_frames_of_an_export_are_used(tiny_export):
    seqs = open_sequences([tiny_export])
    assert len(seqs) == 1 and len(seqs[0]) == 5
    assert f"frame{UNREVIEWED:03d}" not in seqs[0].frame_names
    ds = FrameDataset(seqs, SIZE)
    seen = set()
    for i in range(len(ds)):
        seen |= set(np.unique(ds[i][1].numpy()).tolist())
    assert 7 not in seen  # the unreviewed frame's nonsense labels never reach training


def test_folder_of_sequences_and_schema_mismatch(tmp_path):
    write_export(tmp_path / "all" / "a", n_frames=2, unreviewed=())
    write_export(tmp_path / "all" / "b", n_frames=3, seed=4, unreviewed=())
    seqs = open_sequences([tmp_path / "all"])
    assert [len(s) for s in seqs] == [2, 3]


def test_changed_pixels_weigh_more(tmp_path):
    from PIL import Image

    folder = write_export(tmp_path / "e", n_frames=2, unreviewed=())
    (folder / "changed").mkdir()
    mask = np.zeros(SIZE, np.uint8)
    mask[:10] = 1
    Image.fromarray(mask).save(folder / "changed" / "frame000.png")
    ds = FrameDataset(open_sequences([folder]), SIZE, changed_weight=3.0)
    _, _, weight = ds.load(0)
    assert float(weight[:10].min()) == 3.0 and float(weight[10:].max()) == 1.0
    assert float(ds.load(1)[2].max()) == 1.0


def test_augmentation_keeps_labels_aligned_and_pads_with_ignore():
    img = torch.zeros(3, 32, 40)
    img[:, :, :20] = 1.0  # left half white
    lab = torch.zeros(32, 40, dtype=torch.long)
    lab[:, :20] = 1
    wgt = torch.ones(32, 40)
    cfg = AugmentConfig(scale=(0.6, 0.6), hflip=1.0, brightness=0, contrast=0, saturation=0, hue=0)
    out_img, out_lab, out_wgt = augment(img, lab, wgt, cfg, torch.Generator().manual_seed(0))
    assert out_img.shape == img.shape and out_lab.shape == lab.shape
    assert (out_lab == 255).any() and (out_wgt[out_lab == 255] == 0).all()
    inside = out_lab != 255
    white = out_img.mean(0) > 0.5
    assert ((out_lab == 1) == white)[inside].float().mean() > 0.95  # flipped together
    light = AugmentConfig(scale=(1, 1), hflip=0)
    lit, lab2, _ = augment(img, lab, wgt, light, torch.Generator().manual_seed(1))
    assert torch.equal(lab2, lab) and not torch.equal(lit, img)  # lighting changes pixels only
    assert 0.0 <= float(lit.min()) and float(lit.max()) <= 1.0


def test_split_holds_out_evenly_spaced_frames():
    items = [(0, i) for i in range(10)]
    train, val = split_frames(items, 0.2)
    assert len(val) == 2 and not set(train) & set(val) and len(train) + len(val) == 10
    assert split_frames(items[:1], 0.2) == (items[:1], items[:1])


def test_an_epoch_of_few_frames_repeats_them_with_new_augmentation(tiny_export):
    from napari_cliprl.training.dataset import EpochView

    ds = FrameDataset(open_sequences([tiny_export]), SIZE, AugmentConfig())
    view = EpochView(ds, [0, 2], min_len=6)
    assert len(view) == 6 and view.items == [0, 2, 0, 2, 0, 2]
    assert torch.equal(view[0][0], ds[0][0])  # the first draw is the plain epoch's
    assert not torch.equal(view[0][0], view[2][0])  # a repeat is augmented anew
    assert len(EpochView(ds, [0, 1, 2], min_len=0)) == 3
