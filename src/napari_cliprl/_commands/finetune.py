"""``cliprl finetune``: train a CLIP-RL checkpoint on labelled frames (also under torchrun).

``torchrun --nproc-per-node N -m napari_cliprl.cli finetune ...`` runs the same code with
DistributedDataParallel (gloo on CPU, NCCL on GPUs); rank 0 prints and writes the checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from napari_cliprl.training.cli_options import add_config_arguments, config_from_args
from napari_cliprl.training.config import FinetuneConfig

NAME = "finetune"
HELP = (
    "Fine-tune a CLIP-RL model (decoder, text residual, refinement agent) on labelled frames: "
    "EndoVis 2017/2018, CholecSeg8k, or the plugin's export (reviewed frames only)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per FinetuneConfig field (training.cli_options), plus ``--quiet``."""
    add_config_arguments(parser, FinetuneConfig)
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar and no per-epoch lines"
    )


def make_config(args: argparse.Namespace) -> FinetuneConfig:
    """The FinetuneConfig the command line describes (validated: ConfigError names the flag)."""
    return config_from_args(args, FinetuneConfig)


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
