"""Propagation cost in a long video: flow throughput, and the latency from "frame marked
reviewed" to "its neighbours re-proposed" (``annotation.repropose``), as JSON.

    OMP_NUM_THREADS=1 python benchmarks/propagation_latency.py \\
        --data ../shared/data/cholecseg8k_seq --json benchmarks/results/propagation_latency.json

The video: the real clip ping-ponged (0..71, 70..1, 0..) to ``--frames`` frames (1,000 by
default; a synthetic clip at 480 x 854 where ``--data`` is absent), held in memory. A session
folder holds the label stacks and the flow cache (``flow.zarr``), as the widget's would.

- ``flow``: every consecutive pair estimated once (DIS, default FlowConfig, one thread):
  pairs per second, milliseconds per pair, disk per pair; then the whole video's flows read
  back from disk.
- ``features``: every frame predicted once on its own (filling the predictor's feature cache),
  as the widget's first run does before any review.
- ``repropose``: a tiny-test model with video fusion (untrained: timing only) re-proposes the
  neighbours of a newly reviewed frame from cached features and flows, the session storing
  every step and the ``propagated`` layer. Scenarios: ``gap_50`` (reviewed frames every 50
  frames, a new one in the middle of a gap: 49 frames), ``first_review`` (the first reviewed
  frame of the video: every other frame). Reported: seconds to the first re-proposed frame,
  to the last, and per frame (split into propagation, model and storing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FRAMES = 1000
INPUT_SIZE = (128, 224)


def ping_pong(frames: list[np.ndarray], labels: list[np.ndarray], n: int) -> tuple[list, list]:
    """``n`` frames going back and forth over the clip (no jump between consecutive frames)."""
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    picks = [order[i % len(order)] for i in range(n)]
    return [frames[i] for i in picks], [labels[i] for i in picks]


def load_video(data: Path, n: int) -> tuple[list, list, Any]:
    from napari_cliprl.io import read_labeled
    from napari_cliprl.io.sample import synthetic_clip
    from napari_cliprl.schemas import get_schema

    if data.is_dir():
        seq = read_labeled(data)
        frames = [np.asarray(seq.frames[i]) for i in range(len(seq))]
        labels = [seq.labels(i) for i in range(len(seq))]
        return (*ping_pong(frames, labels, n), seq.schema)
    clip = synthetic_clip(72, (480, 854), seed=0)
    return (*ping_pong(list(clip.frames), list(clip.labels), n), get_schema(clip.schema))


def clock(fn: Any, *args: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def flow_figures(frames: list[np.ndarray], folder: Path) -> dict[str, Any]:
    from napari_cliprl.flow import FlowCache

    cache = FlowCache(frames, folder)
    _, wall, cpu = clock(cache.compute_all)
    pairs = cache.num_pairs
    disk = sum(f.stat().st_size for f in (folder / "flow.zarr").rglob("*") if f.is_file())
    reopened = FlowCache(frames, folder, memory_mb=1.0)
    _, read_wall, _ = clock(lambda: [reopened.pair(t) for t in range(pairs)])
    return {
        "pairs": pairs,
        "working_size": list(cache.working_size),
        "pairs_per_s": pairs / wall,
        "ms_per_pair": 1000 * wall / pairs,
        "cpu_ms_per_pair": 1000 * cpu / pairs,
        "disk_mb_per_pair": disk / pairs / 1e6,
        "read_back_ms_per_pair": 1000 * read_wall / pairs,
    }


class TimedSession:
    """A Session whose writes are timed (the store's share of a re-proposal)."""

    def __init__(self, session: Any) -> None:
        self.session, self.seconds = session, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    def write_prediction(self, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        self.session.write_prediction(*args, **kwargs)
        self.seconds += time.perf_counter() - start


def repropose_figures(predictor: Any, frames: list, store: Any, index: int, flows: Any) -> dict:
    from napari_cliprl.annotation.repropose import repropose

    start, times = time.perf_counter(), []
    model_s = 0.0
    store.seconds = 0.0
    for done in repropose(predictor, frames, store, index, key="video", flows=flows):
        times.append(time.perf_counter() - start)
        model_s += done.seconds
    n = len(times)
    total = times[-1] if times else 0.0
    return {
        "reviewed": index,
        "frames": n,
        "first_frame_s": times[0] if times else None,
        "all_frames_s": total,
        "per_frame_s": total / max(1, n),
        "model_per_frame_s": model_s / max(1, n),  # network + fused label maps + edge snapping
        "store_per_frame_s": store.seconds / max(1, n),
        "propagation_per_frame_s": (total - model_s - store.seconds) / max(1, n),
    }


def scenario(name: str, session: Any, labels: list, anchors: list[int], index: int,
             ctx: dict) -> dict:  # fmt: skip
    from napari_cliprl.annotation.session import CORRECTED

    reviewed = [*anchors, index]
    for i in reviewed:
        session.array(CORRECTED)[i] = labels[i]
    session.mark_reviewed(reviewed)
    out = repropose_figures(ctx["predictor"], ctx["frames"], TimedSession(session), index,
                            ctx["flows"])  # fmt: skip
    session.mark_reviewed(reviewed, reviewed=False)
    print(f"{name}: {json.dumps(out)}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cholecseg8k_seq"))
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from napari_cliprl.annotation.session import Session
    from napari_cliprl.flow import FlowCache
    from napari_cliprl.model.build import add_fusion, build_model
    from napari_cliprl.predictor import Predictor

    torch.set_num_threads(1)
    frames, labels, schema = load_video(args.data, args.frames)
    H, W = frames[0].shape[:2]
    report: dict[str, Any] = {"data": str(args.data) if args.data.is_dir() else "synthetic",
                              "frames": len(frames), "frame_size": [H, W]}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "session"
        session = Session.create(folder, source=None, shape=(len(frames), H, W), schema=schema,
                                 steps=3)  # fmt: skip
        report["flow"] = flow_figures(frames, folder)
        print(f"flow: {json.dumps(report['flow'])}", flush=True)
        model = build_model("tiny-test", schema=schema, input_size=INPUT_SIZE)
        add_fusion(model)
        predictor = Predictor(model, cache_size=len(frames), device="cpu")
        start = time.perf_counter()
        for i, frame in enumerate(frames):  # the run before any review fills the feature cache
            predictor.predict(frame, steps=0, key=("video", i))
        report["features"] = {
            "per_frame_run_s": (time.perf_counter() - start) / len(frames),
            "frames_cached": predictor.cache_len(),
        }
        ctx = {"predictor": predictor, "frames": frames, "flows": FlowCache(frames, folder)}
        mid = len(frames) // 2
        anchors = [a for a in range(0, len(frames), 50) if a != mid - mid % 50 + 25]
        report["repropose"] = {
            "gap_50": scenario("gap_50", session, labels, anchors, mid - mid % 50 + 25, ctx),
            "first_review": scenario("first_review", session, labels, [], mid, ctx),
        }
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                         "loadavg": list(os.getloadavg())}  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
