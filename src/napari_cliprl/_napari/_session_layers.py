"""The viewer layers of a session: read-only proposals and the editable ``corrected``.

Layers display the session's zarr arrays directly (a frame is read when it is shown, an edit
goes straight to disk). Adding a napari layer costs 0.1-0.3 s of main-thread time, so
:meth:`SessionLayers.sync` is a generator that does one layer operation per step: the
controller runs one step per event-loop turn and the window never freezes for the whole set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels
from napari.utils.events import Event

from napari_cliprl.annotation.session_info import CORRECTED, PROPAGATED
from napari_cliprl.steps import ZERO_SHOT_LABEL, step_of

from ._layers import copy_layer_kwargs, schema_layer_kwargs

if TYPE_CHECKING:  # the session (zarr) loads with the first run, not with the dock
    from napari_cliprl.annotation.session import Session

SESSION_DIR_KEY = "cliprl_session_dir"  # layer.metadata key: the session a layer shows

History = Callable[[list[Any]], None]


def is_session_layer_name(name: str) -> bool:
    """Names the annotator owns: ``propagated``, ``zero-shot``, ``step N``, ``corrected``."""
    return name in (PROPAGATED, ZERO_SHOT_LABEL, CORRECTED) or (
        name.startswith("step ") and step_of(name) is not None
    )


def layer_order(session: Session) -> list[str]:
    """The session's layers, bottom to top, after the image (and any ground truth):
    ``propagated`` (only once the session has one), ``zero-shot``, ``step 0`` .. ``step T``,
    ``corrected``. The one statement of the order (tests compare with it)."""
    return [*([PROPAGATED] if session.has_propagated else []), *session.layer_names]


def painted_frames(atoms: Iterable[Any]) -> set[int]:
    """Frame indices (axis 0) touched by the history atoms of a Labels edit.

    napari 0.9 records ``_MaskedPaintAtom(slice_key, ...)`` for brush/fill/polygon edits and
    ``(indices, old_values, new_values)`` tuples for :meth:`Labels.data_setitem`.
    """
    frames: set[int] = set()
    for atom in atoms:
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            if isinstance(first, slice):
                frames.update(range(first.start or 0, first.stop))
            else:
                frames.add(int(first))
            continue
        indices = atom[0]
        first = indices[0] if isinstance(indices, tuple) else indices
        frames.update(int(i) for i in np.unique(np.asarray(first)))
    return frames


class CorrectedLabels(Labels):
    """The editable ``corrected`` layer: a Labels layer that also reports undo and redo.

    napari emits ``events.paint`` with the history item of every edit, but nothing when an
    edit is undone (Ctrl+Z) or redone; this layer emits ``events.undone`` / ``events.redone``
    with the item, so that the review marks an edit made can be taken back with it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events.add(undone=Event, redone=Event)

    @property
    def _type_string(self) -> str:
        return "labels"  # writers, menus and icons treat it as the Labels layer it is

    def undo(self) -> None:
        item = _last(self._undo_history)
        super().undo()
        if item is not None:
            self.events.undone(value=item)

    def redo(self) -> None:
        item = _last(self._redo_history)
        super().redo()
        if item is not None:
            self.events.redone(value=item)


def _last(history: Any) -> list[Any] | None:
    return list(history[-1]) if len(history) else None


class SessionLayers:
    """The layers of ``session`` in ``viewer`` in the order of :func:`layer_order`, after the
    image (and ground truth): see :meth:`sync`. ``propagated`` (the reviewed frames' labels
    carried by optical flow, 255 = nothing carried: transparent) is read-only like the
    proposals."""

    def __init__(
        self,
        viewer: Any,
        session: Session,
        *,
        scale: tuple[float, ...] | None = None,
        on_edit: History | None = None,
        on_undo: History | None = None,
        on_redo: History | None = None,
    ) -> None:
        self.viewer = viewer
        self.session = session
        self.scale = scale
        self.layers: dict[str, Labels] = {}
        self._handlers = {"paint": on_edit, "undone": on_undo, "redone": on_redo}
        self._links: list[tuple[Labels, Any, Callable[[Any], None]]] = []

    @property
    def corrected(self) -> Labels | None:
        return self.layers.get(CORRECTED)

    def is_complete(self) -> bool:
        """Every layer of the session is in the viewer, in order (nothing left to sync)."""
        return next(iter(self._operations()), None) is None

    def sync(self) -> Iterator[str]:
        """Bring the viewer to the session's layers, one operation per step (yields what it
        did): remove layers of other sessions and surplus ``step N`` layers, add missing ones,
        then move them into order."""
        while True:
            operation = next(iter(self._operations()), None)
            if operation is None:
                return
            yield operation()

    def _operations(self) -> Iterator[Callable[[], str]]:
        wanted = layer_order(self.session)
        ours = set(map(id, self.layers.values()))
        for layer in list(self.viewer.layers):
            if not is_session_layer_name(layer.name):
                continue
            if id(layer) not in ours or layer.name not in wanted:
                yield lambda layer=layer: self._remove(layer)
        for name in wanted:
            if name not in self.layers or self.layers[name] not in self.viewer.layers:
                yield lambda name=name: self._add(name)
        order = [self.layers[n] for n in wanted]
        start = len(self.viewer.layers) - len(order)
        for k, layer in enumerate(order):
            index = self.viewer.layers.index(layer)
            if index != start + k:
                yield lambda index=index, k=k: self._move(index, start + k)

    def _remove(self, layer: Labels) -> str:
        if self.layers.get(layer.name) is layer:
            self._disconnect(layer)
            del self.layers[layer.name]
        self.viewer.layers.remove(layer)
        return f"removed {layer.name}"

    def _add(self, name: str) -> str:
        kwargs = copy_layer_kwargs(schema_layer_kwargs(self.session.schema))
        kwargs["metadata"][SESSION_DIR_KEY] = str(self.session.folder)
        data = self.session.array(name)
        if name == CORRECTED:
            layer: Labels = CorrectedLabels(data, name=name, scale=self.scale, **kwargs)
        else:
            layer = Labels(data, name=name, scale=self.scale, visible=False, **kwargs)
            layer.editable = False
        old = self.layers.get(name)
        if old is not None:
            self._disconnect(old)
        self.layers[name] = layer
        self.viewer.add_layer(layer)
        self._connect(layer)
        return f"added {name}"

    def _move(self, index: int, target: int) -> str:
        self.viewer.layers.move(index, target)
        return "moved"

    def _connect(self, layer: Labels) -> None:
        if not isinstance(layer, CorrectedLabels):
            return
        for event, handler in self._handlers.items():
            if handler is not None:
                emitter, callback = getattr(layer.events, event), _atoms(handler)
                emitter.connect(callback)
                self._links.append((layer, emitter, callback))

    def _disconnect(self, layer: Labels) -> None:
        for link in [link for link in self._links if link[0] is layer]:
            self._links.remove(link)
            link[1].disconnect(link[2])

    def detach(self) -> None:
        """Stop reporting edits (the layers stay in the viewer until another session syncs)."""
        for layer in list(self.layers.values()):
            self._disconnect(layer)

    def current_frame(self) -> int:
        step = self.viewer.dims.current_step
        return int(step[0]) if len(step) >= 3 else 0

    def refresh_frame(self, frames: Iterable[int]) -> None:
        """Redraw the layers when the frame on screen is among ``frames`` (hidden layers
        redraw themselves when shown)."""
        if self.current_frame() in set(frames):
            self.refresh()

    def refresh(self) -> None:
        for layer in self.layers.values():
            if layer in self.viewer.layers:
                layer.refresh()


def _atoms(handler: History) -> Callable[[Any], None]:
    def callback(event: Any) -> None:
        handler(list(event.value))

    return callback
