"""Predictor: numpy frames in, one label map per refinement step out, with a feature cache.

The backbone runs once per frame: its features are kept in a bounded LRU cache keyed by the
frame (``key``, or a hash of its pixels) and by the backbone's fingerprint, so re-running the
agent with another number of steps, or after the decoder/agent were fine-tuned, skips it.
The predictor never opens files (see ``model.build.build_model`` for that).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from napari_cliprl.devices import resolve_device
from napari_cliprl.model.backbone import Features
from napari_cliprl.model.cliprl import CLIPRL
from napari_cliprl.model.policy import entropy as entropy_map

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
        logits: list[torch.Tensor],
        zero_shot_logits: torch.Tensor,
        size: tuple[int, int],
        entropy: list[float],
        actions: list[np.ndarray] | None = None,
        probabilities: np.ndarray | None = None,
        cached: bool = False,
        seconds: dict[str, float] | None = None,
    ) -> None:
        self._logits = logits  # T + 1 tensors K x h x w (CPU, float32)
        self._zero_shot_logits = zero_shot_logits  # K x h' x w'
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
            source = self._zero_shot_logits if which == "zero_shot" else self._logits[which]
            self._maps[which] = _labels(source, self.size)
            self.seconds["labels"] = self.seconds.get("labels", 0.0) + time.perf_counter() - start
        return self._maps[which]

    @property
    def zero_shot(self) -> np.ndarray:
        return self._map("zero_shot")

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


def _prior_ids(prior: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Validate prior labels (2-D integer ids < K or the ignore index); ignore becomes K."""
    prior = np.asarray(prior)
    if prior.ndim != 2 or not np.issubdtype(prior.dtype, np.integer):
        raise ValueError(
            f"a prior must be H x W integer class ids, got {prior.dtype} {prior.shape}"
        )
    bad = ((prior >= num_classes) & (prior != ignore_index)) | (prior < 0)
    if bad.any():
        raise ValueError(
            f"prior has ids {sorted(set(np.unique(prior[bad]).tolist()))[:5]} outside "
            f"0..{num_classes - 1} (ignore {ignore_index})"
        )
    return np.where(prior == ignore_index, num_classes, prior)


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

    Arguments:
        model: a built CLIPRL (``build_model``); moved to ``device``.
        cache_size: number of frames whose backbone features are kept (LRU; 0 disables).
        device: "auto"/None (cuda, then mps, then cpu), or a device name.
    """

    def __init__(
        self, model: CLIPRL, cache_size: int = 64, device: str | torch.device | None = None
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
    def schema(self):  # noqa: ANN201 - LabelSchema
        return self._model.schema

    def clear_cache(self) -> None:
        self._cache.clear()

    def cache_len(self) -> int:
        return len(self._cache)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def predict(
        self,
        frame: np.ndarray,
        steps: int | None = None,
        key: Hashable | None = None,
        return_probabilities: bool = False,
        prior: np.ndarray | None = None,
        prior_weight: float = PRIOR_WEIGHT,
    ) -> Prediction:
        """Labels for one frame (H x W x 3 uint8; grey and RGBA are converted).

        steps: agent steps T (default: the model's T*).  key: names the frame in the feature
        cache, e.g. ``(source_path, index)``; default: a hash of its pixels.
        prior: H' x W' class ids (any size; ignore index = no opinion), e.g. the previous
        frame's corrected labels for video propagation: ``prior_weight`` is added to the
        decoder logit of the prior's class in every cell before the agent runs.
        """
        keys = None if key is None else [key]
        priors = None if prior is None else [prior]
        return self.predict_batch(
            [frame], steps, keys, return_probabilities, priors=priors, prior_weight=prior_weight
        )[0]

    def predict_batch(
        self,
        frames: Sequence[np.ndarray],
        steps: int | None = None,
        keys: Sequence[Hashable] | None = None,
        return_probabilities: bool = False,
        priors: Sequence[np.ndarray | None] | None = None,
        prior_weight: float = PRIOR_WEIGHT,
    ) -> list[Prediction]:
        """``predict`` for several frames, batching the network (frames may differ in size)."""
        frames = [as_rgb_frame(f) for f in frames]
        if keys is not None and len(keys) != len(frames):
            raise ValueError(f"{len(keys)} keys for {len(frames)} frames")
        if priors is not None and len(priors) != len(frames):
            raise ValueError(f"{len(priors)} priors for {len(frames)} frames")
        keys = list(keys) if keys is not None else [frame_key(f) for f in frames]
        steps = self._model.config.steps if steps is None else int(steps)
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        with torch.no_grad(), self._autocast():
            t0 = time.perf_counter()
            features, cached = self._features(frames, keys)
            t1 = time.perf_counter()
            zero_shot, L0, pixel = self._model.decode(features)
            if priors is not None:
                L0 = self._add_priors(L0, priors, prior_weight)
            t2 = time.perf_counter()
            refined, actions = self._model.refine(L0, pixel, steps)
            t3 = time.perf_counter()
        logits = [L0, *refined]
        n = len(frames)
        seconds = {"backbone": (t1 - t0) / n, "decoder": (t2 - t1) / n, "agent": (t3 - t2) / n}
        out = []
        for i, frame in enumerate(frames):
            pred = Prediction(
                logits=[lg[i].detach().float().cpu() for lg in logits],
                zero_shot_logits=zero_shot[i].detach().float().cpu(),
                size=frame.shape[:2],
                entropy=[float(entropy_map(lg[i : i + 1]).mean()) for lg in logits],
                actions=[a[i].to(torch.uint8).cpu().numpy() for a in actions],
                cached=cached[i],
                seconds=dict(seconds),
            )
            if return_probabilities:
                pred.probabilities = F.softmax(logits[-1][i].float(), 0).cpu().numpy()
            out.append(pred)
        return out

    def _add_priors(
        self, L0: torch.Tensor, priors: Sequence[np.ndarray | None], weight: float
    ) -> torch.Tensor:
        """L0 + weight * onehot(prior) per cell (nearest-sampled to the logits' grid)."""
        K, (h, w) = L0.shape[1], L0.shape[-2:]
        ignore = self._model.schema.ignore_index
        bonus = torch.zeros_like(L0)
        for i, prior in enumerate(priors):
            if prior is None:
                continue
            ids = _prior_ids(prior, K, ignore)
            rows = ((np.arange(h) + 0.5) * ids.shape[0] / h).astype(int)
            cols = ((np.arange(w) + 0.5) * ids.shape[1] / w).astype(int)
            cells = torch.from_numpy(ids[rows][:, cols].astype(np.int64)).to(L0.device)
            onehot = F.one_hot(cells, K + 1)[..., :K].permute(2, 0, 1)  # ignore -> zeros
            bonus[i] = weight * onehot.to(L0.dtype)
        return L0 + bonus

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


def _labels(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """K x h x w logits -> H x W uint8 ids: argmax of the bilinearly upsampled logits.

    Exact and cheap: where the 4 low-resolution cells around a pixel share one argmax, the
    bilinear mixture (non-negative weights) has that argmax too, so only pixels near label
    boundaries are interpolated.
    """
    logits = logits.detach().float().cpu()
    K, h, w = logits.shape
    y0, y1, fy = (t.numpy() for t in _source_index(h, size[0]))
    x0, x1, fx = (t.numpy() for t in _source_index(w, size[1]))
    low = logits.argmax(0).to(torch.uint8).numpy()
    rows0, rows1 = low[y0], low[y1]
    out = rows0[:, x0]
    mixed = out != rows0[:, x1]
    mixed |= out != rows1[:, x0]
    mixed |= out != rows1[:, x1]
    ys, xs = np.nonzero(mixed)
    if len(ys):
        lt = logits.permute(1, 2, 0).contiguous().numpy()  # h x w x K
        r0, r1, c0, c1 = y0[ys], y1[ys], x0[xs], x1[xs]
        wy, wx = fy[ys, None], fx[xs, None]
        top = lt[r0, c0]
        top += wx * (lt[r0, c1] - top)
        bottom = lt[r1, c0]
        bottom += wx * (lt[r1, c1] - bottom)
        top += wy * (bottom - top)
        out[ys, xs] = top.argmax(1)
    return out


def _source_index(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torch's bilinear (align_corners=False) source indices and weights along one axis."""
    src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    src = src.clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, (src - i0).float()
