"""Which model a run uses, and loading it: the model spec, the demo checkpoint, the
checkpoint hash and a predictor cache that survives failed loads.

The widget's Model section describes a :class:`ModelSpec`; ``cliprl predict`` builds one from
its options; both load it with :func:`load_predictor`. Nothing here imports Qt.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from napari_cliprl.devices import resolve_device
from napari_cliprl.files import read_json

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "demo_checkpoint"
FALLBACK_ARCH = "tiny-test"
RANDOM_WEIGHTS = "random"  # explicit choice of untrained CLIP weights (testing only)


class AnnotationError(RuntimeError):
    """A model or run setting that cannot work; the message is one sentence for the user."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model to run and how (what the widget's Model section describes)."""

    checkpoint: str | None = None  # checkpoint folder; None: ``arch`` with random/CLIP weights
    arch: str = FALLBACK_ARCH  # architecture when there is no checkpoint
    clip_weights: str | None = None  # open_clip tag, hf-hub id or local file (no checkpoint)
    schema: str | None = "endovis2018"  # label schema name or JSON path; None: the model's
    device: str = "auto"  # auto, cuda, cuda:N, mps or cpu
    steps: int = 3  # T: refinement steps shown as layers step 0 .. step T

    def load_key(self) -> tuple:
        """What decides which model is built (``steps`` only changes how it is run)."""
        return (self.checkpoint, self.arch, self.clip_weights, self.schema, self.device)


def demo_checkpoint() -> Path | None:
    """The shipped demo checkpoint folder, or None where it is not installed."""
    return DEMO_CHECKPOINT if (DEMO_CHECKPOINT / "config.json").is_file() else None


def default_spec(**overrides: Any) -> ModelSpec:
    """The demo checkpoint when shipped, else the tiny-test architecture with random weights."""
    ckpt = demo_checkpoint()
    spec = ModelSpec(checkpoint=str(ckpt) if ckpt else None)
    return replace(spec, **overrides)


def checkpoint_hash(folder: str | os.PathLike | None) -> str | None:
    """``sha256:<hex>`` of a checkpoint's weights file (None without a checkpoint)."""
    if folder is None:
        return None
    folder = Path(folder)
    weights = folder / "weights.safetensors"
    file = weights if weights.is_file() else folder / "config.json"
    if not file.is_file():
        return None
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def spec_architecture(spec: ModelSpec) -> str:
    """The architecture a spec runs: the checkpoint's, else ``spec.arch``."""
    if spec.checkpoint:
        try:
            config = read_json(Path(spec.checkpoint) / "config.json", "model config")
            return str(config.get("architecture") or spec.arch)
        except (OSError, ValueError, AttributeError):
            return spec.arch
    return spec.arch


def load_predictor(spec: ModelSpec) -> Any:
    """Build the model of ``spec`` and wrap it in a :class:`~napari_cliprl.predictor.Predictor`.

    A model never fine-tuned for video fusion gets the untrained fusion head
    (:func:`~napari_cliprl.model.build.add_fusion`, no side actions): on its own a frame is
    predicted exactly as before, and where reviewed frames' labels are carried to it by optical
    flow it trusts them (the decoder decides only where no side has a label) and snaps them to
    the frame's edges, which on the real clip is as good as a fine-tuned fusion head
    (docs/benchmarks.md, the ablation of the annotation loop)."""
    from napari_cliprl.model.build import add_fusion, build_model
    from napari_cliprl.predictor import Predictor

    device = resolve_device(spec.device)
    if spec.checkpoint is not None and not Path(spec.checkpoint).is_dir():
        raise AnnotationError(f"Checkpoint folder {spec.checkpoint} does not exist.")
    if spec.checkpoint is not None:
        model = build_model(checkpoint=spec.checkpoint, schema=spec.schema, device=device)
    else:
        model = build_model(
            spec.arch, clip_weights=clip_weights_of(spec), schema=spec.schema, device=device
        )
    if not model.config.fusion:  # reviewed frames' propagated labels count with any model
        add_fusion(model, side_actions=False)
    return Predictor(model, device=device)


def clip_weights_of(spec: ModelSpec) -> str | None:
    """The CLIP weights a spec without a checkpoint loads (None: random initialisation).

    A CLIP architecture needs weights: random ones paint one class over every frame, so an
    empty field is refused unless the user chose ``RANDOM_WEIGHTS`` explicitly.
    """
    weights = (spec.clip_weights or "").strip()
    if weights == RANDOM_WEIGHTS or spec.arch == FALLBACK_ARCH:
        return None if weights in ("", RANDOM_WEIGHTS) else weights
    if not weights:
        raise AnnotationError(
            f"{spec.arch} needs CLIP weights: give an open_clip tag (e.g. openai), an hf-hub: "
            "id or a local weights file, or load a checkpoint."
        )
    return weights


class PredictorCache:
    """Keeps the last built predictor so repeated runs skip model building (thread-safe).

    A failed load raises and leaves the cache as it was: the previous model stays usable.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._predictor: Any = None

    def get(self, spec: ModelSpec) -> Any:
        key = spec.load_key()
        with self._lock:
            if self._key != key or self._predictor is None:
                predictor = load_predictor(spec)  # raises before anything is replaced
                self._key, self._predictor = key, predictor
            return self._predictor

    def clear(self) -> None:
        with self._lock:
            self._key, self._predictor = None, None
