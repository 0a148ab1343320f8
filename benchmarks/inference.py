"""Inference benchmark: per-frame CPU latency of CLIP-RL, split by stage, as JSON.

    python benchmarks/inference.py --arch ViT-B-16 --json inference.json

Random weights are fine: the cost is the architecture's.  ``whole_frame_s`` and
``plain_clip_visual_s`` start from the same preprocessed B x 3 x h x w tensor;
``preprocess_s`` (resize of a 1024 x 1280 frame + normalisation) and ``predict_frame_s``
(``Predictor.predict`` end to end, every step's label map at 1024 x 1280) are reported apart.
Each input size runs in its own subprocess (clean peak RSS).  Every figure is a median over
``--repeats`` rounds after a warm-up round; other processes may share the cores, so
``os.getloadavg()`` is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

FRAME_SIZE = (1024, 1280)  # EndoVis 2018 frames (H, W)
DEFAULT_SIZES = "128x160,192x240,224x288,256x320,448x560"


def _frame(seed: int = 0):
    import numpy as np

    from napari_cliprl.io.sample import synthetic_clip

    clip = synthetic_clip(n_frames=1, size=(256, 320), seed=seed)
    return np.ascontiguousarray(clip.frames[0].repeat(4, axis=0).repeat(4, axis=1))


def measure_size(arch: str, size: tuple[int, int], steps: int, repeats: int) -> dict:
    """Every per-stage figure for one input size (run inside a fresh process).

    The stages are timed interleaved, once each per round, so that a change in the load from
    other processes hits all of them alike; ratios are medians of per-round ratios.
    """
    import torch

    from napari_cliprl.model import build_model
    from napari_cliprl.predictor import Predictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(arch, input_size=size, device="cpu")
    frame = _frame()
    images = torch.from_numpy(frame)[None]
    predictor = Predictor(model, cache_size=4, device="cpu")
    agent = model.agent
    with torch.no_grad():
        x = model.preprocess(images)
        features = model.encode(x)
        _, L0, pixel = model.decode(features)

    def steps_timed() -> list[float]:
        out, hidden, current = [], agent.initial_hidden(pixel), L0
        for t in range(steps):
            start = time.perf_counter()
            state = agent.build_state(pixel, current, L0, t, steps)
            logits, _, hidden = agent.act(state, hidden)
            current = agent.transition(current, logits.argmax(1))
            out.append(time.perf_counter() - start)
        return out

    stages: dict[str, Callable[[], object]] = {
        "plain_clip_visual_s": lambda: model.backbone.visual(x),
        "whole_frame_s": lambda: model(x, steps=steps),
        "preprocess_s": lambda: model.preprocess(images),
        "backbone_s": lambda: model.encode(x),
        "decoder_s": lambda: model.decode(features),
        "refine_from_cache_s": lambda: model.refine(*model.decode(features)[1:], steps),
        "predict_frame_s": lambda: predictor.predict(frame, steps=steps, key=time.time()).steps,
        "predict_cached_s": lambda: predictor.predict(frame, steps=steps, key="same").steps,
    }
    result = _run_rounds(stages, steps_timed, repeats)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _run_rounds(
    stages: dict[str, Callable[[], object]],
    steps_timed: Callable[[], list[float]],
    repeats: int,
) -> dict[str, object]:
    """Time every stage once per round (round 0 = warm-up); medians and per-round ratios."""
    import torch

    rounds: list[dict[str, float]] = []
    step_rounds = []
    with torch.no_grad():
        for r in range(repeats + 1):
            times = {name: _once(fn) for name, fn in stages.items()}
            step_times = steps_timed()
            if r:
                rounds.append(times)
                step_rounds.append(step_times)
    result: dict[str, object] = {
        name: statistics.median(t[name] for t in rounds) for name in stages
    }
    steps = len(step_rounds[0])
    result["agent_step_s"] = [statistics.median(s[t] for s in step_rounds) for t in range(steps)]
    result["whole_over_plain"] = statistics.median(
        t["whole_frame_s"] / t["plain_clip_visual_s"] for t in rounds
    )
    result["refine_over_whole"] = statistics.median(
        t["refine_from_cache_s"] / t["whole_frame_s"] for t in rounds
    )
    return result


def _once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _write_video(path: Path, n: int) -> Path:
    from napari_cliprl.io.video import write_video

    frame = _frame()
    write_video(path, (_frame(seed=k % 3) if k % 4 == 0 else frame for k in range(n)))
    return path


def measure_predict_video(arch: str, frames: int, steps: int) -> dict:
    """`cliprl predict` on videos of n and 2n frames: fps = n / (t(2n) - t(n))."""
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (frames, 2 * frames):
            video = _write_video(Path(tmp) / f"clip{n}.mp4", n)
            cmd = [sys.executable, "-m", "napari_cliprl.cli", "predict", str(video), "--out",
                   str(Path(tmp) / f"out{n}"), "--arch", arch, "--device", "cpu",
                   "--steps", str(steps), "--quiet"]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(cmd, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            times[n] = time.perf_counter() - start
    per_frame = (times[2 * frames] - times[frames]) / frames
    return {
        "predict_video_fps": 1.0 / per_frame,
        "predict_video_frames": [frames, 2 * frames],
        "predict_video_wall_s": [times[frames], times[2 * frames]],
        "predict_video_startup_s": times[frames] - frames * per_frame,
    }


def _parse_size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ViT-B-16")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="input sizes HxW, comma-separated")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--video-frames", type=int, default=6)
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's; 1 on a shared machine)"
    )
    parser.add_argument("--one-size", help=argparse.SUPPRESS)  # internal: child process
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # children and `cliprl predict`
    if args.one_size:
        figures = measure_size(args.arch, _parse_size(args.one_size), args.steps, args.repeats)
        print(json.dumps(figures))
        return 0
    import torch

    from napari_cliprl.model.build import get_architecture

    default = get_architecture(args.arch).cpu_input_size
    report = {
        "arch": args.arch,
        "default_cpu_size": list(default),
        "frame_size": list(FRAME_SIZE),
        "steps": args.steps,
        "repeats": args.repeats,
        "machine": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "loadavg_before": list(os.getloadavg()),
        "sizes": {},
    }
    for text in args.sizes.split(","):
        cmd = [sys.executable, __file__, "--arch", args.arch, "--one-size", text,
               "--steps", str(args.steps), "--repeats", str(args.repeats)]  # fmt: skip
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        report["sizes"][text] = json.loads(out.strip().splitlines()[-1])
        report["sizes"][text]["loadavg_after"] = list(os.getloadavg())
        print(text, json.dumps(report["sizes"][text]), file=sys.stderr)
    if args.video_frames > 0:
        report.update(measure_predict_video(args.arch, args.video_frames, args.steps))
    report["loadavg_after"] = list(os.getloadavg())
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
