"""Kill ``cliprl predict --save-frames`` and ``cliprl finetune`` with SIGKILL at random points,
over and over, and check what they leave on disk, as JSON.

    OMP_NUM_THREADS=1 python benchmarks/kill_safety.py --predict 20 --finetune 10 --json out.json

Each run is the console script, as a user starts it. What must hold after every kill:

``predict`` (an output folder seeded, as the widget's export leaves it, with two frames a
person reviewed; cycles alternate a resumed run, which propagates from the reviewed frames and
keeps them, and an ``--overwrite --no-propagate`` run, which replaces them):

- every label file has its frame image (the image is written first);
- a label file exists only once manifest.json does, and the manifest marks a frame reviewed
  only while its label is still the one the person reviewed;
- the next complete run exits 0, leaves no temporary file, and the folder is exactly what an
  uninterrupted run of the same kind writes (labels, frames, reviewed flags).

``finetune`` (an export whose unreviewed frames have label files that cannot be read: any
attempt to train on one fails the run):

- the checkpoint folder is absent, a complete checkpoint that ``build_model`` loads, or (where
  training marks a run in progress as not a usable model) that run's complete state;
- no run fails on an unreviewed frame; the last kill's state, continued with ``--resume``
  (or started afresh), ends as a checkpoint ``build_model`` loads.

The test suite runs a handful of iterations (tests/test_kill_safety.py); this script more.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLIPRL = Path(sys.executable).parent / "cliprl"
PREDICT = ["--arch", "tiny-test", "--device", "cpu", "--quiet", "--steps", "1", "--save-frames"]
FINETUNE = ["--arch", "tiny-test", "--epochs", "1", "--rl-iters", "2", "--imitation-iters", "2"]
FINETUNE += ["--device", "cpu", "--quiet"]
REVIEWED = ("frame000", "frame001")  # frames of the seeded folder a person reviewed
TEMPORARY = re.compile(r"^(\.cliprl-tmp-.*|\..+\.(png|json)\.[A-Za-z0-9_]{8}\.tmp)$")


def start(*args: Any) -> subprocess.Popen:
    """The console script, its output kept for the report."""
    return subprocess.Popen(
        [str(CLIPRL), *map(str, args)],
        env=os.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_killed(args: list[Any], ready: Callable[[], bool], delay: float) -> tuple[int, str]:
    """Start ``cliprl args`` and SIGKILL it ``delay`` seconds after ``ready()`` first holds
    (polled every 2 ms), unless it ended first: (exit status, stderr)."""
    proc = start(*args)
    while proc.poll() is None and not ready():
        time.sleep(0.002)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    return proc.returncode, err


def files_since(folders: list[Path], since: float) -> int:
    """Files under ``folders`` written at or after ``since`` (time.time())."""
    count = 0
    for folder in folders:
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    count += entry.stat().st_mtime >= since and entry.name.endswith(".png")
    return count


def written(out: Path, target: int) -> Callable[[], bool]:
    """A ``ready`` that holds once this run wrote its manifest and ``target`` PNG files."""
    since = time.time() - 0.001

    def ready() -> bool:
        try:
            started = (out / "manifest.json").stat().st_mtime >= since
        except OSError:
            return False
        return started and files_since([out / "labels", out / "left_frames"], since) >= target

    return ready


def saving(ckpt: Path) -> Callable[[], bool]:
    """A ``ready`` that holds once this run starts writing a checkpoint beside ``ckpt``."""
    since = time.time() - 0.001

    def ready() -> bool:
        for path in ckpt.parent.glob(f".{ckpt.name}.*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime >= since:
                    return True
        return False

    return ready


def after(seconds: float) -> Callable[[], bool]:
    """A ``ready`` that holds ``seconds`` from now."""
    end = time.perf_counter() + seconds
    return lambda: time.perf_counter() >= end


def run_complete(args: list[Any], watch: Path | None = None) -> tuple[int, str, float, float]:
    """Run ``cliprl args`` to its end: (exit status, stderr, seconds, seconds until ``watch``
    existed: when writing began; 0 without ``watch``)."""
    begin = time.perf_counter()
    proc = start(*args)
    first = 0.0
    while watch is not None and not first and proc.poll() is None:
        if watch.exists():
            first = time.perf_counter() - begin
        time.sleep(0.005)
    _, err = proc.communicate(timeout=1800)
    return proc.returncode, err, time.perf_counter() - begin, first


def digests(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (lock file excluded)."""
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".cliprl.lock"
    }


def temporaries(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if TEMPORARY.match(p.name)]


# -- cliprl predict --save-frames ----------------------------------------------------------------
def seed_folder(folder: Path, seq: Path) -> dict[str, str]:
    """An export with the ground truth of REVIEWED marked reviewed; returns their label digests."""
    from napari_cliprl.io.export import make_manifest, write_labels
    from napari_cliprl.io.sample import synthetic_clip

    clip = synthetic_clip(n_frames=len(REVIEWED), seed=3)
    manifest = make_manifest(
        (seq / "left_frames").resolve(), clip.schema, [(n, k, True) for k, n in enumerate(REVIEWED)]
    )
    write_labels(
        folder,
        dict(zip(REVIEWED, clip.labels)),
        clip.schema,
        images=dict(zip(REVIEWED, clip.frames)),
        manifest=manifest,
    )
    return {n: digests(folder)[f"labels/{n}.png"] for n in REVIEWED}


def export_violations(out: Path, reviewed: dict[str, str]) -> list[str]:
    """What a kill must never leave (see the module doc); [] when all holds."""
    problems = []
    labels = sorted((out / "labels").glob("*.png")) if (out / "labels").is_dir() else []
    for label in labels:
        if not (out / "left_frames" / label.name).is_file():
            problems.append(f"{label}: label without its frame image")
    manifest_file = out / "manifest.json"
    if labels and not manifest_file.is_file():
        problems.append(f"{out}: label files but no manifest.json")
    if manifest_file.is_file():
        try:
            manifest = json.loads(manifest_file.read_text())
        except ValueError as e:
            return [*problems, f"{manifest_file}: half-written ({e})"]
        files = digests(out)
        for frame in manifest.get("frames", []):
            name = frame["name"]
            if frame.get("reviewed") and files.get(f"labels/{name}.png") != reviewed.get(name):
                problems.append(f"{manifest_file}: {name} marked reviewed, its label is not")
    return problems


def kill_predict(work: Path, iterations: int, seed: int = 0, frames: int = 12) -> dict[str, Any]:
    """``iterations`` cycles: seed a folder, kill 1-3 runs at random times, complete it."""
    from napari_cliprl.io.sample import write_sample_sequence

    rng = random.Random(seed)
    seq = write_sample_sequence(work / "seq", n_frames=frames, seed=seed)
    reference = work / "reference"
    code, err, total, first = run_complete(
        ["predict", seq, "--out", reference, *PREDICT], watch=reference / "manifest.json"
    )
    if code != 0:
        raise RuntimeError(f"reference run failed: {err.strip()}")
    anchored = work / "reference-anchored"  # what a resumed run must end as: seeded, then run
    seed_folder(anchored, seq)
    code, err, _, _ = run_complete(["predict", seq, "--out", anchored, *PREDICT])
    if code != 0:
        raise RuntimeError(f"reference run failed: {err.strip()}")
    want = {False: digests(anchored), True: digests(reference)}  # by overwrite
    report: dict[str, Any] = {"runs": 0, "kills": 0, "finished_before_kill": 0, "violations": []}
    report["reference_seconds"] = round(total, 2)
    report["reference_seconds_to_manifest"] = round(first, 2)
    report["killed_with_frames_written"] = dict.fromkeys(("none", "some", "all"), 0)
    for cycle in range(iterations):
        out = work / f"out{cycle}"
        reviewed = seed_folder(out, seq)
        overwrite = cycle % 2 == 1
        # resumed runs propagate from the reviewed frames (kept, as anchors); overwriting runs
        # predict every frame on its own and replace the reviewed labels, clearing their flags
        mode = ["--overwrite", "--no-propagate"] if overwrite else []
        args = ["predict", seq, "--out", out, *PREDICT, *mode]
        for _ in range(rng.randint(1, 3)):
            # kill when a random number of this run's files (0 .. all) are on disk, then a
            # few milliseconds later: any point of the writing, whatever the machine's load
            ready = written(out, rng.randint(0, 2 * frames))
            code, err = run_killed(args, ready, rng.uniform(0.0, 0.03))
            report["runs"] += 1
            report["kills"] += code == -signal.SIGKILL
            if code == -signal.SIGKILL:
                done = _frames_written(out, reviewed, frames)
                report["killed_with_frames_written"][done] += 1
            report["finished_before_kill"] += code == 0
            if code not in (0, -signal.SIGKILL):
                report["violations"].append(f"cycle {cycle}: exit {code}: {err.strip()[-300:]}")
            report["violations"] += [
                f"cycle {cycle}: {p}" for p in export_violations(out, reviewed)
            ]
        code, err, _, _ = run_complete(args)
        report["runs"] += 1
        report["violations"] += _final_export_violations(
            out, code, err, want[overwrite], reviewed, overwrite
        )
    return report


def _frames_written(out: Path, reviewed: dict[str, str], frames: int) -> str:
    """ "none", "some" or "all": how many frames' labels this run wrote so far."""
    files = digests(out)
    done = sum(
        1
        for k in range(frames)
        if files.get(f"labels/frame{k:03d}.png", reviewed.get(f"frame{k:03d}"))
        != reviewed.get(f"frame{k:03d}")
    )
    return "none" if done == 0 else "all" if done == frames else "some"


def _final_export_violations(
    out: Path, code: int, err: str, want: dict[str, str], reviewed: dict[str, str], overwrite: bool
) -> list[str]:
    """After the completing run: exit 0, no temporaries, the files and flags of an
    uninterrupted run (in a resumed folder, the reviewed frames are the person's)."""
    if code != 0:
        return [f"{out}: the completing run failed ({err.strip()[-300:]})"]
    problems = [f"{t}: temporary file left" for t in temporaries(out)]
    expected = {k: v for k, v in want.items() if k.startswith(("labels/", "left_frames/"))}
    got = {k: v for k, v in digests(out).items() if k.startswith(("labels/", "left_frames/"))}
    if not overwrite:  # the reviewed frames were skipped: their files are the person's
        for name in REVIEWED:
            expected[f"labels/{name}.png"] = reviewed[name]
            expected[f"left_frames/{name}.png"] = got.get(f"left_frames/{name}.png", "missing")
    if got != expected:
        differ = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
        problems.append(f"{out}: files differ from an uninterrupted run: {differ[:5]}")
    manifest = json.loads((out / "manifest.json").read_text())
    flags = {f["name"]: f["reviewed"] for f in manifest["frames"]}
    names = sorted(Path(k).stem for k in expected if k.startswith("labels/"))
    if flags != {n: (n in REVIEWED and not overwrite) for n in names}:
        problems.append(f"{out}: manifest flags {flags}")
    return problems


# -- cliprl finetune -----------------------------------------------------------------------------
def training_export(folder: Path, n: int = 8, reviewed: int = 5) -> Path:
    """An export whose first ``reviewed`` frames are reviewed; the label files of the others
    hold a colour of no class, so a run that reads one fails."""
    from PIL import Image

    from napari_cliprl.io.export import make_manifest, write_labels
    from napari_cliprl.io.sample import synthetic_clip

    clip = synthetic_clip(n_frames=n, size=(64, 80), seed=5)
    names = [f"frame{k:03d}" for k in range(n)]
    frames = [(name, k, k < reviewed) for k, name in enumerate(names)]
    write_labels(
        folder,
        dict(zip(names, clip.labels)),
        clip.schema,
        images=dict(zip(names, clip.frames)),
        manifest=make_manifest("", clip.schema, frames),
    )
    for name in names[reviewed:]:
        Image.new("RGB", (80, 64), (1, 2, 3)).save(folder / "labels" / f"{name}.png")
    return folder


def checkpoint_state(ckpt: Path) -> tuple[str, list[str]]:
    """("absent" | "model" | "unfinished", violations) of the checkpoint folder ``ckpt``.

    "model": ``build_model`` loads it. "unfinished": a run's complete training state that
    ``build_model`` refuses on purpose (its config.json says ``"unfinished"``) and
    ``--resume`` continues. Anything else (half a folder, a broken file) is a violation.
    """
    if not ckpt.exists():
        return "absent", []
    from napari_cliprl.model.build import build_model

    try:
        build_model(checkpoint=ckpt, device="cpu")
        return "model", []
    except Exception as e:  # noqa: BLE001 - any failure to load is what this reports
        problem = f"{ckpt}: not a loadable checkpoint ({type(e).__name__}: {e})"
    try:
        config = json.loads((ckpt / "config.json").read_text())
        json.loads((ckpt / "train_state.json").read_text())
    except (OSError, ValueError):
        return "broken", [problem]
    if isinstance(config, dict) and config.get("unfinished"):
        return "unfinished", []
    return "broken", [problem]


def kill_finetune(work: Path, iterations: int, seed: int = 0) -> dict[str, Any]:
    """Reference run, then ``iterations`` runs killed at random times, then a complete one."""
    rng = random.Random(seed)
    data = training_export(work / "export")
    ckpt = work / "ckpt"
    report: dict[str, Any] = {"runs": 1, "kills": 0, "finished_before_kill": 0, "violations": []}
    report["after_kill"] = {"absent": 0, "model": 0, "unfinished": 0, "broken": 0}
    code, err, total, first = run_complete(
        ["finetune", "--data", data, "--out", ckpt, *FINETUNE], watch=ckpt
    )
    if code != 0:
        raise RuntimeError(f"reference run failed: {err.strip()}")
    report["reference_seconds"] = round(total, 2)
    report["reference_seconds_to_checkpoint"] = round(first, 2)
    for k in range(iterations):
        resume = (ckpt / "train_state.json").is_file() and rng.random() < 0.5
        mode = ["--resume"] if resume else (["--overwrite"] if ckpt.exists() else [])
        if rng.random() < 0.5:  # while a checkpoint is being written and swapped in
            ready, delay = saving(ckpt), rng.uniform(0.0, 0.2)
        else:
            ready, delay = after(rng.uniform(0.5 * first, 1.05 * total)), 0.0
        code, err = run_killed(
            ["finetune", "--data", data, "--out", ckpt, *FINETUNE, *mode], ready, delay
        )
        report["runs"] += 1
        report["kills"] += code == -signal.SIGKILL
        report["finished_before_kill"] += code == 0
        if code not in (0, -signal.SIGKILL):
            report["violations"].append(
                f"run {k} ({' '.join(mode)}): exit {code}: {err.strip()[-300:]}"
            )
        state, problems = checkpoint_state(ckpt)
        report["after_kill"][state] += 1
        report["violations"] += [f"run {k}: {p}" for p in problems]
    # the last kill's state is continued (or started afresh) and must end as a model
    resume = (ckpt / "train_state.json").is_file()
    mode = ["--resume"] if resume else (["--overwrite"] if ckpt.exists() else [])
    code, err, _, _ = run_complete(["finetune", "--data", data, "--out", ckpt, *FINETUNE, *mode])
    report["runs"] += 1
    report["final_run"] = " ".join(mode) or "fresh"
    if code != 0:
        report["violations"].append(f"final run: exit {code}: {err.strip()[-300:]}")
    state, problems = checkpoint_state(ckpt)
    report["violations"] += problems if state == "model" else [*problems, f"{ckpt}: ends {state}"]
    report["left_beside_checkpoint"] = sorted(
        p.name for p in work.iterdir() if p.name.startswith(f".{ckpt.name}.")
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predict", type=int, default=20, help="predict cycles")
    parser.add_argument("--finetune", type=int, default=10, help="killed finetune runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "p").mkdir(), (work / "f").mkdir()
        result = {
            "benchmark": "kill_safety",
            "predict": kill_predict(work / "p", args.predict, args.seed) if args.predict else None,
            "finetune": kill_finetune(work / "f", args.finetune, args.seed)
            if args.finetune
            else None,
        }
        shutil.rmtree(work / "p", ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - begin, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    failed = any(r and r["violations"] for r in (result["predict"], result["finetune"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
