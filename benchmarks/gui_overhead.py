"""The annotator GUI's own cost per predicted frame, against the same loop without it, as JSON.

    PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 \\
        xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_overhead.py \\
        --repeat 3 --fallback-method --json benchmarks/results/gui_overhead.json

One synthetic video (``io.write_video`` of ``sample.synthetic_clip``), all frames, the model
the dock offers by default on the CPU, every phase in a fresh process:

- ``core``: a ``Predictor`` built as the dock's run builds it (``annotate.PredictorCache``)
  over the frames decoded as the reader decodes them (``LazyFrames``): decode + predict, with
  every label map the session stores (zero-shot, step 0..T) -> **model time per frame**;
- ``session``: the same predictor writing into a ``Session`` through
  ``annotate.predict_into_session`` (the core run), plus ``Session.init_corrected`` (which the
  widget calls per frame) -> **session-write time per frame**: the time per frame beyond the
  model's own timer (``FrameDone.seconds``), less the zero-shot label map that is computed
  after that timer stops (taken from ``core``); ``no_gui_s_per_frame`` is the whole loop
  plus ``init_corrected``, what a Run costs without drawing anything;
- ``gui``: napari under Xvfb, the dock configured through its own controls (device cpu,
  ``--steps``, "all frames"), Run clicked; click to done / frames -> **GUI time per frame**,
  and from the Run progress bar, the steady time between frames; the main thread's busy time
  (tick gaps of a 50 ms QTimer beyond 50 ms);
- ``gui-profile`` (once): the same with cProfile on the main thread and a stack sampler on
  the worker thread: where the GUI time goes.

Each run predicts the video twice: ``first`` (backbone features computed) and ``second``
(features from the predictor's cache, as a second Run in the dock). ``overhead_ratio`` is
(GUI - model) / model per frame with GUI = click to done / frames (for ``first`` that includes
building the model and creating the session: see ``model_build_s``, ``gui_first_frame_s``);
``overhead_ratio_steady`` takes the steady time between frames instead. With
``--fallback-method`` a Run click that fails is recorded and the measurement is taken by
calling the widget's ``run()``, labelled ``"driven_by": "method"``, in a fresh process (as
cold as a working click).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gui_bench as gb  # noqa: E402
import _gui_driver as gd  # noqa: E402
import _gui_profile as gp  # noqa: E402

PASSES = ("first", "second")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60, help="frames of the synthetic video")
    p.add_argument("--size", default="480x854", help="HxW of the synthetic video")
    p.add_argument("--seed", type=int, default=0, help="scene seed of the synthetic video")
    p.add_argument("--steps", type=int, default=2, help="refinement steps")
    p.add_argument("--repeat", type=int, default=1, help="rounds of gui, core and session")
    p.add_argument("--no-profile", action="store_true", help="skip the profiled GUI run")
    p.add_argument(
        "--fallback-method",
        action="store_true",
        help="measure a failing Run click via the widget's run()",
    )
    p.add_argument("--run-timeout", type=float, default=900.0, help="seconds per Run")
    p.add_argument("--child-timeout", type=float, default=2400.0, help="seconds per phase")
    p.add_argument("--json", type=Path, help="write the JSON here (it is always printed)")
    p.add_argument(
        "--phase", choices=("core", "session", "gui", "gui-profile"), help=argparse.SUPPRESS
    )
    p.add_argument("--video-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--run-by", default="click", help=argparse.SUPPRESS)
    p.add_argument("--no-sampler", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-json", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- without the GUI -----------------------------------------------------------------------
def model_spec(steps: int) -> Any:
    """The model the dock offers by default (the demo checkpoint when shipped), on the CPU."""
    annotate = gb.ours("napari_cliprl.annotation.models", "napari_cliprl.annotate")
    if hasattr(annotate, "default_spec"):
        return annotate.default_spec(device="cpu", steps=steps)
    ckpt = annotate.demo_checkpoint()
    return annotate.ModelSpec(checkpoint=str(ckpt) if ckpt else None, device="cpu", steps=steps)


def build_predictor(spec: Any) -> tuple[Any, float]:
    """The predictor as the dock's run gets it (``PredictorCache.get``), and seconds to build."""
    cache = gb.ours("napari_cliprl.annotation.models", "napari_cliprl.annotate").PredictorCache
    start = time.perf_counter()
    predictor = cache().get(spec)
    return predictor, time.perf_counter() - start


def video_frames(path: str) -> Any:
    """T x H x W x 3 frames decoded on demand, as the plugin's reader gives them."""
    from napari_cliprl.io.sources import open_frames

    lazy = gb.ours("napari_cliprl.io.lazy", "napari_cliprl.lazy")
    return lazy.LazyFrames(open_frames(path))


def phase_core(args: argparse.Namespace, path: str) -> dict:
    """Per frame: decode, the network, the step label maps, the zero-shot label map (full
    resolution maps are computed when first read); ``model_s`` is their sum."""
    import numpy as np

    spec = model_spec(args.steps)
    predictor, build_s = build_predictor(spec)
    frames = video_frames(path)
    out: dict[str, Any] = {"spec": repr(spec), "build_s": round(build_s, 3)}
    parts = ("decode_s", "network_s", "step_maps_s", "zero_shot_map_s")
    for name in PASSES:
        times: dict[str, list[float]] = {part: [] for part in parts}
        for i in range(len(frames)):
            t = [time.perf_counter()]
            frame = np.asarray(frames[i])
            t.append(time.perf_counter())
            pred = predictor.predict(frame, steps=spec.steps, key=(path, i))
            t.append(time.perf_counter())
            _ = pred.steps
            t.append(time.perf_counter())
            _ = pred.zero_shot
            t.append(time.perf_counter())
            for part, a, b in zip(parts, t, t[1:]):
                times[part].append(b - a)
        out[name] = {part: _stats(values) for part, values in times.items()}
        out[name]["model_s"] = _stats([sum(x) for x in zip(*times.values())])
    return out


def phase_session(args: argparse.Namespace, path: str, work: Path) -> dict:
    from napari_cliprl.schemas import get_schema

    run = gb.ours("napari_cliprl.annotation.run", "napari_cliprl.annotate")
    predict = getattr(run, "predict_sequence", None) or run.predict_into_session
    Session = gb.ours("napari_cliprl.annotation.session", "napari_cliprl.session").Session

    spec = model_spec(args.steps)
    predictor, build_s = build_predictor(spec)
    frames = video_frames(path)
    shape = (len(frames), *frames.shape[1:3])
    session = Session.create(
        work / "session", source=path, shape=shape, schema=get_schema(spec.schema), steps=spec.steps
    )
    out: dict[str, Any] = {"spec": repr(spec), "build_s": round(build_s, 3)}
    for name in PASSES:
        model, write, corrected, total = [], [], [], []
        last = time.perf_counter()
        for item in predict(predictor, frames, range(len(frames)), session, key=path):
            between = time.perf_counter() - last
            t0 = time.perf_counter()
            session.init_corrected(item.index)  # the widget does this per frame
            corrected.append(time.perf_counter() - t0)
            model.append(item.seconds)
            write.append(between - item.seconds)
            total.append(between)
            last = time.perf_counter()
        out[name] = {
            "model_s": _stats(model),
            "write_s": _stats(write),
            "init_corrected_s": _stats(corrected),
            "total_s": _stats(total),
        }
    return out


def _stats(values: list[float]) -> dict:
    """Mean, median and total of per-frame seconds (mean x frames = the loop's time)."""
    return {
        "mean": round(statistics.fmean(values), 4),
        "median": round(statistics.median(values), 4),
        "total": round(sum(values), 3),
        "n": len(values),
    }


# -- with the GUI --------------------------------------------------------------------------
class GuiRun:
    """A viewer with the dock, the video open and the dock configured."""

    def __init__(self, args: argparse.Namespace, path: str, ticks: gd.TickRecorder) -> None:
        import napari

        self.args, self.path, self.ticks = args, path, ticks
        self.viewer = napari.Viewer(show=True)
        gd.process_events(500)
        self.dock, self.widget = self.viewer.window.add_plugin_dock_widget(gd.PLUGIN, gd.DOCK)
        self.viewer.open(path, plugin=gd.PLUGIN)
        stem = Path(path).stem
        gd.wait_until(lambda: any(x.name == stem for x in self.viewer.layers), 120)
        self.model = gd.configure_dock(self.dock, args.steps)
        gd.process_events(500)

    def run(self, driven_by: str, profiler: gp.Profiler | None = None) -> dict:
        """Click Run (or call run()), wait until done; per-frame figures."""
        from qtpy.QtWidgets import QProgressBar

        button = gd.find_button(self.dock, "Run")
        if button is None:
            return {"driven_by": driven_by, "ok": False, "error": "no 'Run' button in the dock"}
        bars = gd.group_of(button).findChildren(QProgressBar)
        stamps: list[tuple[float, int]] = []
        if bars:
            bars[0].valueChanged.connect(lambda v: stamps.append((time.perf_counter(), v)))
        since = gd.n_records()
        done = gd.ButtonCycle(button, since)
        act = (lambda: gd.click(button)) if driven_by == "click" else self.widget.run
        if profiler is not None:
            profiler.start()
        start = time.perf_counter()
        act()
        finished = gd.wait_until(done, self.args.run_timeout)
        stop = time.perf_counter()
        if profiler is not None:
            profiler.stop()
        gd.process_events(300)
        errors = gd.messages_since(since)
        error = errors[0] if errors else (None if finished else "timeout")
        figures = frame_figures(stamps, start, stop, self.args.frames)
        return {
            "driven_by": driven_by,
            "ok": error is None,
            "error": error,
            "status": gd.status_of(button),
            "click_to_done_s": round(stop - start, 3),
            **figures,
            "max_gap_ms": round(self.ticks.max_gap_ms(start, stop), 1),
            "main_busy_s": round(self.ticks.busy_s(start, stop), 3),
        }

    def close(self) -> None:
        self.viewer.close()
        gd.process_events(300)


def frame_figures(stamps: list[tuple[float, int]], start: float, stop: float, n: int) -> dict:
    """Seconds per frame: click to done / n, and the steady interval between frames seen on
    the Run progress bar (its first to its last frame, so without the model build)."""
    first_seen: dict[int, float] = {}
    for t, value in stamps:
        if value >= 1:
            first_seen.setdefault(value, t)
    out: dict[str, Any] = {"frames": n, "s_per_frame": round((stop - start) / n, 4)}
    if len(first_seen) >= 2:
        values = sorted(first_seen)
        span = first_seen[values[-1]] - first_seen[values[0]]
        out["steady_s_per_frame"] = round(span / (values[-1] - values[0]), 4)
        out["first_frame_s"] = round(first_seen[values[0]] - start, 3)
    return out


def phase_gui(args: argparse.Namespace, path: str, profile: bool, save: Any) -> dict:
    """Two Runs of all frames in the dock. A failing click with ``--fallback-method`` ends the
    phase (``needs_method``): the parent repeats it in a fresh process with ``--run-by
    method``, so the method's first run is as cold as a working click's would be. ``save``
    keeps what was measured (a dict) before the viewer closes."""
    from napari.qt import get_qapp

    get_qapp()
    ticks, guard = gd.TickRecorder(), gd.ModalGuard()
    gui = GuiRun(args, path, ticks)
    out: dict[str, Any] = {"model": gui.model, "attempts": []}
    for name in PASSES:
        profiler = gp.Profiler(sample=not args.no_sampler) if profile else None
        result = gui.run(args.run_by, profiler)
        if not result["ok"] and args.run_by == "click" and args.fallback_method:
            out["attempts"].append({"pass": name, **result})
            out["needs_method"] = True
            break
        out[name] = result
        if profiler is not None:
            out[name]["profile"] = profiler.report()
    out["dialogs_closed"] = guard.closed
    save(out)  # before closing the viewer, which has crashed the process once in a while
    gui.close()
    return out


# -- the parent: rounds of fresh processes, then the summary ---------------------------------
def run_child(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="cliprl-overhead-"))
    path = str(shutil.copy(args.video_file, work))  # a fresh session beside a fresh copy
    result: dict[str, Any] = {"phase": args.phase, **gb.source_info(), "load_start": gb.loadavg()}

    def save(part: dict) -> None:
        result.update(part, load_end=gb.loadavg())
        gb.save_json(args.child_json, result)

    try:
        if args.phase == "core":
            save(phase_core(args, path))
        elif args.phase == "session":
            save(phase_session(args, path, work))
        else:
            save(phase_gui(args, path, args.phase == "gui-profile", save))
    finally:
        save({})
        shutil.rmtree(work, ignore_errors=True)


def run_phase(argv: list[str], phase: str, out: Path, timeout_s: float) -> dict:
    print(f"phase {phase} ...", file=sys.stderr, flush=True)
    cmd = [*argv, "--phase", phase]
    result = gb.run_with_method_retry(cmd, out, timeout_s, ["--run-by", "method"])
    if "click_run" in result:  # the failed click, then the method's figures
        result["attempts"] = [*result["click_run"].get("attempts", []), *result["attempts"]]
    return result


def profile_phase(base: list[str], rounds: list[dict], tmp: Path, timeout_s: float) -> dict:
    """The profiled GUI run. Where the Run click failed in the rounds, the method is profiled
    directly; a profiled child that crashed is run again without the stack sampler."""
    if any(r["gui"].get("attempts") for r in rounds):
        base = [*base, "--run-by", "method"]
    result = run_phase(base, "gui-profile", tmp / "profile.json", timeout_s)
    if "first" not in result:
        crashed = result
        result = run_phase([*base, "--no-sampler"], "gui-profile", tmp / "p2.json", timeout_s)
        result["sampler_crashed"] = crashed.get("exit_status")
    return result


def summarise(rounds: list[dict[str, dict]]) -> dict:
    """Medians over rounds of the per-frame figures, and the overhead ratio per pass."""

    def med(phase: str, *keys: str) -> float | None:
        values = []
        for r in rounds:
            value: Any = r.get(phase, {})
            for k in keys:
                value = value.get(k, {}) if isinstance(value, dict) else {}
            if isinstance(value, int | float):
                values.append(float(value))
        return round(statistics.median(values), 4) if values else None

    out: dict[str, Any] = {}
    for name in PASSES:
        model = med("core", name, "model_s", "mean")
        gui = med("gui", name, "s_per_frame")
        steady = med("gui", name, "steady_s_per_frame")
        zero_shot = med("core", name, "zero_shot_map_s", "mean")
        after_model = med("session", name, "write_s", "mean")
        init_corrected = med("session", name, "init_corrected_s", "mean")
        total = med("session", name, "total_s", "mean")
        out[name] = {
            "model_s_per_frame": model,
            "model_parts_s_per_frame": {
                part: med("core", name, f"{part}_s", "mean")
                for part in ("decode", "network", "step_maps", "zero_shot_map")
            },
            "session_write_s_per_frame": _minus(after_model, zero_shot),
            "init_corrected_s_per_frame": init_corrected,
            "no_gui_s_per_frame": _plus(total, init_corrected),
            "gui_s_per_frame": gui,
            "gui_steady_s_per_frame": steady,
            "gui_first_frame_s": med("gui", name, "first_frame_s"),
            "gui_main_busy_s_per_frame": _per_frame(med("gui", name, "main_busy_s"), rounds),
            "overhead_ratio": _ratio(gui, model),
            "overhead_ratio_steady": _ratio(steady, model),
        }
    out["model_build_s"] = med("core", "build_s")
    return out


def _minus(a: float | None, b: float | None) -> float | None:
    return round(a - b, 4) if a is not None and b is not None else None


def _plus(a: float | None, b: float | None) -> float | None:
    return round(a + b, 4) if a is not None and b is not None else None


def _ratio(gui: float | None, model: float | None) -> float | None:
    return round((gui - model) / model, 3) if gui is not None and model else None


def _per_frame(seconds: float | None, rounds: list[dict]) -> float | None:
    frames = rounds[0].get("gui", {}).get("first", {}).get("frames") if rounds else None
    return round(seconds / frames, 4) if seconds is not None and frames else None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child_json is not None:
        run_child(args)
        return
    h, w = (int(v) for v in args.size.lower().split("x"))
    start_load = gb.loadavg()
    rounds: list[dict[str, dict]] = []
    profile: dict = {}
    with tempfile.TemporaryDirectory(prefix="cliprl-overhead-video-") as tmp:
        video = gb.write_synthetic_video(Path(tmp), args.frames, (h, w), args.seed)
        base = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
        base += ["--video-file", video["path"]]
        for k in range(args.repeat):
            rounds.append(
                {
                    phase: run_phase(
                        base, phase, Path(tmp) / f"{phase}-{k}.json", args.child_timeout
                    )
                    for phase in ("gui", "core", "session")
                }
            )
        if not args.no_profile:
            profile = profile_phase(base, rounds, Path(tmp), args.child_timeout)
    first = rounds[0]["gui"] if rounds else {}
    result = {
        "source": first.get("source"),
        "commit": first.get("commit"),
        "dirty": first.get("dirty"),
        "package_commit": first.get("package_commit"),
        "loadavg": {
            "start": start_load,
            "end": gb.loadavg(),
            "phases": [
                {p: [r[p].get("load_start"), r[p].get("load_end")] for p in r} for r in rounds
            ],
        },
        "video": {k: v for k, v in video.items() if k != "path"},
        "repeat": args.repeat,
        "model": first.get("model"),
        "summary": summarise(rounds),
        "rounds": rounds,
        "profile": profile,
    }
    print(json.dumps(result, indent=1))
    if args.json is not None:
        gb.save_json(args.json, result)


if __name__ == "__main__":
    main()
