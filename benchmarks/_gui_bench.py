"""What the GUI benchmarks share outside Qt: provenance, the synthetic video, repeats in fresh
processes and their medians. Nothing here imports Qt or napari.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


# -- provenance ----------------------------------------------------------------------------
def source_info() -> dict[str, Any]:
    """Which source tree was imported (``napari_cliprl.__file__``), its git commit, whether the
    package has uncommitted changes, and the last commit that changed the package."""
    import napari_cliprl

    folder = Path(napari_cliprl.__file__).resolve().parent
    info: dict[str, Any] = {"source": str(folder / "__init__.py"), "commit": None, "dirty": None}
    try:
        git = ["git", "-C", str(folder)]
        info["commit"] = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=10
        )
        info["dirty"] = bool(status.stdout.strip())
        last = [*git, "log", "-1", "--format=%H", "--", "."]  # the package's own last change
        info["package_commit"] = subprocess.run(
            last, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout (an installed wheel): the path still says which tree
    return info


def ours(*names: str) -> Any:
    """The first of the modules ``names`` that the imported package has: the benchmarks measure
    today's layout and the one before the restructure (``sample`` -> ``io.sample`` etc.)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):
                raise
    raise ModuleNotFoundError(f"none of {', '.join(names)} in the imported napari_cliprl")


def synthetic_clip(**kwargs: Any) -> Any:
    return ours("napari_cliprl.io.sample", "napari_cliprl.sample").synthetic_clip(**kwargs)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_synthetic_video(folder: Path, n_frames: int, size: tuple[int, int], seed: int) -> dict:
    """A synthetic surgical-like clip (``sample.synthetic_clip``) encoded by ``io.write_video``."""
    from napari_cliprl.io import video

    clip = synthetic_clip(n_frames=n_frames, size=size, seed=seed)
    path = video.write_video(folder / f"synthetic-{n_frames}x{size[0]}x{size[1]}.mp4", clip.frames)
    return {
        "path": str(path),
        "frames": n_frames,
        "height": size[0],
        "width": size[1],
        "seed": seed,
        "codec": "mpeg4 (io.write_video default)",
    }


def ground_truth(video: dict) -> Any:
    """T x H x W label ids of the synthetic clip behind ``video`` (rendered again, same seed)."""
    size = (video["height"], video["width"])
    return synthetic_clip(n_frames=video["frames"], size=size, seed=video["seed"]).labels


# -- repeats in fresh processes ------------------------------------------------------------
def run_child(cmd: list[str], out: Path, timeout_s: float) -> dict:
    """Run ``cmd + ['--child-json', out]`` in a fresh process (cold imports, as a user meets
    them); a child that hangs is killed and whatever it saved so far is kept."""
    try:
        status: Any = subprocess.run([*cmd, "--child-json", str(out)], timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        status = "timeout"
    result = json.loads(out.read_text()) if out.is_file() else {"actions": []}
    result["exit_status"] = status
    return result


def run_with_method_retry(cmd: list[str], out: Path, timeout_s: float, retry: list[str]) -> dict:
    """:func:`run_child`; when the child says a click failed and the method behind it must be
    measured (``needs_method``), run a fresh child with ``retry`` arguments too, so that the
    method's figure is as cold as a working click's would be. Both are kept."""
    result = run_child(cmd, out, timeout_s)
    if not result.get("needs_method"):
        return result
    print("  the click failed: measuring the method in a fresh process", file=sys.stderr)
    second = run_child([*cmd, *retry], out.with_name(f"{out.stem}-method.json"), timeout_s)
    second["click_run"] = result
    clicks, actions = result.get("actions", []), second.get("actions", [])
    names = [a["action"] for a in actions]
    at = names.index(clicks[-1]["action"]) if clicks and clicks[-1]["action"] in names else 0
    second["actions"] = [*actions[:at], *clicks, *actions[at:]]  # the click beside its method
    return second


def median_actions(runs: Iterable[list[dict]]) -> list[dict]:
    """Per (action, driven_by): medians of max_gap_ms and wall_s, ok only if ok every time."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for actions in runs:
        for a in actions:
            groups.setdefault((a["action"], a["driven_by"]), []).append(a)
    out = []
    for (name, driven_by), items in groups.items():
        errors = [a["error"] for a in items if a["error"]]
        out.append(
            {
                "action": name,
                "driven_by": driven_by,
                "ok": not errors,
                "error": errors[0] if errors else None,
                "max_gap_ms": round(statistics.median(a["max_gap_ms"] for a in items), 1),
                "wall_s": round(statistics.median(a["wall_s"] for a in items), 3),
                "n": len(items),
                "n_ok": len(items) - len(errors),
                "max_gap_ms_each": [a["max_gap_ms"] for a in items],
                "wall_s_each": [a["wall_s"] for a in items],
                "status": items[-1].get("status"),
            }
        )
    return out


def save_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
