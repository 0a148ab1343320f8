"""Driving the annotator dock as a person does, and timing the main thread while it works.

Shared by ``gui_responsiveness.py`` and ``gui_overhead.py``. Controls are found by what a user
sees (button text, form-row labels, group titles), never by the widget's private attribute
names, so the same scripts measure the dock before and after a rework. Every wait has a
timeout; a modal dialog that would block the script is closed and recorded.

Qt is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import faulthandler
import os
import threading
import time
from collections.abc import Callable
from typing import Any

TICK_MS = 50  # the main-thread heartbeat; a gap above this is a freeze
STALLS_ENV = "CLIPRL_BENCH_STALLS"  # set to a file: every stall's stacks (see TickRecorder)
POLL_MS = 20  # how often a wait checks whether the work has finished
PLUGIN, DOCK = "napari-cliprl", "CLIP-RL annotator"


# -- the main-thread heartbeat -------------------------------------------------------------
class TickRecorder:
    """A QTimer on the main thread every ``TICK_MS``; the longest gap between its ticks over an
    interval is the longest time the window could not repaint or react to input."""

    def __init__(self) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.ticks: list[float] = []
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self._timer.start()
        stalls = os.environ.get(STALLS_ENV)
        if stalls:
            threading.Thread(target=self._watch, args=(stalls,), daemon=True).start()

    def _watch(self, path: str, stall_s: float = 0.3) -> None:
        """Diagnosis (``CLIPRL_BENCH_STALLS=FILE``): when the main thread has not ticked for
        ``stall_s``, append every thread's stack to FILE (faulthandler: it reads the frames
        without running Python code in the threads), once per stall."""
        with open(path, "a") as out:
            dumped_for = None
            while True:
                time.sleep(0.05)
                last = self.ticks[-1] if self.ticks else None
                if last is None or last == dumped_for:
                    continue
                if time.perf_counter() - last > stall_s:
                    out.write(f"\n=== main thread stalled {time.perf_counter() - last:.2f} s\n")
                    out.flush()
                    faulthandler.dump_traceback(out, all_threads=True)
                    dumped_for = last

    def _gaps(self, start: float, stop: float) -> list[float]:
        """Gaps between ticks in [start, stop], counting start and stop as ticks (a blocking
        call made at ``start`` counts in full)."""
        points = [start, *(t for t in self.ticks if start < t < stop), stop]
        return [b - a for a, b in zip(points, points[1:])]

    def max_gap_ms(self, start: float, stop: float) -> float:
        return 1000.0 * max(self._gaps(start, stop))

    def busy_s(self, start: float, stop: float) -> float:
        """Time the main thread could not tick: the sum of gaps beyond the tick interval."""
        return sum(max(0.0, gap - TICK_MS / 1000) for gap in self._gaps(start, stop))


def process_events(ms: int) -> None:
    """Run the Qt event loop for ``ms`` milliseconds (timers fire, widgets repaint)."""
    from qtpy.QtTest import QTest

    QTest.qWait(ms)


def wait_until(done: Callable[[], bool], timeout_s: float) -> bool:
    """Run the event loop until ``done()`` or ``timeout_s``; True when done in time."""
    deadline = time.perf_counter() + timeout_s
    while True:
        if done():
            return True
        if time.perf_counter() > deadline:
            return False
        process_events(POLL_MS)


class ModalGuard:
    """Closes any modal dialog (it would block the script forever) and records its title."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.closed: list[str] = []
        self._timer = QTimer()
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._check)
        self._timer.start()

    def _check(self) -> None:
        from qtpy.QtWidgets import QApplication, QDialog

        modal = QApplication.activeModalWidget()
        if modal is None:
            return
        self.closed.append(modal.windowTitle() or type(modal).__name__)
        if isinstance(modal, QDialog):
            modal.reject()
        else:
            modal.close()


# -- notifications -------------------------------------------------------------------------
def n_records() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


def messages_since(since: int, severity: str | None = "error") -> list[str]:
    """Notification texts since record ``since`` (``severity`` None: all of them)."""
    from napari.utils.notifications import notification_manager

    return [
        str(n.message)
        for n in notification_manager.records[since:]
        if severity is None or str(n.severity.value) == severity
    ]


# -- finding controls by what the user sees ------------------------------------------------
def _norm(text: str) -> str:
    return text.replace("&", "").replace("…", "").replace("...", "").strip().rstrip(":").lower()


def find_button(root: Any, text: str, near: Any = None) -> Any:
    """The QPushButton under ``root`` showing ``text`` (exact, else as a prefix); ``near``:
    prefer buttons in the same group box as that widget. None when there is none."""
    from qtpy.QtWidgets import QPushButton

    buttons = [b for b in root.findChildren(QPushButton) if not b.isHidden()]
    if near is not None:
        group = group_of(near)
        buttons = [b for b in buttons if group_of(b) is group] or buttons
    for match in (lambda t: t == _norm(text), lambda t: t.startswith(_norm(text))):
        found = [b for b in buttons if match(_norm(b.text()))]
        if found:
            return found[0]
    return None


def find_visible_button(text: str) -> Any:
    """A shown QPushButton anywhere in the application (e.g. on a notification toast)."""
    from qtpy.QtWidgets import QApplication, QPushButton

    for widget in QApplication.allWidgets():
        if isinstance(widget, QPushButton) and widget.isVisible():
            if _norm(widget.text()) == _norm(text):
                return widget
    return None


def group_of(widget: Any) -> Any:
    """The nearest QGroupBox around ``widget`` (its parent widget when there is none)."""
    from qtpy.QtWidgets import QGroupBox

    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QGroupBox):
        parent = parent.parentWidget()
    return parent if parent is not None else widget.parentWidget()


def form_field(root: Any, label: str, kind: type, group: str | None = None) -> Any:
    """The ``kind`` control of the form row labelled ``label`` (in group box ``group``)."""
    from qtpy.QtWidgets import QFormLayout, QGroupBox, QLabel

    for form in root.findChildren(QFormLayout):
        box = form.parentWidget()
        if group is not None and not (
            isinstance(box, QGroupBox) and _norm(box.title()) == _norm(group)
        ):
            continue
        for row in range(form.rowCount()):
            item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            widget = item.widget() if item is not None else None
            if isinstance(widget, QLabel) and _norm(widget.text()) == _norm(label):
                field = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
                found = _widgets_in(field)
                matches = [w for w in found if isinstance(w, kind)]
                if matches:
                    return matches[0]
    return None


def _widgets_in(item: Any) -> list[Any]:
    if item is None:
        return []
    if item.widget() is not None:
        return [item.widget()]
    layout = item.layout()
    if layout is None:
        return []
    return [w for i in range(layout.count()) for w in _widgets_in(layout.itemAt(i))]


def label_texts(root: Any) -> tuple[str, ...]:
    """Every QLabel text under ``root`` (what a user reads: statuses, counts)."""
    from qtpy.QtWidgets import QLabel

    return tuple(label.text() for label in root.findChildren(QLabel))


def status_of(widget: Any) -> str:
    """What ``widget``'s group box says: its label texts, without form-row captions."""
    from qtpy.QtWidgets import QFormLayout, QLabel

    group = group_of(widget)
    captions = []  # the wrappers stay alive here, so ``is`` compares the Qt objects
    for form in group.findChildren(QFormLayout):
        for row in range(form.rowCount()):
            item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            if item is not None and item.widget() is not None:
                captions.append(item.widget())
    labels = [w for w in group.findChildren(QLabel) if not any(w is c for c in captions)]
    return " | ".join(w.text() for w in labels if w.text().strip())


# -- operating controls as a user does -----------------------------------------------------
def click(button: Any) -> None:
    """Scroll ``button`` into view and click it with the left mouse button."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QScrollArea

    parent = button.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    if parent is not None:
        parent.ensureWidgetVisible(button)
    if not button.isEnabled():
        raise RuntimeError(f"button {button.text()!r} is disabled")
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def choose(combo: Any, text: str) -> None:
    """Pick ``text`` in a combo box, emitting what a user's pick emits."""
    index = combo.findText(text)
    if index < 0:
        items = [combo.itemText(i) for i in range(combo.count())]
        raise ValueError(f"no {text!r} in the combo box; it offers {items}")
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    combo.textActivated.emit(text)


def set_number(spin: Any, value: float) -> None:
    """Set a spin box as a user's edit does (valueChanged, then editingFinished)."""
    spin.setValue(value)
    spin.editingFinished.emit()


def type_into(line_edit: Any, text: str) -> None:
    """Replace a line edit's text by typing it, then press Enter."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    line_edit.setFocus()
    line_edit.selectAll()
    QTest.keyClick(line_edit, Qt.Key.Key_Delete)
    QTest.keyClicks(line_edit, text)
    QTest.keyClick(line_edit, Qt.Key.Key_Return)


def configure_dock(dock: Any, steps: int) -> dict[str, Any]:
    """Device cpu, ``steps`` refinement steps, all frames, through the dock's own controls;
    the model stays what the dock offers by default. Returns the model the dock shows."""
    from qtpy.QtWidgets import QComboBox, QLineEdit, QSpinBox

    problems = []
    for label, kind, group, value in (
        ("Device", QComboBox, "Model", "cpu"),
        ("Steps", QSpinBox, "Model", steps),
        ("Frames", QComboBox, "Data", "all frames"),
    ):
        control = form_field(dock, label, kind, group)
        try:
            if control is None:
                raise LookupError(f"no {label!r} control in the {group} section")
            choose(control, value) if kind is QComboBox else set_number(control, value)
        except (LookupError, ValueError) as e:
            problems.append(str(e))
    model: dict[str, Any] = {}
    for label, kind in (
        ("Model from", QComboBox),
        ("Checkpoint", QLineEdit),
        ("Architecture", QComboBox),
        ("Schema", QComboBox),
    ):
        control = form_field(dock, label, kind, "Model")
        if control is not None:
            model[label] = control.currentText() if kind is QComboBox else control.text()
    process_events(200)
    return {**model, "device": "cpu", "steps": steps, "problems": problems}


class ButtonCycle:
    """Work has finished for a button that starts it: the button is enabled again, and it was
    seen disabled, or its group's status text changed, or an error was notified."""

    def __init__(self, button: Any, since: int) -> None:
        self.button, self.since = button, since
        self.group = group_of(button)
        self.before = label_texts(self.group)
        self.seen_busy = False

    def __call__(self) -> bool:
        if not self.button.isEnabled():
            self.seen_busy = True
            return False
        changed = label_texts(self.group) != self.before
        return self.seen_busy or changed or bool(messages_since(self.since))


# -- measuring one action ------------------------------------------------------------------
def measure(
    ticks: TickRecorder,
    name: str,
    act: Callable[[], Any],
    done: Callable[[], bool] | None,
    *,
    timeout_s: float,
    settle_s: float = 0.3,
    driven_by: str = "click",
    status: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """Do ``act`` and wait for ``done`` (None: ``act`` is synchronous). The freeze is the
    longest tick gap from the action until ``settle_s`` after it finished; an error is the
    exception ``act`` raised, the first error notification since, or the timeout. ``status``:
    what the dock says afterwards (kept in the record)."""
    since = n_records()
    start = time.perf_counter()
    error = None
    try:
        act()
        finished = wait_until(done, timeout_s) if done is not None else True
    except Exception as e:  # noqa: BLE001 - a failing action is a result, not a crash
        error, finished = f"{type(e).__name__}: {e}", True
    stop = time.perf_counter()
    process_events(int(settle_s * 1000))
    errors = messages_since(since)
    if error is None and errors:
        error = errors[0]
    if error is None and not finished:
        error = f"timeout: not finished after {timeout_s:.0f} s"
    return {
        "action": name,
        "driven_by": driven_by,
        "ok": error is None,
        "error": error,
        "max_gap_ms": round(ticks.max_gap_ms(start, time.perf_counter()), 1),
        "wall_s": round(stop - start, 3),
        "status": status() if status is not None else None,
    }
