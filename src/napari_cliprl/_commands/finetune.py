"""``cliprl finetune``: train a CLIP-RL checkpoint on labelled frames (also under torchrun).

``torchrun --nproc-per-node N -m napari_cliprl.cli finetune ...`` runs the same code with
DistributedDataParallel (gloo on CPU, NCCL on GPUs); rank 0 prints and writes the checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from napari_cliprl._commands import add_data_argument

NAME = "finetune"
HELP = (
    "Fine-tune a CLIP-RL model (decoder, text residual, refinement agent) on labelled frames: "
    "EndoVis 2017/2018, CholecSeg8k, or the plugin's export (reviewed frames only)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add_data_argument(parser)
    add("--out", required=True, metavar="CKPT_DIR", help="checkpoint folder to write")
    add("--from", dest="from_checkpoint", metavar="CKPT", help="start from this checkpoint")
    add(
        "--arch",
        default=None,
        help="architecture of a new model (default ViT-B-16; tiny-test for tests/demos)",
    )
    add(
        "--clip-weights",
        default=None,
        help="CLIP weights: open_clip tag, hf-hub:ORG/REPO or a local file (default openai)",
    )
    add("--schema", default=None, help="label schema name or JSON file (default: the data's)")
    add("--input-size", type=int, nargs=2, metavar=("H", "W"), help="network input size")
    add("--epochs", type=int, default=10, help="phase A (supervised) epochs (default 10)")
    add("--rl-iters", type=int, default=200, help="phase B A2C/PPO updates (default 200)")
    add(
        "--imitation-iters",
        type=int,
        default=100,
        help="phase B warm-start updates on the oracle action (default 100)",
    )
    add("--algo", choices=("a2c", "ppo"), default="a2c", help="RL algorithm (default a2c)")
    add("--max-steps", type=int, default=3, help="agent steps T at most (default 3)")
    add("--batch-size", type=int, default=4, help="frames per step and process (default 4)")
    add("--lr", type=float, default=1e-3, help="phase A learning rate (default 1e-3)")
    add("--backbone-lr", type=float, default=2e-4, help="trainable backbone lr (default 2e-4)")
    add(
        "--curriculum",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="order frames easy to hard and grow the episode length (default on)",
    )
    add(
        "--train-backbone",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also train the whole backbone (default: only for tiny-test's random backbone)",
    )
    add("--val-fraction", type=float, default=0.2, help="held-out frames for T* (default 0.2)")
    add("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    add("--seed", type=int, default=0, help="random seed (default 0)")
    add("--resume", action="store_true", help="continue the run saved in --out")
    add("--overwrite", action="store_true", help="replace an existing checkpoint in --out")
    add("--quiet", action="store_true", help="no progress bar and no per-epoch lines")


def make_config(args: argparse.Namespace):  # noqa: ANN201 - FinetuneConfig
    """The FinetuneConfig the command line describes."""
    from napari_cliprl.training.curriculum import CurriculumConfig
    from napari_cliprl.training.finetune import FinetuneConfig
    from napari_cliprl.training.rl import RLConfig
    from napari_cliprl.training.supervised import SupervisedConfig

    if args.epochs < 0 or args.rl_iters < 0 or args.imitation_iters < 0:
        raise ValueError("--epochs, --rl-iters and --imitation-iters must be >= 0")
    base = FinetuneConfig()
    return replace(
        base,
        data=[str(d) for d in args.data],
        out=str(args.out),
        from_checkpoint=args.from_checkpoint,
        arch=args.arch or base.arch,
        clip_weights=args.clip_weights,
        schema=args.schema,
        input_size=tuple(args.input_size) if args.input_size else None,
        device=args.device,
        supervised=SupervisedConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            backbone_lr=args.backbone_lr,
            train_backbone=args.train_backbone,
        ),
        rl=RLConfig(
            iterations=args.rl_iters,
            imitation_iters=args.imitation_iters,
            algo=args.algo,
            max_steps=args.max_steps,
        ),
        curriculum=CurriculumConfig(enabled=args.curriculum),
        val_fraction=args.val_fraction,
        resume=args.resume,
        overwrite=args.overwrite,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    import os

    from napari_cliprl.training.finetune import finetune, format_metrics

    config = make_config(args)
    main = int(os.environ.get("RANK", "0")) == 0
    bar = None
    if main and not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=1, desc="finetune", unit="step", file=sys.stderr)

    def progress(done: int, total: int, message: str = "") -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(message)
            bar.refresh()

    def on_metrics(metrics: dict) -> None:
        if args.quiet:
            return
        line = format_metrics(metrics)
        print(line, flush=True) if bar is None else bar.write(line)

    try:
        result = finetune(config, progress=progress, on_metrics=on_metrics)
    finally:
        if bar is not None:
            bar.close()
    if main:
        state = "stopped (resume with --resume)" if result.stopped else f"T* = {result.tstar}"
        print(f"checkpoint: {result.checkpoint}  ({state})")
    return 0
