"""What the session store costs per predicted frame, beside the model's own time, as JSON.

    OMP_NUM_THREADS=1 python benchmarks/session_writes.py --frames 40 --json out.json

The widget's Run streams every frame into a :class:`~napari_cliprl.annotation.session.Session`
(proposal chunks, session.json) and then copies the last step into ``corrected``
(``init_corrected``). This script runs the shipped loop,
:func:`~napari_cliprl.annotation.run.predict_sequence`, with the tiny-test model on the real
854 x 480 laparoscopic frames of ``--data`` (random frames of that size when it is absent):

- ``model``: into a store that keeps nothing (the model alone);
- ``end_to_end``: into a fresh Session, plus ``init_corrected`` per frame, as the widget does;
- ``store``: the proposals of the ``model`` run replayed into a fresh Session (write_prediction
  + init_corrected), without the model: the session's own cost;
- ``session_json_save``: one ``Session.save()`` (session.json) with every frame's flags.

Seconds per frame after one warm-up frame, as wall time (median) and as this process's CPU
time (all threads, mean; far less disturbed than wall time when other work shares the CPUs);
each figure is the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
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


class NullStore:
    """A label store that keeps nothing (and records what it was given, for a replay)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.written: list[tuple] = []

    def needs_prediction(self, index: int) -> bool:
        return True

    def write_prediction(self, index, zero_shot, steps, *, uncertainty=None, frame=None) -> None:
        self.written.append((index, zero_shot, steps, uncertainty))

    def seed_labels(self, index: int) -> None:
        return None

    def is_reviewed(self, index: int) -> bool:
        return False


def timed(items: Any, each: Any = None) -> tuple[float, float]:
    """(median wall seconds, mean CPU seconds of this process) per item of the iterable
    ``items`` (``each(item)`` run per item), the first (warm-up) item left out."""
    walls, cpu_start = [], None
    start = time.perf_counter()
    for item in items:
        if each is not None:
            each(item)
        now = time.perf_counter()
        walls.append(now - start)
        start = now
        if cpu_start is None:
            cpu_start = time.process_time()
    cpu = (time.process_time() - cpu_start) / max(len(walls) - 1, 1)
    return statistics.median(walls[1:] or walls), cpu


def load_frames(data: Path | None, n: int) -> np.ndarray:
    """``n`` real frames of ``data`` (a CholecSeg8k folder), else random 480 x 854 frames."""
    if data is not None and data.is_dir():
        from napari_cliprl.io.sources import open_frames

        with open_frames(data) as source:
            return np.stack([source[i % len(source)] for i in range(n)])
    return np.random.default_rng(0).integers(0, 256, (n, 480, 854, 3), dtype=np.uint8)


def measure(predictor: Any, frames: np.ndarray, steps: int, repeats: int) -> dict[str, Any]:
    """Best (wall, cpu) seconds per frame of each kind of run, and session.json save times."""
    from napari_cliprl.annotation.run import predict_sequence
    from napari_cliprl.annotation.session import Session
    from napari_cliprl.schemas import get_schema

    indices = range(len(frames))
    runs: dict[str, list[tuple[float, float]]] = {"model": [], "end_to_end": [], "store": []}
    saves = []
    with tempfile.TemporaryDirectory() as tmp:

        def session(name: str) -> Any:
            return Session.create(Path(tmp) / name, source=None, shape=frames.shape[:3],
                                  schema=get_schema("endovis2018"), steps=steps)  # fmt: skip

        for r in range(repeats):
            null = NullStore(steps)
            runs["model"].append(timed(predict_sequence(predictor, frames, indices, null)))
            s = session(f"e{r}")
            run = predict_sequence(predictor, frames, indices, s)
            runs["end_to_end"].append(timed(run, lambda done, s=s: s.init_corrected(done.index)))
            getattr(s, "close", lambda: None)()  # (sessions before 0.2 had no close)
            s = session(f"s{r}")

            def replay(item: tuple, s: Any = s) -> None:
                index, zero_shot, steps, uncertainty = item
                s.write_prediction(index, zero_shot, steps, uncertainty=uncertainty)
                s.init_corrected(index)

            runs["store"].append(timed(null.written, replay))
            for _ in range(5):
                start = time.perf_counter()
                s.save()
                saves.append(time.perf_counter() - start)
            getattr(s, "close", lambda: None)()
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in runs.items()}
    return {"best": best, "save": statistics.median(saves)}


def main(argv: list[str] | None = None) -> int:
    default_data = (
        Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cholecseg8k_seq"
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data, help="folder of frames")
    parser.add_argument("--frames", type=int, default=40, help="frames per run")
    parser.add_argument("--steps", type=int, default=3, help="refinement steps T")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind (best kept)")
    parser.add_argument("--json", help="write the figures here as well as to stdout")
    args = parser.parse_args(argv)

    import torch

    from napari_cliprl.annotation.models import ModelSpec, load_predictor

    torch.set_num_threads(1)
    frames = load_frames(args.data, args.frames)
    predictor = load_predictor(ModelSpec(arch="tiny-test", device="cpu", steps=args.steps))
    predictor.cache_size = 0
    measured = measure(predictor, frames, args.steps, args.repeats)
    best, model_cpu = measured["best"], measured["best"]["model"][1]
    result = {
        "benchmark": "session_writes",
        "frames": args.frames,
        "frame_shape": list(frames.shape[1:]),
        "real_frames": bool(args.data and args.data.is_dir()),
        "steps": args.steps,
        "seconds_per_frame": {
            k: {"wall": round(w, 4), "cpu": round(c, 4)} for k, (w, c) in best.items()
        },
        "store_cpu_fraction_of_model_cpu": round(best["store"][1] / model_cpu, 3),
        "end_to_end_cpu_overhead_fraction": round(best["end_to_end"][1] / model_cpu - 1, 3),
        "session_json_save_seconds": round(measured["save"], 5),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
