"""Builders of small on-disk datasets in the real layouts, for io and convert tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from napari_cliprl.io import video as video_io
from napari_cliprl.schemas import ENDOVIS2018


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def random_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """T x H x W x 3 uint8 random frames."""
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def random_ids(n: int, h: int, w: int, k: int, seed: int = 1) -> np.ndarray:
    """T x H x W uint8 ids in 0..k-1."""
    return np.random.default_rng(seed).integers(0, k, (n, h, w), dtype=np.uint8)


def make_endovis2018_seq(
    root: Path,
    name: str = "seq_1",
    n: int = 3,
    h: int = 12,
    w: int = 16,
    labels_json: str = "inside",
) -> tuple[Path, np.ndarray, np.ndarray]:
    """seq folder with left_frames/, labels/ (RGB) and labels.json ("inside"/"beside"/"none")."""
    seq = root / name
    frames = random_frames(n, h, w)
    ids = random_ids(n, h, w, ENDOVIS2018.num_classes)
    for i in range(n):
        save_png(seq / "left_frames" / f"frame{i:03d}.png", frames[i])
        save_png(seq / "labels" / f"frame{i:03d}.png", ENDOVIS2018.ids_to_rgb(ids[i]))
    entries = ENDOVIS2018.labels_json()
    entries[10]["name"] = "intestine"  # an older release's name: matched by colour
    if labels_json != "none":
        target = seq if labels_json == "inside" else root
        (target / "labels.json").write_text(json.dumps(entries))
    return seq, frames, ids


# Raw EndoVis 2017 training masks: 0 bg, 10 shaft, 20 wrist, 30 clasper, 40 Other.
QUIRK_FOLDERS = (
    "Large_Needle_Driver_Left_labels",  # type 3, side after the name
    "Left_Bipolar_Forceps",  # type 1, no _labels suffix
    "Maryland_Bipolar_Forceps_labels",  # type 1 (Maryland counts as bipolar)
    "Other_labels",  # type 7, value 40
    "Prograsp_Forceps",  # type 2, no suffix
)


def instrument_masks(h: int, w: int) -> dict[str, np.ndarray]:
    """Per-folder raw masks of one frame, with an overlap between the last two folders."""
    m = {name: np.zeros((h, w), np.uint8) for name in QUIRK_FOLDERS}
    m["Large_Needle_Driver_Left_labels"][0, 0:3] = (10, 20, 30)
    m["Left_Bipolar_Forceps"][1, 0:3] = (30, 20, 10)
    m["Maryland_Bipolar_Forceps_labels"][2, 0:2] = (10, 30)
    m["Other_labels"][3, 0:4] = 40
    m["Prograsp_Forceps"][3, 2:4] = (20, 10)  # overlaps Other: sorted later, Prograsp wins
    m["Prograsp_Forceps"][4, 0] = 10
    return m


def make_endovis2017_seq(
    root: Path,
    name: str = "instrument_dataset_1",
    n: int = 2,
    h: int = 6,
    w: int = 8,
    rgb_folder: str | None = "Prograsp_Forceps",
) -> Path:
    """A raw training sequence with every folder-name quirk; one folder's masks stored RGB."""
    seq = root / name
    frames = random_frames(n, h, w)
    masks = instrument_masks(h, w)
    for i in range(n):
        save_png(seq / "left_frames" / f"frame{i:03d}.png", frames[i])
        for folder, mask in masks.items():
            data = np.stack([mask, mask // 2, mask * 0], -1) if folder == rgb_folder else mask
            save_png(seq / "ground_truth" / folder / f"frame{i:03d}.png", data)
    return seq


# Expected merged labels for instrument_masks(6, 8) (rows 0..4, only listed pixels non-zero).
def expected_2017(task: str, h: int = 6, w: int = 8) -> np.ndarray:
    out = np.zeros((h, w), np.uint8)
    if task == "parts":
        out[0, 0:3] = (1, 2, 3)
        out[1, 0:3] = (3, 2, 1)
        out[2, 0:2] = (1, 3)
        out[3, 2:4] = (2, 1)  # Other pixels 3,0..1 stay background
        out[4, 0] = 1
    elif task == "type":
        out[0, 0:3] = 3
        out[1, 0:3] = 1
        out[2, 0:2] = 1
        out[3, 0:4] = (7, 7, 2, 2)
        out[4, 0] = 2
    else:
        out[0, 0:3] = out[1, 0:3] = out[2, 0:2] = out[3, 2:4] = out[4, 0] = 1
    return out


def write_video(
    path: Path, n: int, h: int = 32, w: int = 48, codec: str = "ffv1", gop: int = 10, fps: int = 25
) -> np.ndarray:
    """Encode n frames whose pixels all equal the frame's code (i * 7 % 251); returns codes."""
    codes = (np.arange(n) * 7 % 251).astype(np.uint8)
    frames = (np.full((h, w, 3), code, np.uint8) for code in codes)
    video_io.write_video(path, frames, fps=fps, codec=codec, gop=gop)
    return codes
