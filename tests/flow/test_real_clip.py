"""On real laparoscopic frames, carrying reviewed labels by flow beats copying them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cliprl.flow import FlowCache, flow_nearest, propagate
from napari_cliprl.io import read_labeled
from napari_cliprl.metrics import pixels_to_change


def test_flow_needs_fewer_corrections_than_copying_the_nearest_anchor(cholec_seq: Path) -> None:
    seq = read_labeled(cholec_seq).subset(range(24, 33))  # 9 frames, anchors at both ends
    gts = [seq.labels(i) for i in range(len(seq))]
    result = propagate({0: gts[0], 8: gts[8]}, range(1, 8), FlowCache(seq.frames))
    copied = [gts[0] if t <= 4 else gts[8] for t in range(1, 8)]
    carried = [flow_nearest(result[t]) for t in range(1, 8)]
    carried = [np.where(c == 255, p, c) for c, p in zip(carried, copied)]  # unknown: copy
    flow, copy = pixels_to_change(carried, gts[1:8]), pixels_to_change(copied, gts[1:8])
    assert flow < 0.75 * copy, (flow, copy)
