"""``cliprl evaluate``: metrics of a checkpoint on labelled frames, for every refinement step."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from napari_cliprl._commands import add_data_argument

NAME = "evaluate"
HELP = (
    "Evaluate a checkpoint on labelled frames: challenge IoU, IoU, mcIoU, mIoU and per-class "
    "IoU/Dice for the zero-shot map, step 0 and every agent step, plus time per frame."
)
METRICS = ("challenge_iou", "iou", "mciou", "miou")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add_data_argument(parser)
    add("--checkpoint", required=True, metavar="CKPT", help="checkpoint folder")
    add("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    add(
        "--steps",
        type=int,
        default=None,
        help="agent steps to evaluate (default: the steps the checkpoint was trained for)",
    )
    add("--schema", default=None, help="label schema of the data (default: the data's)")
    add("--clip-weights", default=None, help="override the checkpoint's CLIP weights")
    add("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")


def trained_steps(checkpoint: str | Path) -> int:
    """Agent steps the checkpoint was trained for (T of the last curriculum stage), else T*."""
    from napari_cliprl.model.build import read_checkpoint_config

    config = read_checkpoint_config(checkpoint)
    rl = config.get("extra", {}).get("finetune", {}).get("rl", {})
    return int(rl.get("max_steps", max(int(config.get("steps", 0)), 3)))


def run(args: argparse.Namespace) -> int:
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training.dataset import open_sequences
    from napari_cliprl.training.evaluate import evaluate_model

    if args.steps is not None and args.steps < 0:
        raise ValueError(f"--steps must be >= 0, got {args.steps}")
    sequences = open_sequences(args.data, args.schema)
    model = build_model(
        checkpoint=args.checkpoint,
        schema=sequences[0].schema,
        device=args.device,
        clip_weights=args.clip_weights,
    )
    steps = trained_steps(args.checkpoint) if args.steps is None else args.steps
    result = evaluate_model(model, sequences, steps=steps)
    report = {
        "checkpoint": str(args.checkpoint),
        "data": [str(d) for d in args.data],
        "tstar": int(model.config.steps),
        "class_names": model.schema.names,
        **result,
    }
    print_table(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def print_table(report: dict[str, Any]) -> None:
    names = ["zero_shot", *(f"step_{t}" for t in range(report["steps"] + 1))]
    print(
        f"{report['frames']} frames, T* = {report['tstar']}, "
        f"{1000 * report['seconds_per_frame']:.1f} ms per frame"
    )
    print(f"{'':<10}" + "".join(f"{m:>18}" for m in (*METRICS, "pixels_to_change")))
    for name in names:
        row = [report[name][m] for m in METRICS] + [report["pixels_to_change"][name]]
        mark = " *" if name == f"step_{report['tstar']}" else ""
        print(f"{name:<10}" + "".join(f"{_pct(v):>18}" for v in row) + mark)


def _pct(v: float) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"
