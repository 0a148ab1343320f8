"""``cliprl convert``: between label encodings (the work is :mod:`napari_cliprl.io.convert`).

``--to index`` (default) writes ``OUT/<sequence>/<frame>.png``: single-channel uint8 class ids
of the source's schema (255 = ignore), with the schema beside them. ``--to endovis2018`` writes
the EndoVis 2018 layout per sequence (``labels/`` RGB PNGs, labels.json, schema.json;
``--frames`` adds ``left_frames/`` and carries ground truth over in a manifest.json). SRC is one
sequence folder or a folder holding several. OUT is new, empty or an earlier output of this
command; every input is read before anything appears in OUT, and an existing file stops the
run unless ``--overwrite`` (which replaces only files this command writes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "convert"
HELP = (
    "Convert labels: EndoVis 2017 (parts/type/binary), EndoVis 2018, CholecSeg8k or an export "
    "to single-channel index PNGs, or index PNGs to the EndoVis 2018 layout."
)
SOURCES = ("endovis2017", "endovis2018", "cholecseg8k", "export", "index")
TARGETS = ("index", "endovis2018")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help="a sequence folder or a folder holding several")
    parser.add_argument(
        "out",
        type=Path,
        help="output folder (one sub-folder per sequence): new, empty, or an earlier output "
        "of cliprl convert; never inside SRC",
    )
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
        help="schema name or JSON file: classes of index PNGs (--from index, default: the "
        "folder's schema.json, else endovis2018) or the colours of EndoVis 2018 labels",
    )
    parser.add_argument(
        "--frames",
        action="store_true",
        help="--to endovis2018: also write the frames to left_frames/",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing files this command writes"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_cliprl.errors import CLIError
    from napari_cliprl.io.convert import convert_labels, plan_conversion

    if args.crop and args.source != "endovis2017":
        raise CLIError("--crop applies to --from endovis2017 only")
    if args.source == "index" and args.target == "index":
        raise CLIError("--from index --to index: nothing to convert (use --to endovis2018)")
    jobs = plan_conversion(
        args.src,
        args.source,
        task=args.task,
        crop=args.crop,
        schema=args.schema,
        frames=args.frames and args.target == "endovis2018",
    )
    total = sum(len(j.frame_names) for j in jobs)
    # disable=None: no bar when stderr is not a terminal (an error stays one line there)
    with tqdm(
        total=total, desc=NAME, unit="frame", file=sys.stderr, leave=False, disable=None
    ) as bar:

        def progress(done: int, _total: int, _message: str = "") -> None:
            bar.update(done - bar.n)

        convert_labels(
            jobs,
            args.out,
            args.target,
            inputs=[args.src],
            overwrite=args.overwrite,
            progress=progress,
        )
    kind = "index" if args.target == "index" else "label"
    print(f"wrote {total} {kind} PNGs for {len(jobs)} sequence(s) to {args.out}", file=sys.stderr)
    return 0
