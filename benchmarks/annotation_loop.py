"""Annotation-loop benchmark (DESIGN section 10, issue 12) on a real video with ground truth.

    OMP_NUM_THREADS=1 python benchmarks/annotation_loop.py \\
        --data ../shared/data/cholecseg8k_seq --json benchmarks/results/annotation_loop.json

For k = 1, 2, 4, 8 "corrected" frames (their ground truth, written in the plugin's export
layout, all marked reviewed, with the video as the manifest's source, as the widget exports
them) a fresh model is fine-tuned on them with the shipped ``finetune`` (video fusion on), and
every other frame is predicted with the shipped ``annotation.run.predict_sequence``. Reported
on the frames never corrected, each with ``metrics.evaluate_frames`` plus pixels to change:

- ``model_only``: each frame on its own (no propagation), at the model's per-frame T*;
- ``flow_nearest``: the nearest corrected frame carried by optical flow (``flow.flow_nearest``);
- ``flow_both``: per pixel the more confident of the two nearest corrected frames carried by
  flow (``flow.flow_both``); flow's unknown pixels take the copied nearest correction there
  (as in benchmarks/flow.py);
- ``fused_step_0`` / ``fused_tstar``: the fused proposal (propagation context + model) at step 0
  and at the model's T* with a context (``tstar``).

``--every N`` takes every Nth frame (larger motion between frames). ``--pick uncertainty``
picks the corrected frames with the shipped ``annotation.suggest.pick_frames`` on the previous
round's model's uncertainty (nested rounds). ``--ablation K`` adds, at k = K: the agent without
the side actions, the fine-tune without curriculum, and ``flow_both`` snapped to the edges
(the fused path's edge snapping alone). Hyper-parameters were chosen on ``--every 2`` and
``--every 4`` (docs/benchmarks.md), never on the headline clip. An absent folder is skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ARCH = "tiny-test"
INPUT_SIZE = (128, 224)  # (h, w): multiple of the patch size, near the 16:9 of 854 x 480
KS = (1, 2, 4, 8)
STEPS = 3
IGNORE = 255


def loop_config(data: str, out: Path, n_train: int, seed: int, **fusion: Any) -> Any:
    """The fine-tuning run for ``n_train`` corrected frames; the supervised budget grows with
    them (at least 32 draws per epoch, 8 per frame beyond 4)."""
    from napari_cliprl.training.config import (
        CurriculumConfig,
        FinetuneConfig,
        FusionConfig,
        RLConfig,
        SupervisedConfig,
    )

    curriculum = fusion.pop("curriculum", True)
    return FinetuneConfig(
        data=[data],
        out=str(out),
        arch=ARCH,
        input_size=INPUT_SIZE,
        device="cpu",
        supervised=SupervisedConfig(
            epochs=15, batch_size=4, learning_rate=3e-3, backbone_lr=1e-3, train_backbone=True
        ),
        rl=RLConfig(imitation_iters=150, iterations=100, max_steps=STEPS),
        curriculum=CurriculumConfig(enabled=curriculum),
        fusion=FusionConfig(**fusion),
        val_fraction=0.25 if n_train >= 4 else 0.0,
        min_epoch_frames=max(32, 8 * n_train),
        checkpoint_every=1000,
        log_every=1000,
        seed=seed,
    )


def pick_even(n: int, k: int) -> list[int]:
    """k evenly spaced frame positions of n (centred: never the very first and last)."""
    return sorted({int((i + 0.5) * n / k) for i in range(k)}) if k else []


class MemoryStore:
    """A label store in memory (``annotation.store.LabelStore``): proposals per frame, and the
    corrected frames as reviewed anchors."""

    def __init__(self, steps: int, anchors: dict[int, np.ndarray] | None = None) -> None:
        self.steps = steps
        self.anchors = dict(anchors or {})
        self.maps: dict[int, list[np.ndarray]] = {}
        self.propagated: dict[int, np.ndarray] = {}
        self.uncertainty: dict[int, float] = {}

    @property
    def reviewed(self) -> list[int]:
        return sorted(self.anchors)

    def needs_prediction(self, index: int) -> bool:
        return True

    def is_reviewed(self, index: int) -> bool:
        return index in self.anchors

    def anchor_labels(self, index: int) -> np.ndarray:
        return self.anchors[index]

    def seed_labels(self, index: int) -> np.ndarray | None:
        return self.anchors.get(index)

    def write_prediction(self, index, zero_shot, steps, *, uncertainty=None, frame=None,
                         propagated=None) -> None:  # fmt: skip
        self.maps[index] = [np.asarray(s) for s in steps]
        if propagated is not None:
            self.propagated[index] = np.asarray(propagated)
        if uncertainty is not None:
            self.uncertainty[index] = float(uncertainty)


def write_video(seq: Any, folder: Path) -> Path:
    """The sequence's frames as a folder of PNGs (the video the exports refer to)."""
    from napari_cliprl.io._png import write_png

    for i in range(len(seq)):
        write_png(folder / f"{seq.frame_names[i]}.png", np.asarray(seq.frames[i]))
    return folder


def write_corrections(seq: Any, frames: list[int], folder: Path, video: Path) -> Path:
    """The corrected frames as the widget exports them: export layout, all reviewed, the video
    as the manifest's source (frame index = position in it)."""
    from napari_cliprl.io.export import make_manifest, write_labels

    names = [seq.frame_names[f] for f in frames]
    manifest = make_manifest(str(video), seq.schema, [(n, f, True) for n, f in zip(names, frames)])
    write_labels(
        folder,
        {n: seq.labels(f) for n, f in zip(names, frames)},
        seq.schema,
        images={n: np.asarray(seq.frames[f]) for n, f in zip(names, frames)},
        manifest=manifest,
    )
    return folder


def scores(preds: list[np.ndarray], truth: list[np.ndarray], K: int) -> dict[str, Any]:
    from napari_cliprl.metrics import evaluate_frames, pixels_to_change

    return {**evaluate_frames(preds, truth, K), "pixels_to_change": pixels_to_change(preds, truth)}


def flow_baselines(ctx: dict, rest: list[int], anchors: dict[int, np.ndarray]) -> dict:
    """flow_nearest / flow_both with unknown pixels filled by the copied nearest anchor."""
    from napari_cliprl.flow import flow_both, flow_nearest, propagate

    result = propagate(anchors, rest, ctx["flows"])
    out: dict[str, list[np.ndarray]] = {"flow_nearest": [], "flow_both": []}
    for t in rest:
        copy = anchors[min(anchors, key=lambda a: (abs(a - t), a))]
        for name, fn in (("flow_nearest", flow_nearest), ("flow_both", flow_both)):
            labels = fn(result[t])
            filled = np.where(labels == IGNORE, copy, labels)
            out[name].append(np.where(filled == IGNORE, 0, filled).astype(np.uint8))
    return out


def predict_all(model: Any, ctx: dict, rest: list[int], anchors: dict | None) -> MemoryStore:
    """The shipped run loop over the frames ``rest`` (with the anchors' propagation, or not)."""
    from napari_cliprl.annotation.run import predict_sequence
    from napari_cliprl.predictor import Predictor

    predictor = Predictor(model, cache_size=len(ctx["frames"]), device="cpu")
    store = MemoryStore(STEPS, anchors)
    for _ in predict_sequence(predictor, ctx["frames"], rest, store, key="clip",
                              propagate=anchors is not None, flows=ctx["flows"]):  # fmt: skip
        pass
    return store


def run_k(ctx: dict, frames: list[int], tag: str, seed: int, **options: Any) -> tuple:
    """Fine-tune on the corrected ``frames``; every variant on the other frames."""
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training.finetune import finetune

    seq, work, K = ctx["seq"], ctx["work"], ctx["seq"].schema.num_classes
    data = write_corrections(seq, frames, work / f"export-{tag}", ctx["video"])
    result = finetune(loop_config(str(data), work / f"ckpt-{tag}", len(frames), seed, **options))
    model = build_model(checkpoint=result.checkpoint)
    rest = [t for t in range(len(seq)) if t not in set(frames)]
    anchors = {f: seq.labels(f) for f in frames}
    truth = [seq.labels(t) for t in rest]
    alone, fused = predict_all(model, ctx, rest, None), predict_all(model, ctx, rest, anchors)
    tstar, fstar = int(model.config.steps), int(model.config.fusion_steps)
    variants = {"model_only": [alone.maps[t][tstar] for t in rest]}
    variants.update(flow_baselines(ctx, rest, anchors))
    variants["fused_step_0"] = [fused.maps[t][0] for t in rest]
    variants["fused_tstar"] = [fused.maps[t][fstar] for t in rest]
    per_step = {f"fused_step_{s}": scores([fused.maps[t][s] for t in rest], truth, K)
                for s in range(STEPS + 1)}  # fmt: skip
    row = {
        "k": len(frames),
        "corrected_frames": frames,
        "variants": {name: scores(p, truth, K) for name, p in variants.items()},
        "tstar": fstar,
        "per_frame_tstar": tstar,
        "fused_per_step": per_step,
        "training": [m for m in result.history if m.get("phase") in ("fusion", "tstar")],
    }
    return row, model, alone, variants


def ablation(ctx: dict, frames: list[int], seed: int, variants: dict) -> dict:
    """At one k: no side actions, no curriculum, and flow_both snapped to the edges."""
    from napari_cliprl.fusion.edges import snap_to_edges

    seq, K = ctx["seq"], ctx["seq"].schema.num_classes
    rest = [t for t in range(len(seq)) if t not in set(frames)]
    truth = [seq.labels(t) for t in rest]
    out: dict[str, Any] = {"k": len(frames)}
    out["fused_tstar"] = scores(variants["fused_tstar"], truth, K)
    snapped = [
        snap_to_edges(p, np.asarray(seq.frames[t])) for p, t in zip(variants["flow_both"], rest)
    ]
    out["flow_both_snapped"] = scores(snapped, truth, K)
    for name, options in (("no_side_actions", {"side_actions": False}),
                          ("no_curriculum", {"curriculum": False})):  # fmt: skip
        row, *_ = run_k(ctx, frames, f"{name}-k{len(frames)}", seed, **options)
        out[name] = {"tstar": row["tstar"], **row["variants"]["fused_tstar"]}
        out[f"{name}_per_step"] = row["fused_per_step"]
    return out


def pick(ctx: dict, k: int, rule: str, previous: tuple | None) -> list[int]:
    """The corrected frames of round k: even, or the shipped suggestion rule on the previous
    round's per-frame uncertainty (nested: the previous picks stay)."""
    from napari_cliprl.annotation.suggest import pick_frames

    n = len(ctx["seq"])
    if rule == "even":
        return pick_even(n, k)
    if previous is None:  # the first round: the untrained model's uncertainty
        from napari_cliprl.model.build import build_model

        untrained = build_model(ARCH, schema=ctx["seq"].schema, input_size=INPUT_SIZE)
        previous = ([], predict_all(untrained, ctx, list(range(n)), None))
    chosen, store = previous
    uncertainty = np.full(n, np.nan)
    for i, value in store.uncertainty.items():
        uncertainty[i] = value
    reviewed = np.zeros(n, bool)
    reviewed[chosen] = True
    return sorted([*chosen, *pick_frames(uncertainty, k - len(chosen), reviewed)])


def print_row(row: dict[str, Any], seconds: float) -> None:
    cells = "  ".join(f"{name} {100 * m['miou']:.1f}/{100 * m['pixels_to_change']:.2f}%"
                      for name, m in row["variants"].items())  # fmt: skip
    print(f"k={row['k']} T*={row['tstar']}  {cells}  [{seconds:.0f} s]", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="labelled sequence folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--pick", choices=("even", "uncertainty"), default="even")
    parser.add_argument("--ks", default=",".join(map(str, KS)), help="corrected-frame counts")
    parser.add_argument("--every", type=int, default=1, help="take every Nth frame")
    parser.add_argument("--ablation", type=int, default=0, help="ablations at this k (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def clip_context(data: Path, every: int, work: Path) -> dict[str, Any]:
    """Every ``every``-th frame of the labelled clip ``data`` and what each k's run shares:
    the clip as a folder of PNGs in ``work`` (the video exports refer to), its frames, their
    flows (computed once)."""
    from napari_cliprl.flow import FlowCache
    from napari_cliprl.io import read_labeled

    seq = read_labeled(data)
    seq = seq.subset(list(range(0, len(seq), every)))
    ctx = {"seq": seq, "work": work, "video": write_video(seq, work / "video")}
    ctx["frames"] = [np.asarray(seq.frames[i]) for i in range(len(seq))]
    ctx["flows"] = FlowCache(ctx["frames"])
    return ctx


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (development data only)")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = clip_context(args.data, args.every, Path(tmp))
        report: dict[str, Any] = {"arch": ARCH, "seconds": 0.0, "data": str(args.data),
                                  "every": args.every, "pick": args.pick,
                                  "frames": len(ctx["seq"]), "input_size": list(INPUT_SIZE),
                                  "results": []}  # fmt: skip
        previous = None
        for k in (int(x) for x in args.ks.split(",")):
            frames = pick(ctx, k, args.pick, previous)
            row, model, alone, variants = run_k(ctx, frames, f"k{k}", args.seed)
            report["results"].append(row)
            previous = (frames, alone)
            print_row(row, time.perf_counter() - start)
            if k == args.ablation:
                report["ablation"] = ablation(ctx, frames, args.seed, variants)
    report["seconds"] = time.perf_counter() - start
    report["fusion_config"] = dataclasses.asdict(loop_config("d", Path("o"), 1, 0).fusion)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
