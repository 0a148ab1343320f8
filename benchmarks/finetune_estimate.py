"""How good is the dock's fine-tune time estimate? JSON of first estimate, updates and actual.

    PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 \\
        xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/finetune_estimate.py \\
        --json benchmarks/results/finetune_estimate.json

Cases: ``sample``, the dock's sample data (``napari_cliprl.io.sample``, as File > Open Sample
adds it: 16 frames of 256 x 320 and their ground truth), and ``real``, 72 frames of a
laparoscopic video with ground truth (``../shared/data/cholecseg8k_seq``, read with
``io.read_labeled``; skipped, with the reason printed, where that folder is absent).

Each run is a fresh process: a napari viewer, the annotator dock with its default model (the
demo checkpoint, tiny-test) and its DEFAULT fine-tune budget. Setup, as a user prepares it: the
Data section's Frames set to all frames and Run clicked (the demo checkpoint's endovis2018
schema: it refuses another; see ``load_case``); then N evenly spaced frames get their ground
truth painted into the session's "corrected" layer (one ``data_setitem`` edit per frame, as a
brush stroke makes it; its paint event marks the frame reviewed. Should it not, the frame is
marked through the session and the record says so). The measured action is a click on
Fine-tune. Recorded:

- ``first_estimate_s``: the total duration as first shown (``FinetuneController.first_estimate``,
  the clock's elapsed + left when the dock first shows "… left"), and when it was shown;
- ``updates``: every progress report after the click: seconds since the click, the text the
  dock shows, and the clock's estimate of the total at that moment;
- ``actual_s``: ``FinetuneController.duration`` (click to finished, the clock's own start);
- ``ratio_first`` = actual / first estimate; ``ratio_max`` / ``ratio_min`` over all updates of
  actual / the total estimated at that time. Within 1.5x means 1/1.5 <= ratio <= 1.5.

Timings on shared cores move with the load: the load average is recorded at the start and end
of each run and at every progress report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gui_bench as gb  # noqa: E402
import _gui_driver as gd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
REAL_NAME = "cholecseg8k_seq"
LIMIT = 1.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="sample,real", help="comma-separated: sample, real")
    p.add_argument("--sample-frames", default="4", help="reviewed frames (sample), e.g. 4,8")
    p.add_argument("--real-frames", default="4,8", help="reviewed frames (real video)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    p.add_argument("--repeat", type=int, default=1, help="runs of each case (fresh processes)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds for one fine-tune")
    p.add_argument("--json", type=Path, help="write the JSON here (it is always printed)")
    p.add_argument("--child-case", help=argparse.SUPPRESS)
    p.add_argument("--child-frames", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-json", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def picks(n_frames: int, n: int) -> list[int]:
    """``n`` evenly spaced frames of ``n_frames`` (4 of 72: 9, 27, 45, 63)."""
    return sorted({min(int((k + 0.5) * n_frames / n), n_frames - 1) for k in range(n)})


SHOWN = re.compile(r"about ([\d.]+) (s|min|h) left")


def shown_seconds(message: str) -> float | None:
    """The seconds left that the dock's text shows ("… · about 3 min left"), or None."""
    match = SHOWN.search(message)
    if match is None:
        return None
    return float(match.group(1)) * {"s": 1, "min": 60, "h": 3600}[match.group(2)]


# -- one run (child process) ---------------------------------------------------------------
def load_case(case: str, data: Path) -> tuple[Any, Any, str, str | None]:
    """(frames or None, ground truth T x H x W, image layer name, the truth's schema).

    The demo checkpoint accepts only its own schema (endovis2018, 12 classes): the real
    video's CholecSeg8k class ids (those present here are all below 12) are painted as they
    are. What the classes are called changes nothing in what training costs."""
    if case == "sample":
        return None, None, "synthetic clip", None
    from napari_cliprl.io import read_labeled

    seq = read_labeled(data / REAL_NAME)
    import numpy as np

    frames = np.asarray(seq.frames)
    truth = np.stack([seq.labels(i) for i in range(len(frames))])
    return frames, truth, REAL_NAME, seq.schema.name


def run_once(args: argparse.Namespace) -> None:
    import numpy as np
    from napari.qt import get_qapp
    from qtpy.QtWidgets import QComboBox, QLineEdit, QSpinBox

    get_qapp()
    modals = gd.ModalGuard()
    work = Path(tempfile.mkdtemp(prefix="cliprl-ftest-"))
    out: dict[str, Any] = {
        **gb.source_info(),
        "case": args.child_case,
        "reviewed_frames": args.child_frames,
        "loadavg_start": gb.loadavg(),
        "setup": [],
    }

    def save() -> None:
        out["dialogs_closed"] = list(modals.closed)
        gb.save_json(args.child_json, out)

    def step(name: str, fn: Any) -> Any:
        start = time.perf_counter()
        value = fn()
        out["setup"].append({"step": name, "s": round(time.perf_counter() - start, 2)})
        save()
        return value

    try:
        import napari

        frames, truth, layer_name, schema = step(
            "read data", lambda: load_case(args.child_case, args.data)
        )
        viewer = step("new viewer", lambda: napari.Viewer(show=True))
        gd.process_events(300)
        dock, widget = step(
            "add dock", lambda: viewer.window.add_plugin_dock_widget(gd.PLUGIN, gd.DOCK)
        )
        if frames is None:  # File > Open Sample
            step("open sample", lambda: viewer.open_sample(gd.PLUGIN, "synthetic_clip"))
            truth = np.asarray(viewer.layers["ground truth"].data)
        else:
            step("add image", lambda: viewer.add_image(frames, rgb=True, name=layer_name))
        gd.process_events(300)
        image = gd.form_field(dock, "Image", QComboBox, "Data")
        gd.choose(image, layer_name)
        gd.choose(gd.form_field(dock, "Frames", QComboBox, "Data"), "all frames")
        session_edit = gd.form_field(dock, "Session", QLineEdit, "Data")
        gd.type_into(session_edit, str(work / "session"))
        out["truth_schema"] = schema
        gd.process_events(300)
        out["model"] = {
            label: (c.currentText() if isinstance(c, QComboBox) else c.text())
            for label, kind in (
                ("Model from", QComboBox),
                ("Checkpoint", QLineEdit),
                ("Architecture", QComboBox),
                ("Schema", QComboBox),
                ("Device", QComboBox),
            )
            if (c := gd.form_field(dock, label, kind, "Model")) is not None
        }
        out["budget"] = {
            label: (c.currentText() if isinstance(c, QComboBox) else c.value())
            for label, kind in (
                ("Epochs", QSpinBox),
                ("RL iterations", QSpinBox),
                ("Device", QComboBox),
            )
            if (c := gd.form_field(dock, label, kind, "Fine-tune")) is not None
        }

        run = gd.find_button(dock, "Run")
        cycle = gd.ButtonCycle(run, gd.n_records())
        step("click Run (all frames)", lambda: (gd.click(run), gd.wait_until(cycle, 900)))
        ready = lambda: not widget.busy and "corrected" in viewer.layers  # noqa: E731
        failed = lambda: bool(gd.messages_since(0))  # noqa: E731
        step("layers ready", lambda: gd.wait_until(lambda: ready() or failed(), 300))
        if failed() or not ready():
            errors = gd.messages_since(0) or ["the session's layers did not appear"]
            raise RuntimeError(f"Run failed: {errors[0]}")

        session = widget.controller.session
        corrected = viewer.layers["corrected"]
        chosen = picks(session.shape[0], args.child_frames)
        out["frames"] = {"total": int(session.shape[0]), "reviewed": chosen}
        by_api = []

        def paint_truth() -> None:
            for i in chosen:
                viewer.dims.set_current_step(0, i)
                want, have = truth[i], np.asarray(corrected.data[i])
                known = want < len(session.schema.classes)  # not ignore (255)
                ys, xs = np.nonzero((want != have) & known)
                if ys.size:
                    corrected.data_setitem((np.full(ys.size, i), ys, xs), want[ys, xs])
                gd.process_events(50)
                if i not in session.reviewed:
                    session.mark_reviewed([i])
                    by_api.append(i)

        step("paint ground truth", paint_truth)
        gd.process_events(300)
        out["marked_reviewed_via_session_api"] = by_api
        out["session_reviewed"] = sorted(int(i) for i in session.reviewed)

        measure_finetune(dock, widget, args.timeout, out, save)
        viewer.close()
    finally:
        out["loadavg_end"] = gb.loadavg()
        save()
        shutil.rmtree(work, ignore_errors=True)


def measure_finetune(dock: Any, widget: Any, timeout: float, out: dict, save: Any) -> None:
    """Click Fine-tune; record every progress report until the fine-tune has finished."""
    training = widget.controller.training
    updates: list[dict[str, Any]] = []
    clicked = [0.0]

    def on_progress(done: int, total: int, message: str) -> None:
        now = time.perf_counter()
        clock = getattr(training, "_clock", None)  # the estimate the text was made from
        left = clock.seconds_left(now) if clock is not None else None
        updates.append(
            {
                "t_s": round(now - clicked[0], 3),
                "done": done,
                "total": total,
                "text": message,
                "shown_left_s": shown_seconds(message),
                "left_s": None if left is None else round(left, 2),
                "total_est_s": None if left is None else round(now - clock.start + left, 2),
                "load1": gb.loadavg()[0],
                **clock_parts(clock),
            }
        )

    training.progress.connect(on_progress)
    button = gd.find_button(dock, "Fine-tune")
    since = gd.n_records()
    finished = lambda: not training.is_running and training.duration is not None  # noqa: E731
    clicked[0] = time.perf_counter()
    gd.click(button)
    ok = gd.wait_until(finished, timeout)
    wall = time.perf_counter() - clicked[0]
    gd.process_events(300)
    training.progress.disconnect(on_progress)
    errors = gd.messages_since(since)
    warnings = gd.messages_since(since, "warning")
    actual, first = training.duration, training.first_estimate
    estimates = [u["total_est_s"] for u in updates if u["total_est_s"]]
    first_at = next((u["t_s"] for u in updates if u["total_est_s"]), None)
    out["finetune"] = {
        "ok": ok and not errors,
        "error": errors[0] if errors else (None if ok else f"not finished after {timeout} s"),
        "status": widget.sections.finetune.status(),
        "cpu_warning": warnings[0] if warnings else None,
        "first_estimate_s": None if first is None else round(first, 2),
        "first_estimate_at_s": first_at,
        "actual_s": None if actual is None else round(actual, 2),
        "click_to_finished_s": round(wall, 2),
        "ratio_first": _ratio(actual, first),
        "ratio_max": max((_ratio(actual, e) for e in estimates), default=None),
        "ratio_min": min((_ratio(actual, e) for e in estimates), default=None),
        "n_estimates": len(estimates),
        "updates": updates,
    }
    save()


def clock_parts(clock: Any) -> dict[str, Any]:
    """What the clock's estimate is made of (seconds; None until timed), for diagnosis."""
    parts = {}
    for name in ("frame_cost", "fixed_cost", "rl_cost"):
        method = getattr(clock, name, None)
        value = method() if callable(method) else None
        parts[name] = None if value is None else round(value, 4)
    return parts


def _ratio(actual: float | None, estimate: float | None) -> float | None:
    if not actual or not estimate:
        return None
    return round(actual / estimate, 3)


# -- the parent: one fresh process per case, frame count and repeat ------------------------
def summary(run: dict) -> dict[str, Any]:
    ft = run.get("finetune") or {}

    def within(*keys: str) -> bool | None:
        ratios = [ft.get(k) for k in keys]
        if any(r is None for r in ratios):
            return None
        return all(1 / LIMIT <= r <= LIMIT for r in ratios)

    return {
        "case": run.get("case"),
        "reviewed_frames": run.get("reviewed_frames"),
        "ok": ft.get("ok", False),
        "error": ft.get("error") or run.get("error"),
        "first_estimate_s": ft.get("first_estimate_s"),
        "first_estimate_at_s": ft.get("first_estimate_at_s"),
        "actual_s": ft.get("actual_s"),
        "ratio_first": ft.get("ratio_first"),
        "ratio_max": ft.get("ratio_max"),
        "ratio_min": ft.get("ratio_min"),
        "first_within_1_5x": within("ratio_first"),
        "all_within_1_5x": within("ratio_first", "ratio_max", "ratio_min"),
        "loadavg": [run.get("loadavg_start"), run.get("loadavg_end")],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child_json is not None:
        run_once(args)
        return
    plan: list[tuple[str, int]] = []
    skipped = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        if case not in ("sample", "real"):
            raise SystemExit(f"unknown case {case!r}: choose sample and/or real")
        if case == "real" and not (args.data / REAL_NAME).is_dir():
            reason = f"real: skipped, {args.data / REAL_NAME} is absent (no shared data here)"
            print(reason, file=sys.stderr)
            skipped.append(reason)
            continue
        counts = args.sample_frames if case == "sample" else args.real_frames
        plan += [(case, int(n)) for n in counts.split(",") if n.strip()]
    start_load = gb.loadavg()
    runs = []
    with tempfile.TemporaryDirectory(prefix="cliprl-ftest-runs-") as tmp:
        for case, n in plan:
            for k in range(args.repeat):
                child = [sys.executable, __file__, "--child-case", case]
                child += ["--child-frames", str(n), "--data", str(args.data)]
                child += ["--timeout", str(args.timeout)]
                path = Path(tmp) / f"{case}-{n}-{k}.json"
                print(f"{case}, {n} reviewed frames, run {k + 1}", file=sys.stderr, flush=True)
                run = gb.run_child(child, path, args.timeout + 900)
                runs.append(run)
                print(f"  {json.dumps(summary(run))}", file=sys.stderr, flush=True)
    result = {
        "source": runs[0].get("source") if runs else None,
        "commit": runs[0].get("commit") if runs else None,
        "dirty": runs[0].get("dirty") if runs else None,
        "limit": LIMIT,
        "loadavg": {"start": start_load, "end": gb.loadavg()},
        "cpu_count": os.cpu_count(),
        "skipped": skipped,
        "summary": [summary(r) for r in runs],
        "runs": runs,
    }
    print(json.dumps(result, indent=1))
    if args.json is not None:
        gb.save_json(args.json, result)


if __name__ == "__main__":
    main()
