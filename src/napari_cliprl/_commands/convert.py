"""``cliprl convert``: between label encodings.

``--to index`` (default) writes ``OUT/<sequence>/<frame>.png``: single-channel uint8 class ids
of the source's schema (255 = ignore). ``--to endovis2018`` writes the EndoVis 2018 layout per
sequence (``labels/`` RGB PNGs, labels.json, schema.json; ``--frames`` adds ``left_frames/``).
SRC is one sequence folder or a folder holding several. Every target is checked before
anything is written: an existing file stops the run unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

NAME = "convert"
HELP = (
    "Convert labels: EndoVis 2017 (parts/type/binary), EndoVis 2018, CholecSeg8k or an export "
    "to single-channel index PNGs, or index PNGs to the EndoVis 2018 layout."
)
SOURCES = ("endovis2017", "endovis2018", "cholecseg8k", "export", "index")
TARGETS = ("index", "endovis2018")
LAYOUT_HELP = {
    "endovis2017": "instrument_dataset_N folders (left_frames/ + ground_truth/)",
    "endovis2018": "seq_N folders (left_frames/ + labels/)",
    "cholecseg8k": "clip folders (*_endo.png + *_endo_watershed_mask.png)",
    "export": "export folders (labels/ + schema.json or manifest.json)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help="a sequence folder or a folder holding several")
    parser.add_argument("out", type=Path, help="output folder (one sub-folder per sequence)")
    parser.add_argument(
        "--from",
        dest="source",
        choices=SOURCES,
        required=True,
        help="layout of SRC ('index': folders of index PNGs)",
    )
    parser.add_argument(
        "--to",
        dest="target",
        choices=TARGETS,
        default="index",
        help="output layout (default: index)",
    )
    parser.add_argument(
        "--task",
        choices=("parts", "type", "binary"),
        default="parts",
        help="EndoVis 2017 task (default: parts)",
    )
    parser.add_argument(
        "--crop",
        action="store_true",
        help="EndoVis 2017: crop 1080x1920 to 1024x1280 at row 28, column 320",
    )
    parser.add_argument(
        "--schema",
        default=None,
        help="schema name or JSON file: classes of index PNGs (--from index, "
        "default endovis2018) or the colours of EndoVis 2018 labels",
    )
    parser.add_argument(
        "--frames",
        action="store_true",
        help="--to endovis2018: also write the frames to left_frames/",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")


class _LazyMap(Mapping):
    """name -> array, computed on access (so a sequence is never held in memory whole)."""

    def __init__(self, names: list[str], get: Callable[[int], np.ndarray]) -> None:
        self._index = {n: i for i, n in enumerate(names)}
        self._get = get

    def __getitem__(self, name: str) -> np.ndarray:
        return self._get(self._index[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def _sequences(args: argparse.Namespace) -> list:
    """The LabeledSequences of SRC in the layout named by ``--from``."""
    from napari_cliprl.cli import CLIError
    from napari_cliprl.io import detect_format, find_labeled, read_labeled

    found = [p for p in find_labeled(args.src) if detect_format(p) == args.source]
    if not found:
        raise CLIError(f"{args.src}: no {LAYOUT_HELP[args.source]} found")
    schema = args.task if args.source == "endovis2017" else args.schema
    return [read_labeled(p, schema, crop=args.crop) for p in found]


def _index_sequences(args: argparse.Namespace) -> list:
    """(name, files) of the folders of index PNGs in SRC (SRC itself, or its sub-folders)."""
    from napari_cliprl.cli import CLIError
    from napari_cliprl.io._png import list_images, natural_key

    src = Path(args.src)
    if not src.is_dir():
        raise CLIError(f"{src}: no such folder")
    if list_images(src, "*.png"):
        return [(src.name, list_images(src, "*.png"))]
    subs = sorted((p for p in src.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    found = [(p.name, list_images(p, "*.png")) for p in subs]
    found = [(n, f) for n, f in found if f]
    if not found:
        raise CLIError(f"{src}: no index PNGs found (in the folder or its sub-folders)")
    return found


def _read_index(files: list[Path], i: int) -> np.ndarray:
    """H x W uint8 ids of index PNG ``files[i]``."""
    from napari_cliprl.io._png import read_mask

    return read_mask(files[i])


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)


def _write_index(args: argparse.Namespace) -> int:
    from napari_cliprl.io._png import check_writable, write_png

    seqs = _sequences(args)
    jobs = [(s, Path(args.out) / s.name) for s in seqs]
    check_writable([d / f"{n}.png" for s, d in jobs for n in s.frame_names], args.overwrite)
    total = sum(len(s) for s in seqs)
    with _progress(total, "convert") as bar:
        for seq, folder in jobs:
            for i, name in enumerate(seq.frame_names):
                write_png(folder / f"{name}.png", seq.labels(i), overwrite=True)
                bar.update(1)
    print(f"wrote {total} index PNGs for {len(seqs)} sequence(s) to {args.out}", file=sys.stderr)
    return 0


def _write_endovis2018(args: argparse.Namespace) -> int:
    from napari_cliprl.io._png import check_writable
    from napari_cliprl.io.endovis2018 import write_endovis2018_sequence
    from napari_cliprl.schemas import get_schema

    jobs = []  # (out folder, names, labels getter, frames getter or None, schema)
    if args.source == "index":
        schema = get_schema(args.schema or "endovis2018")
        for name, files in _index_sequences(args):
            names = [f.stem for f in files]
            jobs.append(
                (
                    Path(args.out) / name,
                    names,
                    functools.partial(_read_index, files),
                    None,
                    schema,
                )
            )
    else:
        for seq in _sequences(args):
            frames = seq.frames.__getitem__ if args.frames else None
            jobs.append(
                (Path(args.out) / seq.name, seq.frame_names, seq.labels, frames, seq.schema)
            )
    targets = []
    for folder, names, _, frames, _ in jobs:
        targets += [folder / "labels.json", folder / "schema.json"]
        targets += [folder / "labels" / f"{n}.png" for n in names]
        targets += [folder / "left_frames" / f"{n}.png" for n in names] if frames else []
    check_writable(targets, args.overwrite)
    total = sum(len(j[1]) for j in jobs)
    with _progress(total, "convert") as bar:
        for folder, names, labels, frames, schema in jobs:
            write_endovis2018_sequence(
                folder,
                _LazyMap(names, labels),
                schema,
                images=_LazyMap(names, frames) if frames else None,
                overwrite=True,
                progress=lambda *_: bar.update(1),
            )
    print(f"wrote {total} label PNGs for {len(jobs)} sequence(s) to {args.out}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from napari_cliprl.cli import CLIError

    if args.crop and args.source != "endovis2017":
        raise CLIError("--crop applies to --from endovis2017 only")
    if args.target == "index":
        if args.source == "index":
            raise CLIError("--from index --to index: nothing to convert (use --to endovis2018)")
        return _write_index(args)
    if os.fspath(args.out) == os.fspath(args.src):
        raise CLIError(f"{args.out}: output folder must differ from SRC")
    return _write_endovis2018(args)
