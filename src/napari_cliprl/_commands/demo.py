"""``cliprl demo``: napari on the synthetic clip, the annotator docked and run on it.

The GUI code lives in :mod:`napari_cliprl._napari._demo` (imported only when the command
runs, so ``cliprl --help`` never loads Qt). Without a display, ``--screenshot`` re-runs the
command under ``xvfb-run`` when it is installed, and a plain ``cliprl demo`` says what to do;
inside ``xvfb-run`` (``make demo`` on a headless machine) it saves ``cliprl-demo.png``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from pathlib import Path

from napari_cliprl.errors import CLIError
from napari_cliprl.limits import limit

NAME = "demo"
HELP = (
    "Open napari on the synthetic surgical clip with the CLIP-RL annotator docked and the demo "
    "checkpoint run on it (--screenshot PATH saves the window and exits)."
)
XVFB_SCREEN = "-screen 0 1600x1000x24"
_REEXEC_FLAG = "CLIPRL_DEMO_UNDER_XVFB"
DEFAULT_SCREENSHOT = "cliprl-demo.png"
DEMO_MAX_FRAMES = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PATH",
        help="save a PNG of the window once the run has finished, then exit",
    )
    parser.add_argument("--frames", type=int, default=16, help="frames of the clip (default 16)")
    parser.add_argument(
        "--steps", type=int, default=3, help="refinement steps to show as layers (default 3)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the run before the screenshot (default 600)",
    )


def has_display() -> bool:
    """True where Qt can open a window (always outside Linux; an X/Wayland display on Linux)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("QT_QPA_PLATFORM")
    )


def under_xvfb_run() -> bool:
    """True inside ``xvfb-run`` (a virtual screen nobody sees), e.g. ``make demo`` headless."""
    return "xvfb-run" in os.environ.get("XAUTHORITY", "")


def _rerun_under_xvfb(argv: list[str]) -> int:
    """Run this command again inside ``xvfb-run`` (a virtual screen); its exit status."""
    import subprocess

    env = dict(os.environ, **{_REEXEC_FLAG: "1"})
    cmd = ["xvfb-run", "-a", "-s", XVFB_SCREEN, sys.executable, "-m", "napari_cliprl.cli", *argv]
    return subprocess.run(cmd, env=env, check=False).returncode


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.frames <= DEMO_MAX_FRAMES:  # the clip is made in memory (240 KB a frame)
        raise CLIError(f"--frames must be 1..{DEMO_MAX_FRAMES}, got {args.frames}")
    if args.steps is not None and not 0 <= args.steps <= limit("MAX_STEPS"):
        raise CLIError(f"--steps must be 0..{limit('MAX_STEPS')}, got {args.steps}")
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise CLIError(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
    if not has_display():
        if args.screenshot is None:
            raise CLIError(
                "no display found: run `xvfb-run -a cliprl demo --screenshot demo.png` "
                '(or `make demo DEMO_ARGS="--screenshot demo.png"`), or start it from a desktop'
            )
        if shutil.which("xvfb-run") is None or os.environ.get(_REEXEC_FLAG):
            raise CLIError(
                "--screenshot needs a display: install Xvfb (apt-get install xvfb) or run it "
                "from a desktop session"
            )
        argv = [
            "demo",
            "--screenshot",
            str(args.screenshot.resolve()),
            "--frames",
            str(args.frames),
            "--timeout",
            str(args.timeout),
        ]
        if args.steps is not None:
            argv += ["--steps", str(args.steps)]
        return _rerun_under_xvfb(argv)
    if args.screenshot is None and under_xvfb_run():
        args.screenshot = Path(DEFAULT_SCREENSHOT).resolve()
        print(
            f"cliprl demo: no real display (running under xvfb-run), so the window is saved to "
            f"{args.screenshot}; pass --screenshot PATH to choose the file"
        )
    from napari_cliprl._napari._demo import run_demo

    return run_demo(
        frames=args.frames, steps=args.steps, screenshot=args.screenshot, timeout=args.timeout
    )
