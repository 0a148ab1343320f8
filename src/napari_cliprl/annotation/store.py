"""The label-store protocol: where :func:`~napari_cliprl.annotation.run.predict_sequence`
puts the proposals of each frame, and where it reads the reviewed frames whose labels are
propagated to the others (the anchors).

Two stores exist: :class:`~napari_cliprl.annotation.session.Session` (the widget's session
folder) and :class:`~napari_cliprl.annotation.output_folder.OutputFolder` (``cliprl predict``'s
export-layout folder). Label maps are H x W uint8 class ids, 255 = ignore.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # optical flow (cv2, zarr) loads when a run propagates, not with the GUI
    from napari_cliprl.fusion.context import FrameContext


@runtime_checkable
class PredictionLike(Protocol):
    """What a predictor returns for one frame (``napari_cliprl.predictor.Prediction``)."""

    zero_shot: np.ndarray  # H x W ids: CLIP zero-shot map
    steps: list[np.ndarray]  # T + 1 maps H x W ids: 0 = decoder, t = after agent step t
    entropy: list[float]  # mean per-pixel entropy (nats) of each step


class PredictorLike(Protocol):
    """What runs a model on one frame (``napari_cliprl.predictor.Predictor``; test doubles)."""

    def predict(
        self,
        frame: np.ndarray,
        steps: int | None = None,
        key: Hashable | None = None,
        context: FrameContext | None = None,
    ) -> PredictionLike:
        """``context``: the frame's propagation context (reviewed labels carried by optical
        flow); only passed when the frame has reviewed frames around it."""
        ...


class LabelStore(Protocol):
    """Frames' proposals and reviewed labels, indexed by frame number."""

    @property
    def steps(self) -> int:
        """T: a frame's proposals are zero-shot and step 0 .. step T."""
        ...

    def needs_prediction(self, index: int) -> bool:
        """Whether frame ``index`` is to be predicted (False: its outputs exist; resume)."""
        ...

    def write_prediction(
        self,
        index: int,
        zero_shot: np.ndarray,
        steps: Sequence[np.ndarray],
        *,
        uncertainty: float | None = None,
        frame: np.ndarray | None = None,
        propagated: np.ndarray | None = None,
    ) -> None:
        """Store frame ``index``'s proposals (``frame``: its pixels, for stores that keep them;
        ``propagated``: the labels carried from reviewed frames by optical flow, the
        ``propagated`` layer; only passed when there is one)."""
        ...

    def seed_labels(self, index: int) -> np.ndarray | None:
        """Frame ``index``'s best labels: a person's correction, else its last proposal; None
        when the store has neither."""
        ...

    def is_reviewed(self, index: int) -> bool:
        """Whether a person reviewed frame ``index`` (its labels are ground truth)."""
        ...

    @property
    def reviewed(self) -> list[int]:
        """The reviewed frames, ascending: the anchors whose labels are propagated."""
        ...

    def anchor_labels(self, index: int) -> np.ndarray:
        """A reviewed frame's labels (H x W uint8), what is propagated to its neighbours."""
        ...
