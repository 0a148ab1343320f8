"""Optical flow and label propagation (DESIGN 2.11) on a real video with ground truth, as JSON.

    OMP_NUM_THREADS=1 python benchmarks/flow.py \\
        --data ../shared/data/cholecseg8k_seq --json benchmarks/results/flow.json

- ``dis``: one DIS estimation (one direction) per preset at the frame size and at the
  default working size, one OpenCV thread; median over ``--repeats`` rounds, presets
  interleaved within a round so that load from other processes hits them alike.
- ``video_cost``: flow for a whole video per frame (one pair: both directions, grey conversion
  included) against the model's inference per frame: ViT-B-16 from
  benchmarks/results/inference-ViT-B-16-cpu.json, tiny-test timed here; also reading a cached
  pair from disk and propagating one frame from cached flows (the widget's re-proposal).
- ``settings``: each DIS preset x working size (``--settings``): time per pair and accuracy of
  flow_nearest / flow_both; the default ``FlowConfig`` was chosen from this table.
- ``accuracy``: for k = 1, 2, 4, 8 evenly spaced anchors (annotation_loop's ``pick_even``) on
  the clip and on every 2nd / 4th frame of it (``--every``), metrics on every never-anchored
  frame at full size: ``copy_nearest`` (the nearest anchor as is, no motion), ``flow_nearest``
  (the nearest anchor carried by flow; ties -> earlier) and ``flow_both`` (per pixel the side
  with the higher confidence). Pixels a method leaves unknown (255: the source left the frame)
  take the copied nearest anchor's label there, then background (0); ``unknown`` reports
  their fraction.

A data folder that is absent is skipped with a message (exit status 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

KS = (1, 2, 4, 8)
EVERY = (1, 2, 4)
PRESETS = ("ultrafast", "fast", "medium")
SETTINGS = ",".join(f"{p}@{s}" for s in (0, 640, 427, 320) for p in PRESETS)
INFERENCE_JSON = Path(__file__).with_name("results") / "inference-ViT-B-16-cpu.json"
IGNORE = 255


def pick_even(n: int, k: int) -> list[int]:
    """k evenly spaced frame positions of n (benchmarks/annotation_loop.py's rule)."""
    return sorted({int((i + 0.5) * n / k) for i in range(k)}) if k else []


def _clock(fn: Any, *args: Any) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn(*args)``: CPU time of this process, robust to other
    processes competing for the cores (the work here is single-threaded)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def _medians(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Median wall and CPU milliseconds of ``_clock`` samples."""
    return {
        "ms": 1000 * statistics.median(s[0] for s in samples),
        "cpu_ms": 1000 * statistics.median(s[1] for s in samples),
    }


# -- timing ------------------------------------------------------------------------------
def time_dis(frames: list[np.ndarray], sizes: list[tuple[int, int]], repeats: int) -> dict:
    """One DIS estimation (one direction, one thread) per size and preset, interleaved."""
    from napari_cliprl.flow.dense import FlowConfig, estimate_flow, to_grey

    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    greys = {size: [to_grey(f, size) for f in frames[:2]] for size in sizes}
    for round_ in range(repeats + 1):  # round 0 warms up
        for size in sizes:
            for preset in PRESETS:
                took = _clock(estimate_flow, *greys[size], FlowConfig(preset=preset))
                if round_:
                    samples.setdefault((f"{size[1]}x{size[0]}", preset), []).append(took)
    out: dict[str, dict[str, Any]] = {}
    for (size, preset), values in samples.items():
        out.setdefault(size, {})[preset] = _medians(values)
    return out


def time_settings(frames: list[np.ndarray], settings: list[str], repeats: int) -> dict:
    """Memory caches per ``preset@max_side`` and the time of their first ``repeats`` pairs
    (grey conversion + both directions + storage rounding), settings interleaved."""
    from napari_cliprl.flow import FlowCache, FlowConfig

    caches = {}
    for setting in settings:
        preset, max_side = setting.split("@")
        config = FlowConfig(preset=preset, max_side=int(max_side))
        caches[setting] = FlowCache(frames, None, config, memory_mb=1e6)
    samples: dict[str, list[tuple[float, float]]] = {s: [] for s in settings}
    for t in range(min(repeats, len(frames) - 1)):
        for setting, cache in caches.items():
            samples[setting].append(_clock(cache.pair, t))
    return {s: (caches[s], _medians(samples[s])) for s in settings}


def time_tiny_test(frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Predictor.predict (tiny-test, CPU, one thread, no feature cache) on ``frame``."""
    import torch

    from napari_cliprl.model.build import build_model
    from napari_cliprl.predictor import Predictor

    torch.set_num_threads(1)
    predictor = Predictor(build_model("tiny-test", device="cpu"), cache_size=0, device="cpu")
    samples = [_clock(predictor.predict, frame) for _ in range(repeats + 1)]
    return _medians(samples[1:])


def time_cache(frames: list[np.ndarray], config: Any, repeats: int) -> dict[str, Any]:
    """Per pair: estimated (and written to disk), read back from disk, disk use; per frame:
    propagating a gap between two anchors from the disk cache."""
    from napari_cliprl.flow import FlowCache, propagate

    n = min(len(frames), repeats + 2)
    with tempfile.TemporaryDirectory() as tmp:
        cache = FlowCache(frames[:n], tmp, config)
        estimate = [_clock(cache.pair, t) for t in range(n - 1)]
        stored = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        reopened = FlowCache(frames[:n], tmp, config)
        read = [_clock(reopened.pair, t) for t in range(n - 1)]
        shape = frames[0].shape[:2]
        anchors = {0: np.zeros(shape, np.uint8), n - 1: np.ones(shape, np.uint8)}
        wall, cpu = _clock(propagate, anchors, range(1, n - 1), reopened)
    return {
        "pair_estimate": _medians(estimate),
        "pair_read_from_disk": _medians(read),
        "disk_mb_per_pair": stored / (n - 1) / 1e6,
        "propagate_frame": {"ms": 1000 * wall / (n - 2), "cpu_ms": 1000 * cpu / (n - 2)},
    }


def video_cost(frames: list[np.ndarray], config: Any, repeats: int) -> dict[str, Any]:
    """Flow per frame of a video (one pair) against the model's inference per frame."""
    out = time_cache(frames, config, repeats)
    pair = out["pair_estimate"]
    if INFERENCE_JSON.is_file():
        vit = json.loads(INFERENCE_JSON.read_text())
        size = "x".join(map(str, vit["default_cpu_size"]))
        vit_ms = 1000 * vit["sizes"][size]["whole_frame_s"]
        out["vit_b16"] = {"input_size": size, "ms": vit_ms, "source": INFERENCE_JSON.name}
        out["flow_over_vit_b16"] = {k: pair[k] / vit_ms for k in ("ms", "cpu_ms")}
    out["tiny_test"] = tiny = time_tiny_test(frames[0], repeats)
    out["flow_over_tiny_test"] = {k: pair[k] / tiny[k] for k in ("ms", "cpu_ms")}
    return out


# -- accuracy ----------------------------------------------------------------------------
def nearest_anchor(anchors: list[int], t: int) -> int:
    return min(anchors, key=lambda a: (abs(a - t), a))


def fill_unknown(labels: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``labels`` with 255 replaced by ``fallback``'s label there, then by background 0."""
    out = np.where(labels == IGNORE, fallback, labels)
    out[out == IGNORE] = 0
    return out


def score_k(frames: list, gts: list, K: int, cache: Any, k: int, prop: Any) -> dict[str, Any]:
    """copy_nearest / flow_nearest / flow_both on every frame that is not one of k anchors."""
    from napari_cliprl.flow import flow_both, flow_nearest, propagate
    from napari_cliprl.metrics import evaluate_frames, pixels_to_change

    anchors = pick_even(len(frames), k)
    rest = [t for t in range(len(frames)) if t not in anchors]
    start = time.perf_counter()
    result = propagate({a: gts[a] for a in anchors}, rest, cache, prop)
    seconds = (time.perf_counter() - start) / len(rest)
    truth = [gts[t] for t in rest]
    copies = [gts[nearest_anchor(anchors, t)] for t in rest]
    methods = {
        "copy_nearest": copies,
        "flow_nearest": [flow_nearest(result[t]) for t in rest],
        "flow_both": [flow_both(result[t]) for t in rest],
    }
    out: dict[str, Any] = {"anchors": anchors, "frames": len(rest), "propagate_frame_s": seconds}
    for name, preds in methods.items():
        unknown = float(np.mean([np.mean(p == IGNORE) for p in preds]))
        preds = [fill_unknown(p, c) for p, c in zip(preds, copies)]
        m = evaluate_frames(preds, truth, K)
        out[name] = {
            "miou": m["miou"],
            "challenge_iou": m["challenge_iou"],
            "pixels_to_change": pixels_to_change(preds, truth),
            "unknown": unknown,
        }
    return out


def accuracy(frames: list, gts: list, K: int, config: Any, ks: list[int], prop: Any) -> dict:
    from napari_cliprl.flow import FlowCache

    cache = FlowCache(frames, None, config, memory_mb=1e6)
    return {f"k_{k}": score_k(frames, gts, K, cache, k, prop) for k in ks}


def sweep(
    frames: list, gts: list, K: int, settings: list[str], ks: list[int], repeats: int, prop: Any
) -> list[dict[str, Any]]:
    """Time per pair (interleaved) and flow accuracy of each ``preset@max_side`` setting."""
    timed, rows = time_settings(frames, settings, repeats), []
    for setting in settings:
        cache, timing = timed.pop(setting)  # dropped after its row: one setting's flows at a time
        row: dict[str, Any] = {
            "preset": cache.config.preset,
            "max_side": cache.config.max_side,
            "working_size": list(cache.working_size),
            "pair": timing,
        }
        for k in ks:
            r = score_k(frames, gts, K, cache, k, prop)
            row[f"k_{k}"] = {m: r[m] for m in ("flow_nearest", "flow_both")}
        rows.append(row)
        _print_setting(row, ks)
    return rows


# -- report ------------------------------------------------------------------------------
def _print_setting(row: dict[str, Any], ks: list[int]) -> None:
    cells = "  ".join(
        f"k={k} {100 * row[f'k_{k}']['flow_nearest']['miou']:.1f}/"
        f"{100 * row[f'k_{k}']['flow_nearest']['pixels_to_change']:.2f}%"
        for k in ks
    )
    size = "x".join(map(str, row["working_size"][::-1]))
    ms = f"{row['pair']['ms']:6.1f} ms ({row['pair']['cpu_ms']:5.1f} CPU)"
    print(f"{row['preset']:>9} {size:>8} pair {ms}  nearest {cells}", flush=True)


def _print_accuracy(table: dict[str, Any]) -> None:
    print("accuracy (mIoU / challenge IoU / pixels to change, never-anchored frames):")
    for every, by_k in table.items():
        for k, r in by_k.items():
            cells = "  ".join(
                f"{m} {100 * r[m]['miou']:.1f}/{100 * r[m]['challenge_iou']:.1f}/"
                f"{100 * r[m]['pixels_to_change']:.2f}%"
                for m in ("copy_nearest", "flow_nearest", "flow_both")
            )
            print(f"  {every:<8} {k:<4} {cells}", flush=True)


def machine() -> dict[str, Any]:
    import cv2

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "python": platform.python_version(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="labelled sequence folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--repeats", type=int, default=15, help="timing rounds (median)")
    parser.add_argument("--ks", default=",".join(map(str, KS)), help="anchor counts")
    parser.add_argument("--every", default=",".join(map(str, EVERY)), help="frame strides")
    parser.add_argument("--settings", default=SETTINGS, help="preset@max_side list to sweep")
    parser.add_argument("--no-sweep", action="store_true", help="skip the settings sweep")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (development data only)")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from napari_cliprl.flow import FlowConfig, PropagationConfig
    from napari_cliprl.flow.dense import working_size
    from napari_cliprl.io import read_labeled

    start, load = time.perf_counter(), os.getloadavg()
    seq = read_labeled(args.data)
    frames = [np.asarray(seq.frames[i]) for i in range(len(seq))]
    gts = [seq.labels(i) for i in range(len(seq))]
    K, ks = seq.schema.num_classes, [int(k) for k in args.ks.split(",")]
    config, prop = FlowConfig(), PropagationConfig()
    full = frames[0].shape[:2]
    work = working_size(full, config.max_side)
    report: dict[str, Any] = {
        "data": str(args.data),
        "frames": len(frames),
        "frame_size": list(full),
        "default": {"preset": config.preset, "max_side": config.max_side},
        "working_size": list(work),
        "propagation": dataclasses.asdict(prop),
        "repeats": args.repeats,
    }
    report["dis"] = time_dis(frames, sorted({full, work}, reverse=True), args.repeats)
    print(f"DIS per direction: {json.dumps(report['dis'])}", flush=True)
    report["video_cost"] = video_cost(frames, config, args.repeats)
    print(f"video cost: {json.dumps(report['video_cost'])}", flush=True)
    if not args.no_sweep:
        report["settings"] = sweep(frames, gts, K, args.settings.split(","), ks, args.repeats, prop)
    report["accuracy"] = {
        f"every_{e}": accuracy(frames[::e], gts[::e], K, config, ks, prop)
        for e in (int(x) for x in args.every.split(","))
    }
    _print_accuracy(report["accuracy"])
    report.update(seconds=time.perf_counter() - start, machine=machine())
    report["loadavg_before_after"] = [list(load), list(os.getloadavg())]
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
