"""Training data: labelled sequences from the io readers, resized, cached and augmented.

Every format the io readers know is accepted (EndoVis 2017 any task, EndoVis 2018,
CholecSeg8k, the plugin's export). From an export only frames marked reviewed in its
``manifest.json`` are used: nothing else is ever treated as ground truth. An export may add
``changed/<name>.png`` masks (non-zero = the annotator changed that pixel); those pixels weigh
``changed_weight`` times more in the supervised loss (DESIGN 2.9).

Items are ``(image 3 x H x W float in [0, 1], labels H x W long, pixel_weight H x W float)`` at
the model's input size; CLIP normalisation is the model's (``CLIPRL.normalize``), on the device.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from napari_cliprl.io import LabeledSequence, find_labeled, read_labeled
from napari_cliprl.schemas import LabelSchema, get_schema
from napari_cliprl.training.config import AugmentConfig

IGNORE_INDEX = 255


# -- reading ---------------------------------------------------------------------------------
def open_sequences(
    paths: Sequence[str | os.PathLike],
    schema: LabelSchema | str | None = None,
    *,
    ground_truth: bool = False,
) -> list[LabeledSequence]:
    """Every labelled sequence under ``paths`` (a sequence folder or a folder of them).

    Exports contribute only their reviewed frames; an export-layout folder without a manifest
    only with ``ground_truth`` (io's ``read_labeled`` contract). All sequences must share one
    schema; a mismatch raises ValueError naming both.
    """
    seqs: list[LabeledSequence] = []
    for path in paths:
        for folder in find_labeled(path):
            seq = read_labeled(folder, schema, reviewed_only=True, ground_truth=ground_truth)
            if len(seq):
                seqs.append(seq)
    if not seqs:
        raise ValueError(f"no labelled frames found in {', '.join(map(str, paths))}")
    first = seqs[0].schema
    if schema is not None and get_schema(schema).name != first.name:
        raise ValueError(
            f"{seqs[0].path}: the data's schema is {first.name!r}, not the requested "
            f"{get_schema(schema).name!r}"
        )
    for seq in seqs[1:]:
        if seq.schema.name != first.name or seq.schema.num_classes != first.num_classes:
            raise ValueError(
                f"{seq.path}: schema {seq.schema.name!r} differs from {first.name!r} of "
                f"{seqs[0].path}; train on one schema at a time"
            )
    return seqs


def changed_mask(seq: LabeledSequence, index: int) -> np.ndarray | None:
    """H x W bool "annotator changed this pixel" of an export frame, or None if not stored."""
    label_path = seq.label_paths[index]
    if not isinstance(label_path, str | os.PathLike):
        return None  # e.g. EndoVis 2017: several mask files per frame, never an export
    label_path = Path(label_path)
    path = label_path.parent.parent / "changed" / label_path.name
    if not path.is_file():
        return None
    from napari_cliprl.io._png import read_mask

    return read_mask(path) > 0


# -- resizing and augmentation (tensors) ------------------------------------------------------
def resize_pair(
    image: np.ndarray, labels: np.ndarray, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """H x W x 3 uint8 + H x W uint8 -> 3 x h x w float [0, 1] (bilinear) + h x w long (nearest)."""
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    lab = torch.from_numpy(np.ascontiguousarray(labels)).long()
    if tuple(img.shape[-2:]) != tuple(size):
        img = F.interpolate(img[None], size=size, mode="bilinear", antialias=True)[0]
        img = img.clamp(0.0, 1.0)
        lab = F.interpolate(lab[None, None].float(), size=size, mode="nearest")[0, 0].long()
    return img, lab


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _rescale(
    img: torch.Tensor, lab: torch.Tensor, wgt: torch.Tensor, s: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zoom by ``s`` keeping the size: s > 1 crops a random window, s < 1 pads with ignore."""
    H, W = img.shape[-2:]
    h, w = max(1, round(H * s)), max(1, round(W * s))
    img = F.interpolate(img[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    lab = F.interpolate(lab[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
    wgt = F.interpolate(wgt[None, None], size=(h, w), mode="nearest")[0, 0]
    if s >= 1.0:
        top = int(torch.randint(0, h - H + 1, (), generator=gen))
        left = int(torch.randint(0, w - W + 1, (), generator=gen))
        return (
            img[:, top : top + H, left : left + W],
            lab[top : top + H, left : left + W],
            wgt[top : top + H, left : left + W],
        )
    top = int(torch.randint(0, H - h + 1, (), generator=gen))
    left = int(torch.randint(0, W - w + 1, (), generator=gen))
    out_img = img.new_full((3, H, W), 0.0)
    out_lab = lab.new_full((H, W), IGNORE_INDEX)
    out_wgt = wgt.new_zeros((H, W))
    out_img[:, top : top + h, left : left + w] = img
    out_lab[top : top + h, left : left + w] = lab
    out_wgt[top : top + h, left : left + w] = wgt
    return out_img, out_lab, out_wgt


def _hue_rotate(img: torch.Tensor, turns: float) -> torch.Tensor:
    """Rotate the hue of a 3 x H x W RGB image by ``turns`` (fraction of 360 degrees) in YIQ."""
    to_yiq = img.new_tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]
    )
    c, s = math.cos(2 * math.pi * turns), math.sin(2 * math.pi * turns)
    rot = img.new_tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
    return torch.einsum("ij,jhw->ihw", m, img)


def augment(
    img: torch.Tensor,
    lab: torch.Tensor,
    wgt: torch.Tensor,
    config: AugmentConfig,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scale, flip and lighting (brightness/contrast/saturation/hue) augmentation.

    img 3 x H x W float [0, 1], lab H x W long, wgt H x W float; shapes are kept. Geometric
    changes apply to all three; photometric ones only to the image.
    """
    if not config.enabled:
        return img, lab, wgt
    lo, hi = config.scale
    if hi > lo or lo != 1.0:
        s = math.exp(_uniform(gen, math.log(lo), math.log(hi)))
        if abs(s - 1.0) > 1e-3:
            img, lab, wgt = _rescale(img, lab, wgt, s, gen)
    if float(torch.rand((), generator=gen)) < config.hflip:
        img, lab, wgt = img.flip(-1), lab.flip(-1), wgt.flip(-1)
    if float(torch.rand((), generator=gen)) < config.vflip:
        img, lab, wgt = img.flip(-2), lab.flip(-2), wgt.flip(-2)
    b, c, sat = config.brightness, config.contrast, config.saturation
    img = img * _uniform(gen, 1 - b, 1 + b)
    grey = img.mean(dim=0, keepdim=True)
    img = grey.mean() + (img - grey.mean()) * _uniform(gen, 1 - c, 1 + c)
    img = grey + (img - grey) * _uniform(gen, 1 - sat, 1 + sat)
    if config.hue > 0:
        img = _hue_rotate(img, _uniform(gen, -config.hue, config.hue))
    return img.clamp(0.0, 1.0), lab, wgt


# -- the dataset -----------------------------------------------------------------------------
class FrameDataset(Dataset):
    """Frames of several labelled sequences at the model's input size, cached, augmented.

    ``dataset[i] -> (image 3 x H x W float [0, 1], labels H x W long, weight H x W float)``.
    Frames are decoded and resized once, then kept (``cache=True``): fine-tuning sets are
    small; pass ``cache=False`` for large datasets.
    """

    def __init__(
        self,
        sequences: Sequence[LabeledSequence],
        input_size: tuple[int, int],
        augment: AugmentConfig | None = None,
        *,
        frames: Sequence[tuple[int, int]] | None = None,
        changed_weight: float = 2.0,
        cache: bool = True,
        seed: int = 0,
    ) -> None:
        self.sequences = list(sequences)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment_config = augment or AugmentConfig(enabled=False)
        self.items = list(frames) if frames is not None else all_frames(self.sequences)
        self.changed_weight = changed_weight
        self.cache = cache
        self.seed = seed
        self.epoch = 0
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @property
    def schema(self) -> LabelSchema:
        return get_schema(self.sequences[0].schema)

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (deterministic per epoch and item)."""
        self.epoch = epoch

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Item ``i`` resized, not augmented."""
        if i in self._cache:
            return self._cache[i]
        s, f = self.items[i]
        seq = self.sequences[s]
        image, labels = seq[f]
        img, lab = resize_pair(image, labels, self.input_size)
        wgt = torch.ones(lab.shape)
        changed = changed_mask(seq, f)
        if changed is not None:
            _, ch = resize_pair(image, changed.astype(np.uint8), self.input_size)
            wgt = torch.where(ch > 0, torch.full_like(wgt, self.changed_weight), wgt)
        if self.cache:
            self._cache[i] = (img, lab, wgt)
        return img, lab, wgt

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.sample(i, draw=i)

    def sample(self, i: int, draw: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Item ``i`` with augmentation draw ``draw`` of the current epoch (deterministic)."""
        img, lab, wgt = self.load(i)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + draw)
        return augment(img, lab, wgt, self.augment_config, gen)


class EpochView(Dataset):
    """The items of one epoch: positions of a FrameDataset, repeated to at least ``min_len``.

    A repeated frame gets a new augmentation draw each time (tiny fine-tuning sets: a handful
    of corrected frames still make an epoch of useful size).
    """

    def __init__(self, dataset: FrameDataset, items: Sequence[int], min_len: int = 0) -> None:
        items = list(items)
        n = max(len(items), min_len)
        self.dataset = dataset
        self.items = [items[k % len(items)] for k in range(n)]
        self.offset = len(dataset)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, p: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = self.items[p]
        repeat = p // max(1, len(set(self.items)))
        return self.dataset.sample(i, draw=i + repeat * self.offset)


def all_frames(sequences: Sequence[LabeledSequence]) -> list[tuple[int, int]]:
    """(sequence position, frame position) of every frame."""
    return [(s, f) for s, seq in enumerate(sequences) for f in range(len(seq))]


def split_frames(
    items: Sequence[tuple[int, int]], val_fraction: float, min_val: int = 1
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Hold out evenly spaced frames for validation (early stop, T*): (train, val).

    Evenly spaced rather than random, so neighbouring video frames stay on both sides
    equally. With fewer than 2 frames there is nothing to hold out: (items, items).
    """
    items = list(items)
    n_val = max(min_val, round(len(items) * val_fraction)) if val_fraction > 0 else 0
    if len(items) < 2 or n_val == 0:
        return items, items
    n_val = min(n_val, len(items) - 1)
    picks = {int(p) for p in np.linspace(0, len(items) - 1, n_val + 2)[1:-1].round()}
    val = [it for k, it in enumerate(items) if k in picks]
    train = [it for k, it in enumerate(items) if k not in picks]
    return train, val
