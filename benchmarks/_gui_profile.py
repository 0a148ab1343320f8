"""Where a GUI run spends its time: cProfile on the main thread, a stack sampler on the others.

cProfile (per thread in Python 3.11) gives exact call counts and times of the main thread's
slots (layer refreshes, session writes made there). The sampler looks at the other threads
every ``interval`` seconds and counts, per function, the samples whose stack contains it, for
the worker threads (threads running this plugin's code). It leaves the main thread alone:
walking its frames while it formats an exception has crashed CPython 3.11 here. Even so
``sys._current_frames`` itself has crashed (a failing click: an error notification with cProfile
on), so the benchmark profiles a known-failing click without the sampler.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
import time
from collections import Counter
from typing import Any

SKIP = (  # wrappers whose cumulative time says nothing (the import machinery; and qWait)
    "<built-in method builtins.exec>",
    "<built-in method builtins.__import__>",
)
DRIVER_FILES = ("_gui_driver.py", "gui_overhead.py", "gui_responsiveness.py", "_gui_profile.py")


def short_path(filename: str) -> str:
    """A file name from its package down (``napari/layers/labels/labels.py``)."""
    for marker in ("site-packages/", "/src/", "/lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


class StackSampler:
    """Counts inclusive and innermost (self) samples per function, per kind of thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: Counter[str] = Counter()  # kind -> samples
        self.inclusive: dict[str, Counter[str]] = {"worker": Counter()}
        self.innermost: dict[str, Counter[str]] = {"worker": Counter()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stack-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        main, me = threading.main_thread().ident, threading.get_ident()  # both left alone
        while not self._stop.is_set():
            for tid, frame in sys._current_frames().items():
                if tid not in (me, main):
                    self._add("worker", frame)
            time.sleep(self.interval)

    def _add(self, kind: str, frame: Any) -> None:
        stack = []
        while frame is not None:
            code = frame.f_code
            stack.append(f"{short_path(code.co_filename)}:{code.co_name}")
            frame = frame.f_back
        if not stack:
            return
        if not any("napari_cliprl/" in s for s in stack):
            return  # an idle pool thread, the fine-tune thread of another run, ...
        self.samples[kind] += 1
        self.innermost[kind][stack[0]] += 1
        for name in set(stack):
            self.inclusive[kind][name] += 1

    def report(self, top: int = 25) -> dict[str, Any]:
        out: dict[str, Any] = {"interval_s": self.interval, "samples": dict(self.samples)}
        for kind in self.inclusive:
            n = self.samples[kind] or 1
            out[f"{kind}_inclusive"] = [
                {"function": f, "share": round(c / n, 3)}
                for f, c in self.inclusive[kind].most_common(top)
            ]
            out[f"{kind}_innermost"] = [
                {"function": f, "share": round(c / n, 3)}
                for f, c in self.innermost[kind].most_common(top)
            ]
        return out


class Profiler:
    """cProfile of the main thread plus, unless ``sample`` is False, a :class:`StackSampler`
    of the worker threads."""

    def __init__(self, sample: bool = True) -> None:
        self.cprofile = cProfile.Profile()
        self.sampler = StackSampler() if sample else None

    def start(self) -> None:
        if self.sampler is not None:
            self.sampler.start()
        self.cprofile.enable()

    def stop(self) -> None:
        self.cprofile.disable()
        if self.sampler is not None:
            self.sampler.stop()

    def report(self, top: int = 30) -> dict[str, Any]:
        sampled = self.sampler.report() if self.sampler is not None else None
        return {"main_cprofile": cprofile_top(self.cprofile, top), "sampled": sampled}


def skipped(name: str) -> bool:
    return name in SKIP or "qWait" in name


def cprofile_top(profile: cProfile.Profile, top: int) -> dict[str, list[dict]]:
    """The main thread's functions by cumulative and by own time (the driver's wait left out)."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.items():
        if filename.endswith(DRIVER_FILES) or filename.startswith("<frozen") or skipped(name):
            continue
        where = f"{short_path(filename)}:{line}({name})" if line else name
        rows.append(
            {
                "function": where,
                "ncalls": ncalls,
                "tottime_s": round(tottime, 3),
                "cumtime_s": round(cumtime, 3),
            }
        )
    by_cum = sorted(rows, key=lambda r: -r["cumtime_s"])[:top]
    by_own = sorted(rows, key=lambda r: -r["tottime_s"])[:top]
    return {"by_cumtime": by_cum, "by_tottime": by_own}
