"""Predictor: numpy frames in, one label map per refinement step out, with a feature cache.

The backbone runs once per frame: its features are kept in a bounded LRU cache keyed by the
frame (``key``, or a hash of its pixels) and by the backbone's fingerprint, so re-running the
agent with another number of steps, or after the decoder/agent were fine-tuned, skips it.
The predictor never opens files (see ``model.build.build_model`` for that).  It runs the one
inference path of ``model.inference`` (the one ``cliprl evaluate`` measures).

A frame may come with a propagation context (``napari_cliprl.fusion.context.FrameContext``:
the labels of reviewed frames carried to it by optical flow): a model trained for video fusion
then fuses them with the image (``model.fusion_head``), and every step's label map is the fused
full-resolution map snapped to the frame's edges (``napari_cliprl.fusion``).
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
from napari_cliprl.fusion.context import FrameContext
from napari_cliprl.fusion.grid import context_channels
from napari_cliprl.model.backbone import Features
from napari_cliprl.model.cliprl import CLIPRL, CLIPRLOutput
from napari_cliprl.model.fusion_head import fused_grid_logits, side_areas
from napari_cliprl.model.inference import inference_context, predict_logits
from napari_cliprl.model.policy import entropy as entropy_map
from napari_cliprl.prediction import Prediction
from napari_cliprl.schemas import LabelSchema

__all__ = ["Prediction", "Predictor", "as_rgb_frame", "frame_key"]

ProgressCallback = Callable[..., None]  # progress(done, total, message="")
StopCallback = Callable[[], bool]


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
        context: FrameContext | None = None,
        *,
        return_probabilities: bool = False,
    ) -> Prediction:
        """Labels for one frame (H x W x 3 uint8; grey and RGBA are converted).

        steps: agent steps T (default: the model's T*, ``config.fusion_steps`` with a
        context; at most limits.MAX_STEPS). key: names the frame in the feature cache, e.g.
        ``(source_path, index)``; default: a hash of its pixels. context: the frame's
        propagation context (labels of reviewed frames carried by optical flow, at the
        frame's size), for a model trained for video fusion (``config.fusion``).
        """
        return self.predict_batch(
            [frame],
            steps,
            None if key is None else [key],
            None if context is None else [context],
            return_probabilities=return_probabilities,
        )[0]

    def predict_batch(
        self,
        frames: Sequence[np.ndarray],
        steps: int | None = None,
        keys: Sequence[Hashable] | None = None,
        contexts: Sequence[FrameContext | None] | None = None,
        *,
        return_probabilities: bool = False,
    ) -> list[Prediction]:
        """``predict`` for several frames, batching the network (frames may differ in size;
        frames with and without a context run as two batches)."""
        frames = [as_rgb_frame(f) for f in frames]
        if keys is not None and len(keys) != len(frames):
            raise ValueError(f"{len(keys)} keys for {len(frames)} frames")
        contexts = list(contexts) if contexts is not None else [None] * len(frames)
        if len(contexts) != len(frames):
            raise ValueError(f"{len(contexts)} contexts for {len(frames)} frames")
        keys = list(keys) if keys is not None else [frame_key(f) for f in frames]
        groups = [
            [i for i, c in enumerate(contexts) if (c is None) == without]
            for without in (True, False)
        ]
        out: list[Prediction | None] = [None] * len(frames)
        for group in (g for g in groups if g):
            preds = self._predict_group(
                [frames[i] for i in group],
                steps,
                [keys[i] for i in group],
                [contexts[i] for i in group],
                return_probabilities,
            )
            for i, pred in zip(group, preds):
                out[i] = pred
        return out  # type: ignore[return-value]

    def _predict_group(
        self,
        frames: list[np.ndarray],
        steps: int | None,
        keys: list[Hashable],
        contexts: list[FrameContext | None],
        probabilities: bool,
    ) -> list[Prediction]:
        """Frames that all have a context, or all have none, in one network batch. A model
        without fusion predicts frames with a context on their own (the context is kept for
        ``Prediction.propagated``)."""
        model = self._model
        context = None
        for frame, c in zip(frames, contexts):
            if c is not None and tuple(c.size) != frame.shape[:2]:
                raise ValueError(
                    f"a context of size {c.size} for a frame of size {frame.shape[:2]}"
                )
        if contexts[0] is not None and model.fusion_head is not None:
            context = torch.stack(
                [context_channels(c, model.num_classes, model.logits_size) for c in contexts]
            )
        default = model.config.steps if context is None else model.config.fusion_steps
        steps = check_steps(default if steps is None else steps)
        start = time.perf_counter()
        features, cached = self._features(frames, keys)
        backbone = time.perf_counter() - start
        seconds: dict[str, float] = {}
        out = predict_logits(
            model, features=features, steps=steps, context=context, seconds=seconds
        )
        seconds["backbone"] = backbone
        return [
            self._prediction(out, i, frame, cached[i], seconds, probabilities, contexts[i], context)
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
        context: FrameContext | None = None,
        channels: torch.Tensor | None = None,
    ) -> Prediction:
        """Frame ``i`` of a batch's output (logits moved to the CPU; labels come lazily)."""
        n = out.zero_shot.shape[0]
        logits = [lg[i].detach().float().cpu() for lg in out.logits]
        gains = None
        seen = logits  # what the agent sees: fused grid logits with a context
        if out.gains is not None and channels is not None:
            gains = [g[i].detach().float().cpu() for g in out.gains]
            areas = side_areas(channels[i : i + 1].float(), len(logits[0]))
            seen = [fused_grid_logits(lg[None], g[None], areas)[0] for lg, g in zip(logits, gains)]
        cfg = self._model.config
        pred = Prediction(
            logits=logits,
            zero_shot_logits=out.zero_shot[i].detach().float().cpu(),
            size=frame.shape[:2],
            entropy=[float(entropy_map(lg[None]).mean()) for lg in seen],
            actions=[a[i].to(torch.uint8).cpu().numpy() for a in out.actions],
            cached=cached,
            seconds={k: v / n for k, v in seconds.items()},
            gains=gains,
            context=context,
            frame=frame,
            snap=(cfg.snap_radius, cfg.snap_eps),
        )
        if probabilities:
            pred.probabilities = F.softmax(seen[-1], 0).numpy()
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
