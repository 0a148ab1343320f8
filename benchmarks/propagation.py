"""Video propagation against per-frame prediction on a real video with ground truth, as JSON.

    OMP_NUM_THREADS=1 python benchmarks/propagation.py \\
        --data ../shared/data/cholecseg8k_seq --json benchmarks/results/propagation.json

A tiny-test model is fine-tuned on k = 4 evenly spaced "corrected" frames (their ground truth)
with exactly the recipe and budget of ``benchmarks/annotation_loop.py`` (its helpers are
imported). Then every frame is predicted in order (``Predictor``, T = 3 agent steps) in three
ways, and ``evaluate_frames`` is reported per step on the frames never corrected:

- ``per_frame``: each frame on its own (``prior=None``), what ``cliprl predict`` does;
- ``propagate``: frame t gets ``prior=`` the labels of frame t - 1 at the model's T* (its own
  propagated prediction; frame 0 has no prior), what ``cliprl predict --propagate`` does;
- ``propagate_corrected``: as ``propagate``, but a corrected frame seeds its successor with
  its ground truth (the annotation loop: corrected frames seed the frames after them).

``prior_weight`` (the logit added to the prior's class) is chosen per mode from ``--weights``
by mIoU at T* on the *first half* of the non-corrected frames (in time order); the table
reports the *second half* only, which played no part in any choice. The per-frame baseline is
reported on the same second half. A data folder that is absent is skipped (exit status 0).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

K_CORRECTED = 4
WEIGHTS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MODES = ("per_frame", "propagate", "propagate_corrected")


def _annotation_loop() -> Any:
    """benchmarks/annotation_loop.py as a module (the fine-tuning recipe is shared)."""
    path = Path(__file__).with_name("annotation_loop.py")
    spec = importlib.util.spec_from_file_location("annotation_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finetune_on(seq: Any, frames: list[int], work: Path, seed: int) -> Any:
    """annotation_loop's fine-tuning run (curriculum on, as its main table) on ``frames``."""
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training.finetune import finetune

    loop = _annotation_loop()
    data = loop.write_corrections(seq, frames, work / "export")
    config = loop.loop_config(str(data), work / "ckpt", len(frames), True, seed)
    return build_model(checkpoint=finetune(config).checkpoint)


def run_chain(
    predictor: Any,
    seq: Any,
    steps: int,
    mode: str,
    weight: float,
    corrected: set[int],
) -> list[list[np.ndarray]]:
    """Label maps [step_0 .. step_T] of every frame, predicted in time order.

    The prior of frame t (modes other than ``per_frame``) is frame t - 1's map at the model's
    T*, or its ground truth when ``mode == "propagate_corrected"`` and t - 1 was corrected.
    """
    tstar = int(predictor.model.config.steps)
    maps: list[list[np.ndarray]] = []
    prior = None
    for f in range(len(seq)):
        pred = predictor.predict(seq.frames[f], steps, key=f, prior=prior, prior_weight=weight)
        maps.append(pred.steps)
        if mode == "per_frame":
            continue
        if mode == "propagate_corrected" and f in corrected:
            prior = seq.labels(f)
        else:
            prior = pred.steps[tstar]
    return maps


def score(maps: list[list[np.ndarray]], gts: dict[int, np.ndarray], frames: list[int], K: int):
    """evaluate_frames and pixels_to_change per step on ``frames``."""
    from napari_cliprl.metrics import evaluate_frames, pixels_to_change

    out: dict[str, Any] = {}
    for t in range(len(maps[0])):
        preds = [maps[f][t] for f in frames]
        truth = [gts[f] for f in frames]
        metrics = dict(evaluate_frames(preds, truth, K))
        metrics["pixels_to_change"] = pixels_to_change(preds, truth)
        metrics["pixels_to_change_per_frame"] = [
            pixels_to_change(p, g) for p, g in zip(preds, truth)
        ]
        out[f"step_{t}"] = metrics
    return out


def sweep(predictor: Any, seq: Any, steps: int, split: dict, corrected: set[int], weights):
    """Every mode (and weight) scored on both halves; the weight chosen on ``select`` only."""
    gts = {f: seq.labels(f) for frames in split.values() for f in frames}
    K, key = seq.schema.num_classes, f"step_{int(predictor.model.config.steps)}"
    results: dict[str, Any] = {}
    for mode in MODES:
        grid = {}
        for w in [0.0] if mode == "per_frame" else weights:
            start = time.perf_counter()
            maps = run_chain(predictor, seq, steps, mode, w, corrected)
            grid[w] = {half: score(maps, gts, frames, K) for half, frames in split.items()}
            del maps
            print(
                f"{mode:<20} weight {w:>5}: select mIoU {grid[w]['select'][key]['miou']:.4f}  "
                f"report mIoU {grid[w]['report'][key]['miou']:.4f}  "
                f"[{time.perf_counter() - start:.0f} s]",
                flush=True,
            )
        best = max(grid, key=lambda w: (grid[w]["select"][key]["miou"], -w))
        results[mode] = {
            "prior_weight": best,
            **grid[best],
            "select_by_weight": {str(w): _brief(grid[w]["select"][key]) for w in grid},
            "report_by_weight_not_used_to_choose": {
                str(w): _brief(grid[w]["report"][key]) for w in grid
            },
        }
    return results


def _brief(metrics: dict[str, Any]) -> dict[str, float]:
    return {"miou": metrics["miou"], "pixels_to_change": metrics["pixels_to_change"]}


def halves(n: int, corrected: list[int]) -> dict[str, list[int]]:
    """Non-corrected frames in time order: first half selects, second half is reported.

    ``successors``: the frames right after a corrected one (a diagnostic, both halves).
    """
    rest = [f for f in range(n) if f not in set(corrected)]
    after = [c + 1 for c in corrected if c + 1 in rest]
    return {"select": rest[: len(rest) // 2], "report": rest[len(rest) // 2 :], "successors": after}


def paired(results: dict[str, Any], tstar: int) -> dict[str, Any]:
    """Report-half frames where each propagation mode needs fewer / more pixels changed."""
    key = f"step_{tstar}"
    base = np.array(results["per_frame"]["report"][key]["pixels_to_change_per_frame"])
    out = {}
    for mode in MODES[1:]:
        other = np.array(results[mode]["report"][key]["pixels_to_change_per_frame"])
        out[mode] = {
            "fewer_pixels_to_change": int((other < base).sum()),
            "more_pixels_to_change": int((other > base).sum()),
            "mean_difference": float((other - base).mean()),
        }
    return out


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="labelled sequence folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--k", type=int, default=K_CORRECTED, help="corrected frames (even)")
    parser.add_argument("--weights", default=",".join(map(str, WEIGHTS)), help="prior weights")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (development data only)")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from napari_cliprl.io import read_labeled
    from napari_cliprl.predictor import Predictor

    torch.set_num_threads(1)
    loop = _annotation_loop()
    seq = read_labeled(args.data)
    corrected = loop.pick_even(len(seq), args.k)
    split = halves(len(seq), corrected)
    weights = [float(w) for w in args.weights.split(",")]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = finetune_on(seq, corrected, Path(tmp), args.seed)
    trained = time.perf_counter() - start
    print(f"fine-tuned on frames {corrected}: T*={model.config.steps} [{trained:.0f} s]")
    predictor = Predictor(model, cache_size=len(seq) + 1, device="cpu")
    results = sweep(predictor, seq, loop.STEPS, split, set(corrected), weights)
    report = {
        "data": str(args.data),
        "frames": len(seq),
        "arch": loop.ARCH,
        "input_size": list(loop.INPUT_SIZE),
        "recipe": "benchmarks/annotation_loop.py loop_config (curriculum on), same budget",
        "corrected_frames": corrected,
        "select_frames": split["select"],
        "report_frames": split["report"],
        "successor_frames": split["successors"],
        "steps": loop.STEPS,
        "tstar": int(model.config.steps),
        "weights_tried": weights,
        "results": results,
        "paired_report_frames": paired(results, int(model.config.steps)),
        "seconds_finetune": trained,
        "seconds": time.perf_counter() - start,
        "machine": machine(),
    }
    _print_table(report)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _print_table(report: dict[str, Any]) -> None:
    t = report["tstar"]
    print(f"report half ({len(report['report_frames'])} frames), T*={t}:")
    for mode, r in report["results"].items():
        steps = "  ".join(f"{n} {m['miou']:.4f}" for n, m in r["report"].items())
        px = r["report"][f"step_{t}"]["pixels_to_change"]
        after = r["successors"][f"step_{t}"]["miou"]
        print(
            f"  {mode:<20} w={r['prior_weight']:<5} mIoU: {steps}  pixels to change {px:.4f}"
            f"  (successors of corrected frames: mIoU {after:.4f})"
        )
    print(f"paired, report half: {report['paired_report_frames']}")


if __name__ == "__main__":
    sys.exit(main())
