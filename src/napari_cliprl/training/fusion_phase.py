"""The video-fusion phase of ``finetune`` (after phase A): samples, held-out decoder outputs,
the fusion head, and what phase B and T* need from them.

1. The reviewed frames of each training sequence whose video can be read (an export's
   manifest source, or ``FusionConfig.video``) become fusion samples
   (:mod:`napari_cliprl.fusion.samples`): each reviewed frame seen through labels propagated
   from the *other* reviewed frames (pairs both ways, both sides, round trips).
2. Each sample's target frame is decoded by a decoder that never saw it: cross-fitted fold
   decoders for the training frames (:mod:`fusion_heldout`), the fine-tuned decoder for the
   held-out validation frames.
3. The fusion head trains on the training frames' samples (:mod:`fusion_fit`, early stop on the
   validation frames' samples); its step 0 then seeds phase B's fusion episodes.
4. T* with a context (``config.fusion_steps``) is chosen on the validation samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from napari_cliprl.flow import FlowCache
from napari_cliprl.fusion.edges import snap_to_edges
from napari_cliprl.fusion.grid import fused_labels
from napari_cliprl.fusion.samples import FusionSample, SampleConfig, fusion_samples
from napari_cliprl.metrics import evaluate_frames, pixels_to_change
from napari_cliprl.steps import step_key
from napari_cliprl.training.dataset import all_frames, changed_mask, split_frames
from napari_cliprl.training.fusion_data import FusionData, build_fusion_data
from napari_cliprl.training.fusion_fit import HeadSchedule, fit_head
from napari_cliprl.training.fusion_heldout import Outputs, decoder_outputs, heldout_outputs
from napari_cliprl.training.fusion_source import FusionRun, fusion_videos, sequence_video

__all__ = [
    "FusionRun",
    "choose_fused_steps",
    "has_held_out",
    "fused_validation",
    "fusion_states",
    "fusion_videos",
    "prepare_fusion",
    "sequence_video",
    "train_fusion_head",
]

Key = tuple[int, int]  # (training sequence, frame index in its video)
MAX_VIEWS = 32  # validation samples kept at full size (a few MB each)


def _items(run: Any) -> tuple[list[Key], list[Key]]:
    """(training, validation) frames as (sequence, video index); validation frames are the
    training frames when nothing was held out."""
    seqs = run.train_ds.sequences
    train, val = split_frames(all_frames(seqs), run.config.val_fraction)
    keys = [[(s, seqs[s].indices[f]) for s, f in part] for part in (train, val)]
    return keys[0], keys[1]


def _samples(run: Any, s: int) -> Iterator[FusionSample]:
    """Fusion samples of training sequence ``s`` (all its reviewed frames are anchors)."""
    cfg = run.config.fusion
    seq, video = run.train_ds.sequences[s], run.fusion.videos[s]
    rounds = tuple(2**j for j in range(32) if 2**j <= cfg.round_trip_max)
    sample_config = SampleConfig(cfg.max_gap, cfg.neighbours, rounds, cfg.round_trips_when)
    anchors = {seq.indices[f]: seq.labels(f) for f in range(len(seq))}
    folder = cfg.flow_cache if len(run.train_ds.sequences) == 1 else None
    yield from fusion_samples(anchors, FlowCache(video, folder), sample_config)


def _outputs(run: Any, train: list[Key], val: list[Key]) -> dict[Key, tuple]:
    """Decoder outputs per frame from decoders that never saw it (module doc, step 2)."""
    from napari_cliprl.training.setup import build_for_training, supervised_config
    from napari_cliprl.training.supervised import mark_trainable

    cfg, ds = run.config, run.train_ds
    sup = supervised_config(cfg, run.model)
    start = build_for_training(cfg, run.model.schema, run.ctx.device)
    mark_trainable(start, sup)
    per_epoch = -(-max(len(ds), cfg.min_epoch_frames) // sup.batch_size)
    steps = round(cfg.fusion.heldout_fraction * sup.epochs * per_epoch)
    held: Outputs = heldout_outputs(start, ds, sup, steps, run.ctx.device, seed=cfg.seed)
    keys = [(s, ds.sequences[s].indices[f]) for s, f in ds.items]
    out = {keys[p]: v for p, v in held.items()}
    fresh = [k for k in val if k not in set(train)]
    if fresh:
        L, F = decoder_outputs(run.model, run.val_images)
        val_all = _items(run)[1]
        out.update({k: (L[j], F[j]) for j, k in enumerate(val_all) if k in fresh})
    return out


def prepare_fusion(run: Any) -> None:
    """Build ``run.fusion.train`` / ``.val`` (once per process; a no-op without videos)."""
    if run.fusion is None or run.fusion.train is not None:
        return
    usable = [s for s, v in enumerate(run.fusion.videos) if v is not None and len(v) >= 2]
    if not usable:
        return
    train_keys, val_keys = _items(run)
    outputs = _outputs(run, train_keys, val_keys)
    parts: dict[str, list[FusionData]] = {"train": [], "val": []}
    for s in usable:
        seq = run.train_ds.sequences[s]
        where = {seq.indices[f]: f for f in range(len(seq))}
        targets = {i: seq.labels(f) for i, f in where.items()}
        changed = {i: m for i, f in where.items() if (m := changed_mask(seq, f)) is not None}
        held = {i: outputs[(s, i)] for i in where if (s, i) in outputs}
        for sample in _samples(run, s):  # one at a time: a sample's full-size maps are large
            if sample.index not in held:
                continue
            data = build_fusion_data(
                [sample],
                held,
                targets,
                num_classes=run.model.num_classes,
                changed=changed,
                changed_weight=run.config.changed_weight,
            )
            key = (s, sample.index)
            for part, keys in (("train", train_keys), ("val", val_keys)):
                if key in keys and (part == "train" or len(parts["val"]) < MAX_VIEWS):
                    parts[part].append(data)
            if key in val_keys and len(run.fusion.views) < MAX_VIEWS:
                frame = np.asarray(run.fusion.videos[s][sample.index])
                run.fusion.views.append((sample, frame, targets[sample.index]))
    run.fusion.train = _concat(parts["train"])
    run.fusion.val = _concat(parts["val"])


def _concat(parts: list[FusionData]) -> FusionData | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    names = [f for f in FusionData.__dataclass_fields__ if f not in ("index", "kind")]
    tensors = {n: torch.cat([getattr(p, n) for p in parts]) for n in names}
    return FusionData(
        **tensors,
        index=[i for p in parts for i in p.index],
        kind=[k for p in parts for k in p.kind],
    )


def train_fusion_head(run: Any) -> dict[str, Any]:
    """Train the model's fusion head on the training samples; the report of the phase."""
    prepare_fusion(run)
    data, cfg = run.fusion.train, run.config.fusion
    if data is None or run.model.fusion_head is None:
        return {"phase": "fusion", "samples": 0, "note": "; ".join(run.fusion.notes)}
    iterations = min(cfg.head_iterations, cfg.iterations_per_sample * len(data))
    schedule = HeadSchedule(
        iterations=iterations,
        learning_rate=cfg.learning_rate,
        anchor_decay=cfg.anchor_decay,
        seed=run.config.seed,
    )
    held_out = run.fusion.val if has_held_out(run) else None
    decision = fit_head(
        run.model.fusion_head,
        data,
        run.class_weight,
        schedule,
        val=held_out,
        curriculum=run.config.curriculum,
    )
    return {
        "phase": "fusion",
        "samples": len(data),
        "val_samples": 0 if held_out is None else len(held_out),
        "iterations": iterations,
        **decision,
    }


def has_held_out(run: Any) -> bool:
    """Whether the validation frames are frames the fine-tune did not train on."""
    train, val = _items(run)
    return bool(val) and not set(val) & set(train)


@torch.no_grad()
def fusion_states(run: Any) -> dict[str, torch.Tensor] | None:
    """Phase B's fusion episodes: step 0 of every training sample (the trained head's L0 and
    gains), its features, context, grid target and gap; None without samples."""
    prepare_fusion(run)
    data = run.fusion.train if run.fusion is not None else None
    head = run.model.fusion_head
    if data is None or head is None:
        return None
    head.eval()
    L0, gains = head(data.logits, data.context)
    return {
        "L0": L0,
        "gains": gains,
        "features": data.features,
        "context": data.context,
        "target": data.grid_target,
        "gap": data.gap,
    }


@torch.no_grad()
def fused_validation(run: Any, steps: int) -> dict[str, dict[str, Any]] | None:
    """Per step (``step_0`` .. ``step_T``): ``evaluate_frames`` metrics and pixels to change of
    the fused full-size maps (edge snapping included: what a user is shown) of the validation
    samples (the training samples when no frame was held out); None without samples."""
    data, views, model = run.fusion.val, run.fusion.views, run.model
    if data is None or not views or model.fusion_head is None:
        return None
    model.eval()
    L0, G0 = model.fusion_head(data.logits, data.context)
    episode = model.episode(L0, data.features, steps, gains=G0, context=data.context)
    states = [(L0, G0), *((s.next_raw, s.next_gains) for s in episode)]
    radius, eps = model.config.snap_radius, model.config.snap_eps
    truth = [target for _, _, target in views]
    out = {}
    for t, (L, G) in enumerate(states):
        preds = []
        for i, (sample, frame, _) in enumerate(views):
            labels = fused_labels(L[i], G[i], sample.context)
            preds.append(snap_to_edges(labels, frame, radius, eps) if radius else labels)
        metrics: dict[str, Any] = dict(evaluate_frames(preds, truth, model.num_classes))
        metrics["pixels_to_change"] = pixels_to_change(preds, truth)
        out[step_key(t)] = metrics
    return out


def choose_fused_steps(
    per_step: dict[str, dict[str, Any]], metric: str, tol: float, held_out: bool = True
) -> int:
    """T* with a context: the step with the best ``metric`` among those that beat step 0 by
    more than ``tol`` *and* leave no more pixels to change than step 0; else 0.

    Without ``held_out`` frames the steps were scored on the frames the agent was trained on,
    which cannot vouch for them (measured: at k = 2 corrected frames step 1 won there and lost
    8 mIoU on the other frames of the every-2nd-frame clip): then 0.
    """
    if not held_out:
        return 0
    base = per_step[step_key(0)]
    best_t, best = 0, base[metric]
    t = 1
    while step_key(t) in per_step:
        m = per_step[step_key(t)]
        better = m[metric] > base[metric] + tol and m[metric] > best
        if better and m["pixels_to_change"] <= base["pixels_to_change"]:
            best_t, best = t, m[metric]
        t += 1
    return best_t
