"""Predictor: numpy frames in, one label map per refinement step out, with a feature cache.

The backbone runs once per frame: its features are kept in a bounded LRU cache keyed by the
frame (``key``, or a hash of its pixels) and by the backbone's fingerprint, so re-running the
agent with another number of steps, or after the decoder/agent were fine-tuned, skips it.
The predictor never opens files (see ``model.build.build_model`` for that).  It runs the one
inference path of ``model.inference`` (the one ``cliprl evaluate`` measures).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from napari_cliprl.config import check_steps
from napari_cliprl.devices import resolve_device
from napari_cliprl.model.backbone import Features
from napari_cliprl.model.cliprl import CLIPRL, CLIPRLOutput
from napari_cliprl.model.inference import (
    inference_context,
    predict_logits,
    prior_logits,
    upsample_labels,
)
from napari_cliprl.model.policy import entropy as entropy_map
from napari_cliprl.schemas import LabelSchema
from napari_cliprl.steps import ZERO_SHOT_KEY

PRIOR_WEIGHT = 0.125  # logit added to the prior's class; chosen on held-out frames (benchmarks.md)
ProgressCallback = Callable[..., None]  # progress(done, total, message="")
StopCallback = Callable[[], bool]


class Prediction:
    """The result for one frame (label maps are H x W uint8 class ids at the frame's size).

    zero_shot: CLIP zero-shot labels.  steps: T + 1 maps, 0 = decoder, t = after agent step t.
    labels: the last step's map.  entropy: mean per-pixel entropy (nats) of each step.
    actions: T maps of action ids on the stride-4 grid (H/4 x W/4 of the model input).
    probabilities: K x h x w float32 softmax of the last step (model resolution), if asked.
    cached: whether the backbone features came from the cache.
    seconds: wall time of "backbone", "decoder", "agent" (and "labels" once computed).

    Label maps are upsampled from the model's logits on first access and then kept, so a
    caller that reads only ``labels`` pays for one full-resolution map, not T + 2.
    """

    def __init__(
        self,
        *,
        logits: list[torch.Tensor],  # T + 1 tensors K x h x w (CPU, float32)
        zero_shot_logits: torch.Tensor,  # K x h' x w' (patch grid)
        size: tuple[int, int],
        entropy: list[float],
        actions: list[np.ndarray] | None = None,
        probabilities: np.ndarray | None = None,
        cached: bool = False,
        seconds: dict[str, float] | None = None,
    ) -> None:
        self._logits = logits
        self._zero_shot_logits = zero_shot_logits
        self._maps: dict[int | str, np.ndarray] = {}
        self.size = (int(size[0]), int(size[1]))
        self.entropy = entropy
        self.actions = actions or []
        self.probabilities = probabilities
        self.cached = cached
        self.seconds = seconds or {}

    def _map(self, which: int | str) -> np.ndarray:
        if which not in self._maps:
            start = time.perf_counter()
            source = self._zero_shot_logits if which == ZERO_SHOT_KEY else self._logits[which]
            self._maps[which] = upsample_labels(source, self.size)
            self.seconds["labels"] = self.seconds.get("labels", 0.0) + time.perf_counter() - start
        return self._maps[which]

    @property
    def zero_shot(self) -> np.ndarray:
        return self._map(ZERO_SHOT_KEY)

    @property
    def steps(self) -> list[np.ndarray]:
        return [self._map(t) for t in range(len(self._logits))]

    @property
    def labels(self) -> np.ndarray:
        """The last step's labels (what a user exports)."""
        return self._map(len(self._logits) - 1)

    @property
    def num_steps(self) -> int:
        """T: the number of agent steps."""
        return len(self._logits) - 1

    def __repr__(self) -> str:
        return f"Prediction(size={self.size}, steps={self.num_steps}, cached={self.cached})"


def as_rgb_frame(frame: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 from H x W (grey), H x W x 1, H x W x 3 or H x W x 4 (RGBA) uint8.

    Other dtypes or shapes raise ValueError naming what was given.
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"a frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 (0-255), got dtype {frame.dtype}; convert with "
            "skimage.util.img_as_ubyte or (frame * 255).astype(np.uint8)"
        )
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4) or min(frame.shape[:2]) < 1:
        raise ValueError(
            f"a frame must be H x W, H x W x 1, H x W x 3 or H x W x 4, got shape {frame.shape}"
        )
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    elif frame.shape[-1] == 4:
        frame = frame[..., :3]
    return np.ascontiguousarray(frame)


def frame_key(frame: np.ndarray) -> str:
    """Cache key from the pixels (blake2b of shape and bytes)."""
    h = hashlib.blake2b(repr(frame.shape).encode(), digest_size=16)
    h.update(np.ascontiguousarray(frame).data)
    return h.hexdigest()


class Predictor:
    """Runs a CLIPRL on numpy frames.

    Arguments (``model`` positional, the rest keyword-only):
        model: a built CLIPRL (``build_model``); moved to ``device``.
        cache_size: number of frames whose backbone features are kept (LRU; 0 disables).
        device: "auto"/None (cuda, then mps, then cpu), or a device name.
    """

    def __init__(
        self, model: CLIPRL, *, cache_size: int = 64, device: str | torch.device | None = None
    ) -> None:
        self.device = resolve_device(device)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[Hashable, Features] = OrderedDict()
        self.model = model

    @property
    def model(self) -> CLIPRL:
        return self._model

    @model.setter
    def model(self, model: CLIPRL) -> None:
        """Swap in another model; cached features stay valid while its backbone is the same."""
        self._model = model.to(self.device).eval()

    @property
    def schema(self) -> LabelSchema:
        return self._model.schema

    def clear_cache(self) -> None:
        self._cache.clear()

    def cache_len(self) -> int:
        return len(self._cache)

    def predict(
        self,
        frame: np.ndarray,
        steps: int | None = None,
        key: Hashable | None = None,
        prior: np.ndarray | None = None,
        prior_weight: float | None = None,
        *,
        return_probabilities: bool = False,
    ) -> Prediction:
        """Labels for one frame (H x W x 3 uint8; grey and RGBA are converted).

        steps: agent steps T (default: the model's T*; at most limits.MAX_STEPS).
        key: names the frame in the feature cache, e.g. ``(source_path, index)``; default: a
        hash of its pixels. prior: H' x W' class ids (any size; ignore index = no opinion),
        e.g. the previous frame's corrected labels for video propagation: ``prior_weight``
        (None: ``PRIOR_WEIGHT``) is added to the decoder logit of the prior's class in every
        cell before the agent runs.
        """
        return self.predict_batch(
            [frame],
            steps,
            None if key is None else [key],
            None if prior is None else [prior],
            prior_weight,
            return_probabilities=return_probabilities,
        )[0]

    def predict_batch(
        self,
        frames: Sequence[np.ndarray],
        steps: int | None = None,
        keys: Sequence[Hashable] | None = None,
        priors: Sequence[np.ndarray | None] | None = None,
        prior_weight: float | None = None,
        *,
        return_probabilities: bool = False,
    ) -> list[Prediction]:
        """``predict`` for several frames, batching the network (frames may differ in size)."""
        frames = [as_rgb_frame(f) for f in frames]
        if keys is not None and len(keys) != len(frames):
            raise ValueError(f"{len(keys)} keys for {len(frames)} frames")
        if priors is not None and len(priors) != len(frames):
            raise ValueError(f"{len(priors)} priors for {len(frames)} frames")
        steps = check_steps(self._model.config.steps if steps is None else steps)
        prior = None
        if priors is not None:
            prior = prior_logits(
                priors,
                num_classes=self._model.num_classes,
                ignore_index=self._model.schema.ignore_index,
                grid=self._model.logits_size,
                weight=PRIOR_WEIGHT if prior_weight is None else float(prior_weight),
            )
        keys = list(keys) if keys is not None else [frame_key(f) for f in frames]
        start = time.perf_counter()
        features, cached = self._features(frames, keys)
        backbone = time.perf_counter() - start
        seconds: dict[str, float] = {}
        out = predict_logits(
            self._model, features=features, steps=steps, prior=prior, seconds=seconds
        )
        seconds["backbone"] = backbone
        return [
            self._prediction(out, i, frame, cached[i], seconds, return_probabilities)
            for i, frame in enumerate(frames)
        ]

    def _prediction(
        self,
        out: CLIPRLOutput,
        i: int,
        frame: np.ndarray,
        cached: bool,
        seconds: dict[str, float],
        probabilities: bool,
    ) -> Prediction:
        """Frame ``i`` of a batch's output (logits moved to the CPU; labels come lazily)."""
        n = out.zero_shot.shape[0]
        logits = [lg[i].detach().float().cpu() for lg in out.logits]
        pred = Prediction(
            logits=logits,
            zero_shot_logits=out.zero_shot[i].detach().float().cpu(),
            size=frame.shape[:2],
            entropy=[float(entropy_map(lg[None]).mean()) for lg in logits],
            actions=[a[i].to(torch.uint8).cpu().numpy() for a in out.actions],
            cached=cached,
            seconds={k: v / n for k, v in seconds.items()},
        )
        if probabilities:
            pred.probabilities = F.softmax(logits[-1], 0).numpy()
        return pred

    def _features(
        self, frames: list[np.ndarray], keys: list[Hashable]
    ) -> tuple[Features, list[bool]]:
        """Features for every frame: cached ones looked up, the others encoded in one batch."""
        fingerprint = self._model.backbone_fingerprint()
        found: dict[int, Features] = {}
        for i, key in enumerate(keys):
            entry = self._cache.get((fingerprint, key))
            if entry is not None:
                self._cache.move_to_end((fingerprint, key))
                found[i] = entry
        missing = [i for i in range(len(frames)) if i not in found]
        if missing:
            with inference_context(self.device):
                images = torch.cat(
                    [self._model.preprocess(torch.from_numpy(frames[i])[None]) for i in missing]
                )
                encoded = self._model.encode(images)
            for j, i in enumerate(missing):
                found[i] = encoded.index(j)
                self._store((fingerprint, keys[i]), found[i])
        ordered = [found[i] for i in range(len(frames))]
        return Features.cat(ordered), [i not in missing for i in range(len(frames))]

    def _store(self, key: Hashable, features: Features) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = Features(
            [m.clone() for m in features.maps], features.dense.clone(), features.image_size
        )
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def predict_frames(
        self,
        source: Sequence[np.ndarray],
        indices: Iterable[int] | None = None,
        steps: int | None = None,
        progress: ProgressCallback | None = None,
        should_stop: StopCallback | None = None,
        batch_size: int = 1,
    ) -> Iterator[tuple[int, Prediction]]:
        """Yield ``(index, Prediction)`` over a FrameSource (or any sequence of frames).

        progress(done, total, message) is called after each batch; should_stop() is checked
        before each batch and ends the iteration early when it returns True.
        Cache keys are ``(source.path, index)`` where the source has a path.
        """
        order = list(range(len(source)) if indices is None else indices)
        origin = str(getattr(source, "path", id(source)))
        total = len(order)
        for start in range(0, total, max(1, batch_size)):
            if should_stop is not None and should_stop():
                return
            batch = order[start : start + max(1, batch_size)]
            preds = self.predict_batch(
                [source[i] for i in batch], steps, [(origin, i) for i in batch]
            )
            if progress is not None:
                progress(start + len(batch), total, f"frame {batch[-1]}")
            yield from zip(batch, preds)
