"""Main-thread freezes of the annotator dock, per user action, as JSON.

    PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 \\
        xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_responsiveness.py \\
        --repeat 3 --fallback-method --json benchmarks/results/gui_responsiveness.json

A real napari viewer; a QTimer ticks every 50 ms on the main thread. For each action a person
takes, ``max_gap_ms`` is the longest gap between ticks from the action until its work has
finished (plus ``--settle`` seconds for deferred redraws): how long the window was frozen.
``wall_s`` is the action's own time, from click to finished. The actions, in order:

    add dock, open video, run (first), run (second), accept step, next unreviewed, export,
    [close the viewer, new viewer] add dock (reopen), open video (reopen), restore,
    evaluate, fine-tune start (click until started, plus ``--finetune-window`` s),
    fine-tune cancel

Buttons are clicked (``QTest.mouseClick``) after being found by their text in the dock; combo
boxes and spin boxes are set as a user's change sets them. A click that fails records the error
notification as its outcome. With ``--fallback-method`` a failed Run or a Restore that is not
offered is also measured by calling the widget's method behind it, labelled
``"driven_by": "method"``: only to have a comparable figure for a broken control. When the
first Run click fails, that run stops there and a fresh process repeats the sequence with the
first Run called as a method, so that its figure is as cold as a working click's would be.

Every repeat is a fresh process (cold imports, as a user meets them) with its own copy of the
video and so its own session; the JSON holds per-action medians and every run. Which source
tree was imported, its commit and the load average are recorded: timings on shared cores are
noisy, compare figures taken at the same load.
"""

from __future__ import annotations

import argparse
import cProfile
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gui_bench as gb  # noqa: E402
import _gui_driver as gd  # noqa: E402
from _gui_profile import cprofile_top  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60, help="frames of the synthetic video")
    p.add_argument("--size", default="480x854", help="HxW of the synthetic video")
    p.add_argument("--seed", type=int, default=0, help="scene seed of the synthetic video")
    p.add_argument("--steps", type=int, default=2, help="refinement steps set in the dock")
    p.add_argument("--repeat", type=int, default=1, help="runs of the whole sequence")
    p.add_argument(
        "--fallback-method",
        action="store_true",
        help="also measure a failed Run / no Restore via the widget method",
    )
    p.add_argument("--run-timeout", type=float, default=900.0, help="seconds per Run")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per other action")
    p.add_argument("--settle", type=float, default=0.3, help="seconds watched after each action")
    p.add_argument(
        "--finetune-window",
        type=float,
        default=3.0,
        help="seconds watched after the fine-tune has started",
    )
    p.add_argument("--finetune-epochs", type=int, default=2, help="fine-tune budget set")
    p.add_argument("--finetune-rl-iters", type=int, default=10, help="fine-tune budget set")
    p.add_argument(
        "--profile", action="store_true", help="cProfile the main thread per action (slower)"
    )
    p.add_argument("--child-timeout", type=float, default=3600.0, help="seconds per repeat")
    p.add_argument("--json", type=Path, help="write the JSON here (it is always printed)")
    p.add_argument("--video-file", type=Path, help=argparse.SUPPRESS)  # parent -> child
    p.add_argument("--run-first-by", default="click", help=argparse.SUPPRESS)
    p.add_argument("--child-json", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


class Bench:
    """One run of the sequence: the viewer, the dock, the heartbeat and the results so far."""

    def __init__(self, args: argparse.Namespace, video: dict, out: Path) -> None:
        from napari.qt import get_qapp

        self.args, self.video, self.out = args, video, out
        get_qapp()  # timers need the application's event loop: create it first
        self.ticks = gd.TickRecorder()
        self.modals = gd.ModalGuard()
        self.viewer: Any = None
        self.dock: Any = None
        self.widget: Any = None
        self.result: dict[str, Any] = {
            **gb.source_info(),
            "loadavg": {"start": gb.loadavg()},
            "video": video,
            "model": {},
            "setup": [],
            "actions": [],
        }

    def measure(self, name: str, act: Any, done: Any, **kw: Any) -> dict:
        kw.setdefault("timeout_s", self.args.timeout)
        kw.setdefault("settle_s", self.args.settle)
        profile = cProfile.Profile() if self.args.profile else None
        if profile is not None:
            profile.enable()
        record = gd.measure(self.ticks, name, act, done, **kw)
        if profile is not None:
            profile.disable()
            record["main_profile"] = cprofile_top(profile, 15)["by_cumtime"]
        self.result["actions"].append(record)
        self.save()
        print(f"  {record}", file=sys.stderr, flush=True)
        return record

    def fail(self, name: str, error: str) -> dict:
        """An action that could not even be tried (its control is missing)."""
        record = {
            "action": name,
            "driven_by": "click",
            "ok": False,
            "error": error,
            "max_gap_ms": 0.0,
            "wall_s": 0.0,
            "status": None,
        }
        self.result["actions"].append(record)
        self.save()
        return record

    def setup(self, name: str, fn: Any) -> Any:
        start = time.perf_counter()
        value = fn()
        self.result["setup"].append({"step": name, "s": round(time.perf_counter() - start, 3)})
        return value

    def save(self) -> None:
        self.result["dialogs_closed"] = list(self.modals.closed)
        gb.save_json(self.out, self.result)

    def button(self, text: str, near: Any = None) -> Any:
        return gd.find_button(self.dock, text, near) if self.dock is not None else None


# -- the sequence --------------------------------------------------------------------------
def open_viewer_with_dock(b: Bench, suffix: str = "", measured: bool = True) -> None:
    """New viewer; add the dock and open the video (measured, or as setup steps)."""
    import napari

    b.viewer = b.setup(f"new viewer{suffix}", lambda: napari.Viewer(show=True))
    gd.process_events(500)
    docked: dict[str, Any] = {}
    path = b.video["path"]

    def add_dock() -> None:
        docked["pair"] = b.viewer.window.add_plugin_dock_widget(gd.PLUGIN, gd.DOCK)

    def open_video() -> None:
        b.viewer.open(path, plugin=gd.PLUGIN)

    opened = lambda: any(layer.name == Path(path).stem for layer in b.viewer.layers)  # noqa: E731
    if measured:
        b.measure(f"add dock{suffix}", add_dock, None, driven_by="menu")
    else:
        b.setup(f"add dock{suffix}", add_dock)
    b.dock, b.widget = docked.get("pair", (None, None))
    if b.widget is not None:
        b.result["widget_source"] = sys.modules[type(b.widget).__module__].__file__
    if measured:
        b.measure(f"open video{suffix}", open_video, opened, driven_by="menu")
    else:
        b.setup(f"open video{suffix}", open_video)
        gd.wait_until(opened, b.args.timeout)
    configure_dock(b)


def configure_dock(b: Bench) -> None:
    if b.dock is not None:
        b.result["model"] = gd.configure_dock(b.dock, b.args.steps)


def click_action(b: Bench, name: str, text: str, done: Any, **kw: Any) -> dict:
    """Click the dock's ``text`` button; ``done(button, since)`` makes the finished test."""
    button = b.button(text, kw.pop("near", None))
    if button is None:
        return b.fail(name, f"no {text!r} button in the dock")
    kw.setdefault("status", lambda: gd.status_of(button))
    return b.measure(name, lambda: gd.click(button), done(button, gd.n_records()), **kw)


class FirstClickFailedError(Exception):
    """The first Run click failed: its method must be measured in a fresh process."""


def run_action(b: Bench, name: str, first: bool = False) -> None:
    """Click Run; if that fails and ``--fallback-method``, also call the widget's run():
    for the first run the parent does that in a fresh process (``--run-first-by method``)."""
    by_method = first and b.args.run_first_by == "method"
    if not by_method:
        record = click_action(b, name, "Run", gd.ButtonCycle, timeout_s=b.args.run_timeout)
        if record["ok"] or not b.args.fallback_method or getattr(b.widget, "run", None) is None:
            return
        if first:
            raise FirstClickFailedError
    button, method = b.button("Run"), b.widget.run
    b.measure(
        name,
        lambda: method(),
        gd.ButtonCycle(button, gd.n_records()),
        timeout_s=b.args.run_timeout,
        driven_by="method",
        status=lambda: gd.status_of(button),
    )


def review_and_export(b: Bench, export_dir: Path) -> None:
    def texts_changed(button: Any, since: int) -> Any:
        before = gd.label_texts(b.dock)
        return lambda: gd.label_texts(b.dock) != before or bool(gd.messages_since(since, None))

    def frame_changed(button: Any, since: int) -> Any:
        before = b.viewer.dims.current_step[0]
        return lambda: (
            b.viewer.dims.current_step[0] != before or bool(gd.messages_since(since, None))
        )

    click_action(b, "accept step", "Accept step", texts_changed)
    click_action(b, "next unreviewed", "Next unreviewed", frame_changed)
    from qtpy.QtWidgets import QLineEdit

    folder = gd.form_field(b.dock, "Folder", QLineEdit, "Export")
    if folder is not None:
        gd.type_into(folder, str(export_dir))
    click_action(b, "export", "Export", gd.ButtonCycle)


def restore_action(b: Bench) -> None:
    """Click the Restore the widget offers (in the dock, else on its notification)."""
    gd.process_events(300)
    button = b.button("Restore") or gd.find_visible_button("Restore")
    names = lambda: [layer.name for layer in b.viewer.layers]  # noqa: E731

    def restored(since: int) -> Any:
        return lambda: "corrected" in names() or bool(gd.messages_since(since))

    if button is not None:
        b.measure("restore", lambda: gd.click(button), restored(gd.n_records()))
        return
    b.fail("restore", "no Restore button offered (dock or notification)")
    method = getattr(b.widget, "restore_session", None)
    if b.args.fallback_method and method is not None:
        b.measure("restore", lambda: method(), restored(gd.n_records()), driven_by="method")


def evaluate_action(b: Bench) -> None:
    truth = gb.ground_truth(b.video)
    b.setup("add ground truth", lambda: b.viewer.add_labels(truth, name="ground truth"))
    gd.process_events(300)
    click_action(b, "evaluate", "Evaluate", gd.ButtonCycle)


def finetune_actions(b: Bench) -> None:
    """Start a tiny fine-tune, watch it a few seconds, then cancel it."""
    from qtpy.QtWidgets import QComboBox, QSpinBox

    budget = (
        ("Epochs", QSpinBox, b.args.finetune_epochs),
        ("RL iterations", QSpinBox, b.args.finetune_rl_iters),
        ("Device", QComboBox, "cpu"),
    )
    for label, kind, value in budget:
        control = gd.form_field(b.dock, label, kind, "Fine-tune")
        if control is not None:
            gd.choose(control, value) if kind is QComboBox else gd.set_number(control, value)
    start = b.button("Fine-tune")

    def started(button: Any, since: int) -> Any:
        before = gd.label_texts(gd.group_of(button))
        group = gd.group_of(button)
        return lambda: (
            not button.isEnabled() or label_changed(group, before) or bool(gd.messages_since(since))
        )

    window = b.args.finetune_window
    click_action(b, "fine-tune start", "Fine-tune", started, settle_s=window)
    if start is None:
        return
    click_action(
        b,
        "fine-tune cancel",
        "Cancel",
        lambda button, since: start.isEnabled,
        near=start,
        timeout_s=max(b.args.timeout, 300.0),
    )


def label_changed(group: Any, before: tuple[str, ...]) -> bool:
    return gd.label_texts(group) != before


def run_sequence(args: argparse.Namespace) -> None:
    """One pass over every action, in a fresh copy of the video (so a fresh session)."""
    work = Path(tempfile.mkdtemp(prefix="cliprl-guibench-"))
    video = dict(args.video_info, path=str(shutil.copy(args.video_file, work)))
    b = Bench(args, video, args.child_json)
    try:
        open_viewer_with_dock(b)
        run_action(b, "run (first)", first=True)
        run_action(b, "run (second)")
        review_and_export(b, work / "export")
        b.setup("close viewer", b.viewer.close)
        gd.process_events(500)
        open_viewer_with_dock(b, " (reopen)")
        restore_action(b)
        evaluate_action(b)
        finetune_actions(b)
        b.setup("close viewer", b.viewer.close)
    except FirstClickFailedError:  # keep the failed click only; the parent measures the method
        b.result["needs_method"] = True
        b.result["discarded"] = b.result["actions"][:-1]
        b.result["actions"] = b.result["actions"][-1:]
    finally:
        b.result["loadavg"]["end"] = gb.loadavg()
        b.save()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    import json

    args = parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    if args.child_json is not None:
        args.video_info = {"frames": args.frames, "height": h, "width": w, "seed": args.seed}
        run_sequence(args)
        return
    start_load = gb.loadavg()
    with tempfile.TemporaryDirectory(prefix="cliprl-guibench-video-") as tmp:
        video = gb.write_synthetic_video(Path(tmp), args.frames, (h, w), args.seed)
        child = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
        child += ["--video-file", video["path"]]
        retry = ["--run-first-by", "method"]
        runs = []
        for k in range(args.repeat):
            out = Path(tmp) / f"run-{k}.json"
            runs.append(gb.run_with_method_retry(child, out, args.child_timeout, retry))
            print(f"run {k + 1}/{args.repeat} done", file=sys.stderr, flush=True)
    first = runs[0] if runs else {}
    result = {
        "source": first.get("source"),
        "commit": first.get("commit"),
        "dirty": first.get("dirty"),
        "package_commit": first.get("package_commit"),
        "widget_source": first.get("widget_source"),
        "loadavg": {
            "start": start_load,
            "end": gb.loadavg(),
            "runs": [r.get("loadavg") for r in runs],
        },
        "video": {k: v for k, v in video.items() if k != "path"},
        "model": first.get("model"),
        "repeat": args.repeat,
        "settings": {
            k: getattr(args, k)
            for k in ("settle", "finetune_window", "fallback_method", "profile", "steps")
        },
        "tick_ms": gd.TICK_MS,
        "actions": gb.median_actions(r["actions"] for r in runs),
        "runs": runs,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json is not None:
        gb.save_json(args.json, result)


if __name__ == "__main__":
    main()
