"""``cliprl evaluate``: metrics of a checkpoint on labelled frames, for every refinement step.

``--json FILE`` is checked before anything is evaluated: it must not lie inside the data or the
checkpoint, its folder must exist or be creatable, and an existing file is replaced only when
it is an evaluation report written by cliprl and ``--overwrite`` is given. The report is
written atomically.
"""

from __future__ import annotations

import argparse
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
REPORT_FORMAT = "napari-cliprl/evaluation"  # marks a JSON file as a report written here
REPORT_VERSION = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add_data_argument(parser)
    add("--checkpoint", required=True, metavar="CKPT", help="checkpoint folder")
    add("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    add(
        "--overwrite",
        action="store_true",
        help="replace an evaluation report already at --json (never any other file)",
    )
    add(
        "--steps",
        type=int,
        default=None,
        help="agent steps to evaluate (default: the steps the checkpoint was trained for)",
    )
    add("--schema", default=None, help="label schema of the data (default: the data's)")
    add(
        "--ground-truth",
        action="store_true",
        help="folders without a manifest.json are ground truth (as for cliprl finetune)",
    )
    add("--clip-weights", default=None, help="override the checkpoint's CLIP weights")
    add("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")


def trained_steps(checkpoint: str | Path) -> int:
    """Agent steps the checkpoint was trained for (T of the last curriculum stage), else T*."""
    from napari_cliprl.model.build import read_checkpoint_config

    config = read_checkpoint_config(checkpoint)
    rl = config.get("extra", {}).get("finetune", {}).get("rl", {})
    return int(rl.get("max_steps", max(int(config.get("steps", 0)), 3)))


def check_report_target(path: Path, args: argparse.Namespace) -> None:
    """Refuse a ``--json`` target before evaluating (one line naming it; see the docstring)."""
    from napari_cliprl.files import read_json
    from napari_cliprl.training.folders import check_apart, check_parent_writable

    inputs = [("--data", d) for d in args.data] + [("--checkpoint", args.checkpoint)]
    check_apart(path, "the --json report", inputs)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; --json needs a file name")
    if path.exists() or path.is_symlink():
        try:
            old = read_json(path, "evaluation report")
        except ValueError:
            old = None
        if not isinstance(old, dict) or old.get("format") != REPORT_FORMAT:
            raise ValueError(
                f"{path}: exists and is not an evaluation report written by cliprl; it is "
                "never replaced: choose another --json path"
            )
        if not args.overwrite:
            raise ValueError(f"{path}: exists; pass --overwrite to replace this report")
    check_parent_writable(path, "--json report")


def run(args: argparse.Namespace) -> int:
    from napari_cliprl.files import write_json_atomic
    from napari_cliprl.limits import check_limit
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training.dataset import open_sequences
    from napari_cliprl.training.evaluate import evaluate_model

    if args.steps is not None:
        if args.steps < 0:
            raise ValueError(f"--steps must be >= 0, got {args.steps}")
        check_limit("MAX_STEPS", args.steps, "--steps")
    if args.json is not None:
        check_report_target(args.json, args)
    sequences = open_sequences(args.data, args.schema, ground_truth=args.ground_truth)
    model = build_model(
        checkpoint=args.checkpoint,
        schema=sequences[0].schema,
        device=args.device,
        clip_weights=args.clip_weights,
    )
    steps = trained_steps(args.checkpoint) if args.steps is None else args.steps
    result = evaluate_model(model, sequences, steps=steps)
    report = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "checkpoint": str(args.checkpoint),
        "data": [str(d) for d in args.data],
        "tstar": int(model.config.steps),
        "class_names": model.schema.names,
        **result,
    }
    print_table(report)
    if args.json is not None:
        write_json_atomic(args.json, report, overwrite=True)  # checked before evaluating
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
