"""A synthetic surgical-looking clip with exact ground truth (EndoVis 2018 classes).

The scene: pinkish-red tissue with vessels, fat and wet specular highlights (background,
class 0), a kidney (class 4) and sometimes a loop of small intestine (class 10), and one or two
robotic instruments entering from the image border: a grey metallic shaft (class 1), an
articulated wrist (class 3) and a clasper (class 2) whose two jaws open and close. The camera
pans, the instruments move smoothly and occlude each other (the one drawn last is in front),
and the lighting drifts (global brightness, vignetting). Labels are the very masks the pixels
were painted with, so they are exact.

Everything is drawn with numpy and ``scipy.ndimage``; a clip is deterministic per seed, and
frame ``k`` does not depend on ``n_frames`` (a longer clip extends a shorter one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_cliprl.io.export import write_labels
from napari_cliprl.schemas import ENDOVIS2018, LabelSchema

SHAFT, CLASPER, WRIST, KIDNEY, INTESTINE = 1, 2, 3, 4, 10
_PAD = 0.15  # camera pan range, as a fraction of the frame size on each side


@dataclass(frozen=True, eq=False)
class SyntheticClip:
    """A rendered clip and its ground truth."""

    frames: np.ndarray  # T x H x W x 3 uint8 RGB
    labels: np.ndarray  # T x H x W uint8 class ids of ``schema``
    schema: LabelSchema = ENDOVIS2018  # the EndoVis 2018 scene schema
    name: str = "synthetic"  # e.g. "synthetic-seed0"; used as a layer/sequence name


@dataclass(frozen=True)
class _Instrument:
    entry: np.ndarray  # (y, x) where the shaft crosses the image border
    angle: float  # mean shaft direction, radians (x right, y down)
    reach: float  # mean distance from the entry to the wrist end, pixels
    radius: float  # shaft half-width, pixels
    phases: np.ndarray  # 5 random phases: angle, depth, wrist bend, jaws, shading
    rates: np.ndarray  # 4 angular speeds per frame: angle, depth, wrist bend, jaws


@dataclass(frozen=True)
class _Scene:
    rgb: np.ndarray  # Hc x Wc x 3 float32 tissue canvas (larger than a frame: camera pans)
    labels: np.ndarray  # Hc x Wc uint8 tissue classes
    gloss: np.ndarray  # 3 x Hc x Wc float32: surface slope (y, x) and wetness
    instruments: tuple[_Instrument, ...]
    light: np.ndarray  # 8 random lighting/pan parameters
    size: tuple[int, int]  # frame (H, W)


def synthetic_clip(
    n_frames: int = 16, size: tuple[int, int] = (256, 320), seed: int = 0
) -> SyntheticClip:
    """Render a synthetic endoscopic clip with exact EndoVis 2018 labels.

    Args:
        n_frames: T, number of frames (>= 1).
        size: (H, W) of each frame (both >= 32).
        seed: scene seed; different seeds give different scenes.

    Returns:
        :class:`SyntheticClip` with ``frames`` T x H x W x 3 uint8 and ``labels`` T x H x W
        uint8 (ids 0 background, 1 shaft, 2 clasper, 3 wrist, 4 kidney, 10 small intestine).
    """
    h, w = (int(v) for v in size)
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    if h < 32 or w < 32:
        raise ValueError(f"size must be at least (32, 32), got {tuple(size)}")
    scene = _make_scene(np.random.default_rng(seed), (h, w))
    frames = np.empty((n_frames, h, w, 3), dtype=np.uint8)
    labels = np.empty((n_frames, h, w), dtype=np.uint8)
    for k in range(n_frames):
        frames[k], labels[k] = _render_frame(scene, k, seed)
    return SyntheticClip(frames=frames, labels=labels, name=f"synthetic-seed{seed}")


@lru_cache(maxsize=1)
def _default_clip() -> SyntheticClip:
    clip = synthetic_clip()
    clip.frames.flags.writeable = False
    clip.labels.flags.writeable = False
    return clip


def sample_clip() -> SyntheticClip:
    """The default clip (16 frames of 256 x 320, seed 0); rendered once, then cached.

    The arrays returned are fresh writable copies, so callers (e.g. an editable napari
    Labels layer) may modify them without touching the cache.
    """
    clip = _default_clip()
    return replace(clip, frames=clip.frames.copy(), labels=clip.labels.copy())


def write_sample_sequence(
    folder: str | os.PathLike, n_frames: int = 16, seed: int = 0, *, overwrite: bool = False
) -> Path:
    """Write a synthetic clip as an EndoVis 2018 sequence folder (the plugin's export layout).

    Layout: ``folder/left_frames/frameNNN.png`` (RGB), ``folder/labels/frameNNN.png`` (RGB
    colours of the EndoVis 2018 schema), ``folder/labels.json`` and ``folder/schema.json``;
    written by :func:`napari_cliprl.io.export.write_labels` (atomic files).

    Returns:
        The folder.

    Raises:
        FileExistsError: a file to write exists and ``overwrite`` is False (nothing written).
    """
    clip = synthetic_clip(n_frames=n_frames, seed=seed)
    names = [f"frame{k:03d}" for k in range(n_frames)]
    write_labels(
        folder,
        dict(zip(names, clip.labels)),
        clip.schema,
        images=dict(zip(names, clip.frames)),
        overwrite=overwrite,
    )
    return Path(folder)


# -- scene -----------------------------------------------------------------------------------
def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """H x W float32 smooth noise (Gaussian-filtered white noise), zero mean, unit std.

    Large ``sigma`` is filtered on a coarser grid and upsampled bilinearly (same look, faster).
    """
    step = max(1, int(sigma // 3))
    coarse = tuple(-(-n // step) + 2 for n in shape)
    n = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma / step)
    if step > 1:
        n = ndimage.zoom(n, step, order=1)
    n = n[step : step + shape[0], step : step + shape[1]] if step > 1 else n[: shape[0], : shape[1]]
    return (n - n.mean()) / (n.std() + 1e-6)


def _make_scene(rng: np.random.Generator, size: tuple[int, int]) -> _Scene:
    h, w = size
    canvas = (int(h * (1 + 2 * _PAD)), int(w * (1 + 2 * _PAD)))
    scale = min(h, w) / 256
    with_gut = bool(rng.random() < 0.7)  # drawn first: seed 0 gets a small intestine
    rgb, labels = _tissue(rng, canvas, scale, with_gut)
    bumps = _noise(rng, canvas, 5 * scale)
    slope = np.stack(np.gradient(bumps)) / (np.std(np.gradient(bumps)) + 1e-6)
    wet = np.clip(_noise(rng, canvas, 14 * scale) - 0.2, 0, 1) * np.clip(bumps - 0.4, 0, 1)
    gloss = np.concatenate([slope, wet[None]]).astype(np.float32)
    n_tools = 2 if rng.random() < 0.75 else 1
    sides = rng.permutation([0, 1])[:n_tools]  # 0: enters from the left half, 1: right half
    tools = tuple(_make_instrument(rng, size, int(side), scale) for side in sides)
    return _Scene(rgb, labels, gloss, tools, rng.random(8), size)


def _blob(
    rng: np.random.Generator, shape: tuple[int, int], centre: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """H x W bool: an ellipse with a wobbly outline (smooth noise on its level set)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = yy - centre[0], xx - centre[1]
    r2 = ((c * dx + s * dy) / radii[1]) ** 2 + ((-s * dx + c * dy) / radii[0]) ** 2
    return r2 + 0.25 * _noise(rng, shape, min(shape) / 10) < 1.0


def _tissue(
    rng: np.random.Generator, shape: tuple[int, int], scale: float, with_gut: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Tissue canvas: Hc x Wc x 3 float32 RGB (0-255) and Hc x Wc uint8 labels.

    Background tissue with fat and vessels, a kidney and, if ``with_gut``, small intestine.
    """
    h, w = shape
    coarse, mid, fine = (_noise(rng, shape, s * scale) for s in (24, 7, 1.5))
    base = np.array([196, 88, 80], np.float32) * rng.uniform(0.92, 1.06, 3).astype(np.float32)
    shade = 1 + 0.10 * coarse + 0.06 * mid + 0.03 * fine
    rgb = base * shade[..., None]
    fat = np.clip(_noise(rng, shape, 8 * scale) + 0.25 * fine - 1.3, 0, 0.8)[..., None]
    rgb = rgb * (1 - 0.6 * fat) + np.array([222, 178, 120], np.float32) * 0.6 * fat
    vein = np.exp(-((_noise(rng, shape, 16 * scale) / 0.05) ** 2)) * (coarse > -0.3)
    vein = ndimage.gaussian_filter(vein.astype(np.float32), 0.8 * scale)[..., None]
    rgb = rgb * (1 - 0.75 * vein) + np.array([105, 22, 40], np.float32) * 0.75 * vein
    labels = np.zeros(shape, np.uint8)
    centre = np.array([rng.uniform(0.3, 0.7) * h, rng.uniform(0.25, 0.75) * w])
    if with_gut:
        gut_centre = np.array([h, w]) - centre + rng.normal(0, 0.08, 2) * (h, w)
        gut = _blob(rng, shape, gut_centre, np.array([0.2 * h, 0.32 * w]))
        _paint_organ(rgb, labels, gut, INTESTINE, _intestine_colour(rng, shape, scale), scale)
    kidney = _blob(rng, shape, centre, np.array([0.22, 0.3]) * rng.uniform(0.8, 1.15) * h)
    k_rgb = np.array([132, 42, 40], np.float32) * (1 + 0.12 * mid + 0.03 * fine)[..., None]
    _paint_organ(rgb, labels, kidney, KIDNEY, k_rgb, scale)
    return rgb, labels


def _intestine_colour(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Hc x Wc x 3 float32: pink bowel loops (warped stripes shaded like tubes)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    warp = 30 * scale * _noise(rng, shape, 30 * scale)
    phase = (np.cos(angle) * xx + np.sin(angle) * yy + warp) / (42 * scale)
    across = 2 * (phase % 1) - 1  # -1..1 across each loop
    tube = np.sqrt(np.clip(1 - across**2, 0, 1)) ** 0.7
    colour = np.array([226, 140, 128], np.float32) * (0.45 + 0.55 * tube)[..., None]
    return colour * (1 + 0.05 * _noise(rng, shape, 3 * scale))[..., None]


def _paint_organ(
    rgb: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    class_id: int,
    colour: np.ndarray,
    scale: float,
) -> None:
    """Paint an organ (in place) with a dome shading and a dark rim; label it ``class_id``."""
    dome = ndimage.gaussian_filter(mask.astype(np.float32), 6 * scale)
    inside = (0.55 + 0.45 * np.clip(2 * dome - 0.6, 0, 1))[..., None]
    rgb[mask] = (colour * inside)[mask]
    rim = np.clip(dome * 2, 0, 1) * ~mask  # contact shadow on the tissue around the organ
    rgb *= (1 - 0.35 * rim)[..., None]
    labels[mask] = class_id


def _make_instrument(
    rng: np.random.Generator, size: tuple[int, int], side: int, scale: float
) -> _Instrument:
    """An instrument entering from the left (side 0) or right (side 1) part of the border."""
    h, w = size
    centre = np.array([h / 2, w / 2])
    # Direction from the image centre towards the entry point (x right, y down).
    out = rng.uniform(np.radians(100), np.radians(215)) if side == 0 else rng.uniform(-0.6, 1.4)
    ray = np.array([np.sin(out), np.cos(out)])
    with np.errstate(divide="ignore"):
        t = np.min(np.abs(np.where(ray > 0, (np.array([h, w]) - centre) / ray, -centre / ray)))
    entry = centre + t * ray
    target = (
        centre + rng.uniform(-0.15, 0.15, 2) * (h, w) + np.array([0.0, 0.1 if side else -0.1]) * w
    )
    to_target = target - entry
    return _Instrument(
        entry=entry,
        angle=float(np.arctan2(to_target[0], to_target[1])),
        reach=float(np.hypot(*to_target)),
        radius=rng.uniform(10, 13) * scale,
        phases=rng.uniform(0, 2 * np.pi, 5),
        rates=rng.uniform(0.12, 0.3, 4) * rng.choice([-1, 1], 4),
    )


# -- frames ----------------------------------------------------------------------------------
def _render_frame(scene: _Scene, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``k``: H x W x 3 uint8 RGB and H x W uint8 labels."""
    h, w = scene.size
    p = scene.light
    oy = int(round(_PAD * h * (1 + 0.8 * np.sin(0.07 * k + 6.3 * p[0]))))
    ox = int(round(_PAD * w * (1 + 0.8 * np.sin(0.09 * k + 6.3 * p[1]))))
    rgb = scene.rgb[oy : oy + h, ox : ox + w].copy()
    labels = scene.labels[oy : oy + h, ox : ox + w].copy()
    slope_y, slope_x, wet = scene.gloss[:, oy : oy + h, ox : ox + w]
    ly, lx = 0.3 * np.sin(0.4 * k + 6.3 * p[2]), 0.3 * np.cos(0.3 * k + 6.3 * p[2])
    spec = np.clip(1.6 * wet * np.exp(-((slope_y - ly) ** 2 + (slope_x - lx) ** 2) / 0.3), 0, 1)
    rgb += (np.array([255, 250, 245], np.float32) - rgb) * spec[..., None]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    tools = np.zeros((h, w), bool)
    layers = [_draw_instrument(yy, xx, tool, k) for tool in scene.instruments]
    for mask, _, _ in layers:
        tools |= mask
    shadow = ndimage.gaussian_filter(
        ndimage.shift(tools.astype(np.float32), (6, 5), order=0), 5 * min(h, w) / 256
    )
    rgb *= (1 - 0.45 * shadow * ~tools)[..., None]
    for mask, tool_rgb, tool_labels in layers:  # later instruments occlude earlier ones
        rgb[mask] = tool_rgb[mask]
        labels[mask] = tool_labels[mask]
    rgb *= _lighting(scene, k, yy, xx)[..., None]
    rgb += np.random.default_rng([seed, k]).normal(0, 2.5, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8), labels


def _lighting(scene: _Scene, k: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """H x W float32 gain: drifting global brightness times a drifting vignette."""
    h, w = scene.size
    p = scene.light
    gain = 1.0 + 0.13 * np.sin(0.35 * k + 6.3 * p[3]) + 0.05 * np.sin(0.9 * k + 6.3 * p[4])
    cy = h * (0.5 + 0.08 * np.sin(0.2 * k + 6.3 * p[5]))
    cx = w * (0.5 + 0.08 * np.sin(0.15 * k + 6.3 * p[6]))
    r2 = ((yy - cy) / (0.62 * h)) ** 2 + ((xx - cx) / (0.62 * w)) ** 2
    strength = 0.42 + 0.12 * np.sin(0.25 * k + 6.3 * p[7])
    return (gain * np.clip(1 - strength * r2, 0.08, 1)).astype(np.float32)


def _capsule(
    yy: np.ndarray, xx: np.ndarray, a: np.ndarray, b: np.ndarray, r0: float, r1: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray, np.ndarray]:
    """A tapered capsule from point a to b (y, x), radius r0 at a and r1 at b.

    Only the capsule's bounding box inside the frame is computed.

    Returns:
        window (a slice pair into the H x W frame) and, on that window, mask (bool), s
        (float32 position along a->b in [0, 1]) and u (float32 signed distance across the
        axis in units of the local radius, in [-1, 1] inside).
    """
    h, w = yy.shape
    pad = max(r0, r1) + 1
    y0, y1 = (int(np.clip(f(a[0], b[0]) + d, 0, h)) for f, d in ((min, -pad), (max, pad + 1)))
    x0, x1 = (int(np.clip(f(a[1], b[1]) + d, 0, w)) for f, d in ((min, -pad), (max, pad + 1)))
    window = (slice(y0, y1), slice(x0, x1))
    dy, dx = float(b[0] - a[0]), float(b[1] - a[1])
    length2 = dy * dy + dx * dx + 1e-9
    ry, rx = yy[window] - float(a[0]), xx[window] - float(a[1])
    s = np.clip((ry * dy + rx * dx) / length2, 0, 1)
    dist = np.hypot(ry - s * dy, rx - s * dx)
    radius = r0 + (r1 - r0) * s
    across = (rx * dy - ry * dx) / np.sqrt(length2)
    return window, dist <= radius, s, np.clip(across / radius, -1, 1)


def _metal(u: np.ndarray, base: float, shine: float) -> np.ndarray:
    """Cylinder shading across the axis: ambient + diffuse + a specular stripe (grey level)."""
    diffuse = np.sqrt(np.clip(1 - u**2, 0, 1))
    return base * (0.35 + 0.65 * diffuse) + shine * np.exp(-(((u - 0.35) / 0.14) ** 2))


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] + s * v[1], -s * v[0] + c * v[1]])


def _draw_instrument(
    yy: np.ndarray, xx: np.ndarray, tool: _Instrument, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instrument ``tool`` in frame ``k``: its mask, grey RGB and labels (all H x W [x 3])."""
    ph, rate, r = tool.phases, tool.rates, tool.radius
    angle = tool.angle + 0.22 * np.sin(rate[0] * k + ph[0])
    axis = np.array([np.sin(angle), np.cos(angle)])
    wrist_len, jaw_len = 2.3 * r, 2.9 * r
    depth = tool.reach - wrist_len + 0.12 * tool.reach * np.sin(rate[1] * k + ph[1])
    tip = tool.entry + depth * axis
    far = tool.entry - 4 * (tool.reach + 50) * axis
    bend = _rot(axis, 0.45 * np.sin(rate[2] * k + ph[2]))
    hinge = tip + wrist_len * bend
    opening = 0.08 + 0.32 * (0.5 + 0.5 * np.sin(rate[3] * k + ph[3]))
    grey = np.zeros(yy.shape, np.float32)
    labels = np.zeros(yy.shape, np.uint8)
    mask = np.zeros(yy.shape, bool)
    win, m, _, u = _capsule(yy, xx, far, tip, r, r)
    _put(win, mask, grey, labels, m, _metal(u, 120, 95), SHAFT)
    win, m, s, u = _capsule(yy, xx, tip, hinge, 0.9 * r, 0.75 * r)
    grooves = 1 - 0.5 * (np.abs((s * 3 + 0.5) % 1 - 0.5) < 0.07)
    _put(win, mask, grey, labels, m, _metal(u, 165, 70) * grooves, WRIST)
    for sign in (-1, 1):
        end = hinge + jaw_len * _rot(bend, sign * opening)
        win, m, s, u = _capsule(yy, xx, hinge, end, 0.42 * r, 0.16 * r)
        teeth = 0.85 + 0.15 * np.sin(s * jaw_len * 1.3)
        _put(win, mask, grey, labels, m, _metal(u, 185, 60) * teeth, CLASPER)
    tint = np.array([1.02, 0.99, 0.96], np.float32) * (0.9 + 0.1 * np.sin(ph[4]))
    return mask, grey[..., None] * tint, labels


def _put(
    window: tuple[slice, slice],
    mask: np.ndarray,
    grey: np.ndarray,
    labels: np.ndarray,
    part: np.ndarray,
    value: np.ndarray,
    class_id: int,
) -> None:
    """Paint one instrument part (given on ``window``) over the previous ones, in place."""
    mask[window] |= part
    grey[window][part] = value[part]
    labels[window][part] = class_id
