"""Where the agent could add over fused step 0, and whether the corrected frames can teach it.

    OMP_NUM_THREADS=1 python benchmarks/fusion_headroom.py \\
        --data ../shared/data/cholecseg8k_seq --every 2 --ks 1,2,4 \\
        --json benchmarks/results/fusion_headroom-every2.json

For k corrected frames (``annotation_loop.pick_even``, fine-tuned exactly as in
``annotation_loop.py``), every other frame's fused step 0 (what the user is shown) is put beside
per-cell alternatives the agent's actions reach: take the forward side, take the backward side
(only where both exist), take the image (the side actions), and the fused map unsnapped or
snapped with twice the radius. Reported on the frames never corrected, each with
``metrics.evaluate_frames`` plus pixels to change:

- ``step_0`` .. ``step_T``: the shipped model's fused steps (the agent's, greedy);
- ``all_<alternative>``: every cell takes that alternative;
- ``oracle_cell``: per stride-4 cell the alternative with the fewest wrong pixels, chosen with
  the ground truth: the most any per-cell policy over these alternatives could reach;
- ``learner_flow`` / ``learner_image``: a direct supervised learner (a small MLP regressing each
  alternative's per-cell gain over step 0, acting where its predicted gain is positive) trained
  on the fusion samples the fine-tune builds from the corrected frames (pairs, both sides,
  round trips, as ``training.fusion_phase``): what the information the agent is trained on
  can teach, without RL in the way. ``learner_flow`` sees flow and image-edge features and
  chooses among the side and snapping alternatives; ``learner_image`` also sees the decoder's
  probabilities and may take the image (optimistic: this decoder was fine-tuned on the
  corrected frames, where the agent's samples use held-out decoders).

An absent folder is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import annotation_loop as loop

SIDE_ALTERNATIVES = ("forward", "backward")
SNAP_ALTERNATIVES = ("unsnapped", "wider_snap")
BIG_GAIN = 1000.0  # a side gain that wins every pixel of its cells


def frame_maps(model: Any, frame: np.ndarray, context: Any) -> dict[str, Any]:
    """The fused step maps of one frame and its per-cell alternatives (all H x W uint8)."""
    import torch

    from napari_cliprl.fusion.edges import snap_to_edges
    from napari_cliprl.fusion.grid import context_channels, fused_labels
    from napari_cliprl.model.inference import predict_logits

    images = model.preprocess(torch.from_numpy(frame)[None])
    channels = context_channels(context, model.num_classes, model.logits_size)
    out = predict_logits(model, images, steps=loop.STEPS, context=channels[None])
    radius, eps = model.config.snap_radius, model.config.snap_eps

    def snap(labels: np.ndarray, r: int = radius) -> np.ndarray:
        return snap_to_edges(labels, frame, r, eps) if r else labels

    logits = [lg[0].float().cpu() for lg in out.logits]
    gains = [g[0].float().cpu() for g in out.gains]
    steps = [snap(fused_labels(L, G, context)) for L, G in zip(logits, gains)]
    L0, G0 = logits[0], gains[0]
    raw = fused_labels(L0, G0, context)
    alternatives = {"unsnapped": raw, "wider_snap": snap(raw, 2 * radius)}
    two_sided = context.forward is not None and context.backward is not None
    for s, name in enumerate(SIDE_ALTERNATIVES):
        G = torch.zeros_like(G0)
        G[s] = BIG_GAIN
        alternatives[name] = snap(fused_labels(L0, G, context)) if two_sided else steps[0]
    alternatives["image"] = snap(fused_labels(L0, torch.zeros_like(G0), context))
    probs = L0.softmax(0).numpy()
    return {"steps": steps, "alternatives": alternatives, "channels": channels.numpy(),
            "probs": probs}  # fmt: skip


class Cells:
    """Per-cell means of full-size maps on the model's stride-4 grid."""

    def __init__(self, size: tuple[int, int], grid: tuple[int, int]) -> None:
        from napari_cliprl.fusion.grid import cell_index

        rows, cols = cell_index(size, grid)
        self.ids = rows[:, None] * grid[1] + cols[None, :]
        self.n = grid[0] * grid[1]
        self.count = np.bincount(self.ids.ravel(), minlength=self.n).astype(np.float64)

    def mean(self, values: np.ndarray) -> np.ndarray:
        flat = values.ravel().astype(np.float64)
        return np.bincount(self.ids.ravel(), weights=flat, minlength=self.n) / self.count

    def pick(self, maps: list[np.ndarray], choice: np.ndarray) -> np.ndarray:
        """Per cell the map ``choice[cell]`` (0 = the first)."""
        return np.take_along_axis(np.stack(maps), choice[self.ids][None], 0)[0]


def cell_features(maps: dict[str, Any], frame: np.ndarray, cells: Cells, K: int) -> np.ndarray:
    """n_cells x F: the context's per-side scalars and disagreement, image edges, the step-0
    map's boundaries, and the share of each cell every alternative changes; then the
    decoder's agreement with each side and its entropy (the last 3 columns)."""
    import cv2

    from napari_cliprl.model.fusion_head import SIDE_EXTRA

    ch = maps["channels"].reshape(maps["channels"].shape[0], -1)
    block = K + SIDE_EXTRA
    step0 = maps["steps"][0]
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    edges = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    boundary = np.zeros(step0.shape, bool)
    boundary[:, 1:] |= step0[:, 1:] != step0[:, :-1]
    boundary[1:] |= step0[1:] != step0[:-1]
    columns = [*ch[K : K + SIDE_EXTRA], *ch[block + K : block + K + SIDE_EXTRA], ch[-1]]
    columns += [cells.mean(edges), cells.mean(boundary), cells.mean(edges * boundary)]
    columns += [cells.mean(m != step0) for m in maps["alternatives"].values()]
    probs = maps["probs"].reshape(K, -1)
    for s in range(2):
        areas = ch[s * block : s * block + K]
        columns.append((areas * probs).sum(0) / np.maximum(areas.sum(0), 1e-6))
    columns.append(-(probs * np.log(probs + 1e-9)).sum(0))
    return np.stack(columns, 1).astype(np.float32)


def cell_gains(maps: dict[str, Any], truth: np.ndarray, cells: Cells) -> np.ndarray:
    """n_cells x A: per cell, wrong pixels of step 0 minus those of each alternative (share)."""
    valid = truth != loop.IGNORE
    wrong0 = cells.mean((maps["steps"][0] != truth) & valid)
    return np.stack(
        [wrong0 - cells.mean((m != truth) & valid) for m in maps["alternatives"].values()], 1
    )


class Learner:
    """Per-cell gain regression (one hidden layer), full-batch Adam on standardised features."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, seed: int, iterations: int = 1500) -> None:
        import torch

        torch.manual_seed(seed)
        x, y = torch.from_numpy(X), torch.from_numpy(Y).float() * 100
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        self.net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 32), torch.nn.GELU(), torch.nn.Linear(32, y.shape[1])
        )
        opt = torch.optim.Adam(self.net.parameters(), 3e-3, weight_decay=1e-4)
        for _ in range(iterations):
            loss = (self.net((x - self.mu) / self.sd) - y).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    def choose(self, X: np.ndarray) -> np.ndarray:
        """Per cell 0 (keep step 0) or 1 + the alternative with the best positive gain."""
        import torch

        with torch.no_grad():
            gain = self.net((torch.from_numpy(X) - self.mu) / self.sd).numpy()
        return np.where(gain.max(1) > 0, gain.argmax(1) + 1, 0)


LEARNERS = {  # name: (alternatives it may take, whether it sees the decoder's columns)
    "learner_flow": ((*SIDE_ALTERNATIVES, *SNAP_ALTERNATIVES), False),
    "learner_image": ((*SIDE_ALTERNATIVES, *SNAP_ALTERNATIVES, "image"), True),
}
NAMES = (*SIDE_ALTERNATIVES, *SNAP_ALTERNATIVES, "image")  # order of frame_maps' alternatives


def columns_of(allowed: tuple[str, ...], decoder: bool, n_features: int) -> tuple[list, list]:
    """(feature columns, gain columns) a learner uses."""
    base = n_features - 3 - len(NAMES)  # context, edges, boundaries
    change = [base + NAMES.index(a) for a in allowed]
    feats = [*range(base), *change, *(range(n_features - 3, n_features) if decoder else [])]
    return feats, [NAMES.index(a) for a in allowed]


def training_cells(model: Any, ctx: dict, anchors: dict[int, np.ndarray]) -> tuple:
    """(features, gains) of every cell of the fusion samples the fine-tune builds."""
    from napari_cliprl.fusion.samples import SampleConfig, fusion_samples
    from napari_cliprl.training.fusion_config import FusionConfig

    cfg = FusionConfig()
    rounds = tuple(2**j for j in range(32) if 2**j <= cfg.round_trip_max)
    config = SampleConfig(cfg.max_gap, cfg.neighbours, rounds, cfg.round_trips_when)
    X, Y = [], []
    for sample in fusion_samples(anchors, ctx["flows"], config):
        frame = ctx["frames"][sample.index]
        maps = frame_maps(model, frame, sample.context)
        cells = Cells(frame.shape[:2], model.logits_size)
        X.append(cell_features(maps, frame, cells, model.num_classes))
        Y.append(cell_gains(maps, anchors[sample.index], cells))
    return np.concatenate(X), np.concatenate(Y)


def run_k(ctx: dict, frames: list[int], seed: int) -> dict[str, Any]:
    from napari_cliprl.flow import propagate
    from napari_cliprl.fusion.context import frame_context
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training.finetune import finetune

    seq, work, K = ctx["seq"], ctx["work"], ctx["seq"].schema.num_classes
    data = loop.write_corrections(seq, frames, work / f"export-k{len(frames)}", ctx["video"])
    out = work / f"ckpt-k{len(frames)}"
    result = finetune(loop.loop_config(str(data), out, len(frames), seed))
    model = build_model(checkpoint=result.checkpoint).eval()
    anchors = {f: seq.labels(f) for f in frames}
    X, Y = training_cells(model, ctx, anchors)
    learners = {}
    for name, (allowed, decoder) in LEARNERS.items():
        feats, gains = columns_of(allowed, decoder, X.shape[1])
        learners[name] = (Learner(X[:, feats], Y[:, gains], seed), feats, ["step_0", *allowed])
    rest = [t for t in range(len(seq)) if t not in set(frames)]
    propagated = propagate(anchors, rest, ctx["flows"])
    preds: dict[str, list[np.ndarray]] = {}
    truth = []
    for t in rest:
        frame, target = ctx["frames"][t], seq.labels(t)
        maps = frame_maps(model, frame, frame_context(propagated[t], anchors))
        cells = Cells(frame.shape[:2], model.logits_size)
        choices = {f"step_{s}": m for s, m in enumerate(maps["steps"])}
        choices.update({f"all_{a}": m for a, m in maps["alternatives"].items()})
        every = [maps["steps"][0], *maps["alternatives"].values()]
        gains = cell_gains(maps, target, cells)
        best = np.where(gains.max(1) > 0, gains.argmax(1) + 1, 0)
        choices["oracle_cell"] = cells.pick(every, best)
        features = cell_features(maps, frame, cells, K)
        for name, (learner, feats, allowed) in learners.items():
            options = [every[0], *(maps["alternatives"][a] for a in allowed[1:])]
            choices[name] = cells.pick(options, learner.choose(features[:, feats]))
        for name, labels in choices.items():
            preds.setdefault(name, []).append(labels)
        truth.append(target)
    variants = {name: loop.scores(p, truth, K) for name, p in preds.items()}
    return {"k": len(frames), "corrected_frames": frames, "tstar": int(model.config.fusion_steps),
            "training_cells": int(len(X)), "variants": variants}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="labelled sequence folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--ks", default="1,2,4,8", help="corrected-frame counts")
    parser.add_argument("--every", type=int, default=1, help="take every Nth frame")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (development data only)")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = loop.clip_context(args.data, args.every, Path(tmp))
        report: dict[str, Any] = {"arch": loop.ARCH, "data": str(args.data),
                                  "every": args.every, "frames": len(ctx["seq"]),
                                  "results": []}  # fmt: skip
        for k in (int(x) for x in args.ks.split(",")):
            row = run_k(ctx, loop.pick_even(len(ctx["seq"]), k), args.seed)
            report["results"].append(row)
            loop.print_row(row, time.perf_counter() - start)
    report["seconds"] = time.perf_counter() - start
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
