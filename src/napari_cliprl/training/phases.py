"""The phases of ``finetune``: phase A epochs, phase B iterations, T*, checkpoints.

All ranks run every function; rank 0 alone validates (broadcasting the result), writes
checkpoints and calls the user's callbacks.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler

from napari_cliprl.training.config import config_to_dict
from napari_cliprl.training.curriculum import available_frames, curriculum_order
from napari_cliprl.training.dataset import EpochView, FrameDataset
from napari_cliprl.training.distributed import (
    all_reduce_mean,
    barrier,
    broadcast_object,
    shard,
    wrap_ddp,
)
from napari_cliprl.training.evaluate import choose_steps, validate
from napari_cliprl.training.fusion_phase import (
    choose_fused_steps,
    fused_validation,
    fusion_states,
    has_held_out,
    train_fusion_head,
)
from napari_cliprl.training.rl import AgentReplay, train_rl
from napari_cliprl.training.rl_cache import RLData, cache_decoder_outputs, with_fusion_states
from napari_cliprl.training.setup import Run, supervised_config
from napari_cliprl.training.state import Phase, save_training_checkpoint
from napari_cliprl.training.supervised import Segmenter, train_one_epoch


# -- shared helpers --
def _stop(run: Run) -> bool:
    fn = run.callbacks.should_stop
    value = bool(fn()) if (fn is not None and run.ctx.is_main) else False
    if run.ctx.distributed and fn is not None:
        value = bool(broadcast_object(value, run.ctx))
    return value


def _validate(run: Run) -> dict[str, Any]:
    """Per-step metrics on the held-out frames and the T* they imply (rank 0, broadcast)."""
    result = None
    if run.ctx.is_main:
        per_step = validate(run.model, run.val_images, run.val_labels, run.config.rl.max_steps)
        tstar = choose_steps(per_step, run.config.tstar_metric, run.config.tstar_tol)
        result = {"per_step": per_step, "tstar": tstar}
    return broadcast_object(result, run.ctx)


def _report(run: Run, metrics: dict[str, Any], done: int, message: str) -> None:
    metrics = {k: v for k, v in metrics.items() if v is not None}
    run.state.history.append(metrics)
    if not run.ctx.is_main:
        return
    if run.callbacks.on_metrics is not None:
        run.callbacks.on_metrics(dict(metrics))
    if run.callbacks.progress is not None:
        run.callbacks.progress(done, run.total_work, message)


def _val_summary(run: Run, val: dict[str, Any]) -> dict[str, float]:
    metric = run.config.tstar_metric
    return {name: m[metric] for name, m in val["per_step"].items()}


def save(run: Run, extra: dict[str, Any] | None = None) -> None:
    """Rank 0 writes the training checkpoint atomically; every rank waits for it.

    Until the run is done the checkpoint is marked unfinished: loaders refuse it.
    """
    if run.ctx.is_main:
        cfg = run.config
        info = {"finetune": config_to_dict(cfg), "history": run.state.history}
        iterations = cfg.rl.imitation_iters + cfg.rl.iterations
        save_training_checkpoint(
            run.model,
            cfg.out,
            optimizers=run.optimizers,
            state=run.state.to_dict(),
            extra={**info, **(extra or {})},
            unfinished=run.state.unfinished_note(cfg.supervised.epochs, iterations),
        )
    barrier(run.ctx)


# -- phase A --
def run_supervised(run: Run) -> None:
    """Phase A epochs from ``state.epoch``; a checkpoint after each."""
    cfg, ctx, state = run.config, run.ctx, run.state
    sup = supervised_config(cfg, run.model)
    segmenter = wrap_ddp(Segmenter(run.model), ctx)
    order = curriculum_order(np.asarray(state.difficulty))
    plan = [_epoch_frames(run, order, e) for e in range(sup.epochs)]
    sizes = [max(len(p), cfg.min_epoch_frames) for p in plan]
    total_steps = sum(math.ceil(math.ceil(n / ctx.world_size) / sup.batch_size) for n in sizes)
    for epoch in range(state.epoch, sup.epochs):
        start = time.perf_counter()
        run.train_ds.set_epoch(epoch)
        subset = EpochView(run.train_ds, plan[epoch].tolist(), cfg.min_epoch_frames)
        sampler = DistributedSampler(
            subset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed
        )
        sampler.set_epoch(epoch)
        loader = DataLoader(subset, batch_size=sup.batch_size, sampler=sampler)
        stats = train_one_epoch(
            segmenter,
            loader,
            run.optimizers["supervised"],
            run.class_weight,
            sup,
            ctx,
            step=state.step,
            total_steps=total_steps,
            should_stop=lambda: _stop(run),
        )
        if _stop(run):
            run.stopped = True
            save(run)
            return
        state.step, state.epoch = int(stats["steps"]), epoch + 1
        val = _validate(run)
        run.model.config.steps = val["tstar"]
        _report(
            run,
            {
                "phase": "supervised",
                "epoch": epoch + 1,
                "epochs": sup.epochs,
                "loss": all_reduce_mean(stats["loss"], ctx),
                "frames": len(subset),
                "metric": cfg.tstar_metric,
                "val": _val_summary(run, val),
                "tstar": val["tstar"],
                "seconds": time.perf_counter() - start,
            },
            epoch + 1,
            f"epoch {epoch + 1}/{sup.epochs}",
        )
        if epoch + 1 == sup.epochs:
            state.phase = Phase.FUSION
        save(run)


def _epoch_frames(run: Run, order: np.ndarray, epoch: int) -> np.ndarray:
    epochs = run.config.supervised.epochs
    return available_frames(order, epoch / max(1, epochs - 1), run.config.curriculum)


# -- video fusion --
def run_fusion(run: Run) -> None:
    """The fusion head on samples from the reviewed frames (``fusion_phase``); then phase B."""
    if run.fusion is not None and run.ctx.is_main:
        start = time.perf_counter()
        report = train_fusion_head(run)
        report["seconds"] = time.perf_counter() - start
        _report(run, report, run.config.supervised.epochs + 1, "fusion")
    run.state.phase = Phase.RL
    save(run)


# -- phase B --
def run_rl(run: Run) -> None:
    """Phase B iterations from ``state.rl_iter`` on cached decoder outputs."""
    cfg, ctx, state = run.config, run.ctx, run.state
    rl = cfg.rl
    total = rl.imitation_iters + rl.iterations
    if state.rl_iter < total:
        data = _rl_data(run)
        replay = wrap_ddp(AgentReplay(run.model.agent), ctx)
        base = cfg.supervised.epochs + 1

        def on_iteration(it: int, stats: dict[str, float]) -> bool:
            state.rl_iter = it + 1
            last = it + 1 == total
            stop = _stop(run)
            if (it + 1) % max(1, cfg.log_every) == 0 or last or stop:
                _report(
                    run,
                    {
                        "phase": "rl",
                        "iteration": it + 1,
                        "iterations": total,
                        "loss": all_reduce_mean(stats["loss"], ctx),
                        **_rl_stats(stats),
                    },
                    base + it + 1,
                    f"rl {it + 1}/{total}",
                )
            if (it + 1) % max(1, cfg.checkpoint_every) == 0 or last or stop:
                _checkpoint_rl(run, it + 1, last)
            return stop

        reached = train_rl(
            replay,
            run.optimizers["rl"],
            data,
            rl,
            cfg.curriculum,
            ctx,
            start=state.rl_iter,
            seed=cfg.seed,
            on_iteration=on_iteration,
        )
        if reached < total:
            run.stopped = True
            return
    state.phase = Phase.TSTAR


def _rl_stats(stats: dict[str, float]) -> dict[str, float]:
    keys = ("reward", "T", "pg_loss", "v_loss", "bc_loss", "entropy", "imitation")
    return {k: stats[k] for k in keys if k in stats}


def _checkpoint_rl(run: Run, iteration: int, last: bool) -> None:
    val = _validate(run)
    run.model.config.steps = val["tstar"]
    if last:
        run.state.phase = Phase.TSTAR
    _report(
        run,
        {
            "phase": "rl",
            "iteration": iteration,
            "iterations": run.config.rl.imitation_iters + run.config.rl.iterations,
            "metric": run.config.tstar_metric,
            "val": _val_summary(run, val),
            "tstar": val["tstar"],
        },
        run.config.supervised.epochs + 1 + iteration,
        "validation",
    )
    save(run)


def _rl_data(run: Run) -> RLData:
    """This rank's share of the training frames, decoded once per copy (1 plain + augmented)."""
    cfg, ctx = run.config, run.ctx
    mine = shard(list(range(len(run.train_ds))), ctx)
    ds = FrameDataset(
        run.train_ds.sequences,
        run.model.input_size,
        cfg.augment,
        frames=[run.train_ds.items[i] for i in mine],
        seed=cfg.seed + 1,
    )
    L0, feats, target = cache_decoder_outputs(run.model, ds, cfg.rl.augment_copies, ctx.device)
    difficulty = np.asarray(run.state.difficulty)[mine]
    order = curriculum_order(np.tile(difficulty, max(1, cfg.rl.augment_copies)))
    data = RLData(L0, feats, target, run.class_weight, order)
    fused = fusion_states(run) if run.fusion is not None else None
    return data if fused is None else with_fusion_states(data, fused, cfg.fusion.rl_share)


# -- T* --
def finish(run: Run) -> None:
    """Choose T* on the held-out frames (and T* with a context on the held-out fusion
    samples), store them, write the final checkpoint."""
    val = _validate(run)
    run.model.config.steps = val["tstar"]
    fused = _fused_tstar(run)
    run.state.phase = Phase.DONE
    metric = run.config.tstar_metric
    _report(
        run,
        {
            "phase": "tstar",
            "metric": metric,
            "val": _val_summary(run, val),
            "tstar": val["tstar"],
            "val_frames": int(run.val_images.shape[0]),
            **(
                {"fusion_val": _summary(fused, metric), "fusion_tstar": fused["tstar"]}
                if fused
                else {}
            ),
        },
        run.total_work,
        f"T* = {val['tstar']}",
    )
    save(
        run,
        extra={
            "tstar": {"steps": val["tstar"], "metric": metric, "validation": val["per_step"]},
            **({"fusion_tstar": fused} if fused else {}),
        },
    )


def _fused_tstar(run: Run) -> dict[str, Any] | None:
    """T* for frames with a propagation context, on the fusion validation samples (rank 0,
    broadcast); also stored in ``config.fusion_steps``."""
    result = None
    if run.ctx.is_main and run.fusion is not None:
        per_step = fused_validation(run, run.config.rl.max_steps)
        if per_step is not None:
            held_out = has_held_out(run)
            metric, tol = run.config.tstar_metric, run.config.tstar_tol
            tstar = choose_fused_steps(per_step, metric, tol, held_out)
            result = {"tstar": tstar, "per_step": per_step, "held_out": held_out}
    result = broadcast_object(result, run.ctx)
    if result is not None:
        run.model.config.fusion_steps = result["tstar"]
    return result


def _summary(fused: dict[str, Any], metric: str) -> dict[str, float]:
    return {name: m[metric] for name, m in fused["per_step"].items()}
