"""``cliprl predict SRC --out DIR``: label every frame of a video or frame folder.

Output is the export layout (``OUT/labels/<frame>.png`` in the schema's encoding, labels.json,
schema.json, manifest.json); with ``--save-steps`` also ``OUT/steps/zero_shot/`` and
``OUT/steps/step_<t>/`` in the same layout.  Frames whose outputs exist are skipped (resume)
unless ``--overwrite``, which replaces only the files a frame produces (a replaced label loses
its reviewed flag). OUT must be new, empty, or a folder ``cliprl predict`` or the widget's
export wrote, and must not overlap SRC: anything else (e.g. ground truth) is refused before a
file is written (see :mod:`napari_cliprl.annotation.output_folder`, docs/files.md).

``--corrections DIR`` (video propagation): reviewed label files (an export folder, whose
manifest marks them reviewed, or any labelled sequence whose frame names match SRC's) are
anchors: each is written as its frame's label file (marked reviewed in the manifest), and every
other frame is predicted from the labels of its nearest anchors before and after it, carried by
optical flow (a model fine-tuned on reviewed frames of a video fuses them with the image; see
``annotation.run``). Frames OUT's own manifest marks reviewed are anchors too; ``--no-propagate``
predicts every frame on its own.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

NAME = "predict"
HELP = "Predict labels for a video, a frame folder or an EndoVis sequence (EndoVis output)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="video file, folder of frames, or EndoVis sequence folder")
    parser.add_argument(
        "--out",
        required=True,
        help="output folder (export layout): new, empty, or written by cliprl",
    )
    parser.add_argument("--checkpoint", help="checkpoint folder (default: the demo checkpoint)")
    parser.add_argument("--arch", help="architecture without a checkpoint, e.g. ViT-B-16")
    parser.add_argument(
        "--clip-weights", help="open_clip tag (openai), hf-hub:org/repo or a local weight file"
    )
    parser.add_argument("--schema", help="schema name or JSON file (default: the model's)")
    parser.add_argument("--steps", type=int, help="agent steps T (default: the model's T*)")
    parser.add_argument(
        "--save-steps", action="store_true", help="also write zero-shot and every step"
    )
    parser.add_argument("--save-frames", action="store_true", help="also write left_frames/")
    parser.add_argument("--frames", help="frame range a:b (Python slice, e.g. 0:100 or 50:)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute frames whose outputs exist in --out"
    )
    parser.add_argument(
        "--corrections",
        metavar="DIR",
        help="reviewed label files whose frame names match SRC's: propagated to the other frames",
    )
    parser.add_argument(
        "--no-propagate",
        dest="propagate",
        action="store_false",
        help="ignore reviewed frames: predict every frame on its own",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from napari_cliprl.errors import CLIError
    from napari_cliprl.io.sources import open_frames
    from napari_cliprl.limits import check_limit

    if args.steps is not None and args.steps < 0:
        raise CLIError(f"--steps must be >= 0, got {args.steps}")
    if args.steps is not None:  # before the model loads, naming the option (as evaluate)
        check_limit("MAX_STEPS", args.steps, "--steps")
    from napari_cliprl.annotation.output_folder import check_output_folder

    source = open_frames(args.src)
    try:
        indices = parse_frame_range(args.frames, len(source))
        out = Path(args.out)
        check_output_folder(out, args.src, source.path)  # before the model loads; again locked
        predictor, checkpoint = load_model(args)
        anchors = read_corrections(args.corrections, source, predictor.schema)
        return _predict(args, source, indices, predictor, checkpoint, out, anchors)
    finally:
        source.close()


def parse_frame_range(text: str | None, n: int) -> list[int]:
    """'a:b' (or 'a:b:s', 'a:', ':b', 'i') -> frame indices within 0..n-1."""
    from napari_cliprl.errors import CLIError

    if not text:
        return list(range(n))
    try:
        parts = [int(p) if p.strip() else None for p in text.split(":")]
    except ValueError:
        raise CLIError(f"--frames {text!r}: expected a:b with integers") from None
    if len(parts) == 1:
        i = parts[0]
        if i is None or not -n <= i < n:
            raise CLIError(f"--frames {text!r}: frame out of range (0..{n - 1})")
        return [i % n]
    if len(parts) > 3 or parts[-1] == 0 and len(parts) == 3:
        raise CLIError(f"--frames {text!r}: expected a:b or a:b:step")
    indices = list(range(n))[slice(*parts)]
    if not indices:
        raise CLIError(f"--frames {text!r} selects no frame of {n}")
    return indices


def read_corrections(folder: str | None, source: Any, schema: Any) -> dict[int, Any]:
    """Frame index in ``source`` -> H x W uint8 labels of the reviewed frames in ``folder``."""
    from napari_cliprl.errors import CLIError
    from napari_cliprl.io import read_labeled

    if not folder:
        return {}
    from napari_cliprl.io import DataError

    try:
        seq = read_labeled(folder, schema, reviewed_only=True)
    except DataError as e:
        raise CLIError(f"--corrections: {e}") from None
    where = {name: i for i, name in enumerate(source.frame_names)}
    anchors = {}
    for k, name in enumerate(seq.frame_names):
        if name not in where:
            raise CLIError(
                f"--corrections {folder}: frame {name!r} is not a frame of {source.path} "
                f"(its frames are named like {source.frame_names[0]!r})"
            )
        labels = seq.labels(k)
        if labels.shape != tuple(source.shape[1:3]):
            raise CLIError(
                f"--corrections {folder}: {name} is {labels.shape[1]}x{labels.shape[0]}, "
                f"the frames of {source.path} are {source.shape[2]}x{source.shape[1]}"
            )
        anchors[where[name]] = labels
    return anchors


def model_spec(args: argparse.Namespace) -> Any:
    """The ModelSpec of the options: --checkpoint, else --arch, else the demo checkpoint."""
    from napari_cliprl.annotation.models import ModelSpec, demo_checkpoint
    from napari_cliprl.errors import CLIError

    checkpoint = args.checkpoint
    if checkpoint is None and not args.arch:
        demo = demo_checkpoint()
        if demo is None:
            raise CLIError(
                "no model given and no demo checkpoint installed: pass --checkpoint DIR or "
                "--arch NAME (e.g. --arch ViT-B-16 --clip-weights openai)"
            )
        checkpoint = str(demo)
    return ModelSpec(
        checkpoint=checkpoint,
        arch=args.arch or "ViT-B-16",
        clip_weights=args.clip_weights,
        schema=args.schema,
        device=args.device,
    )


def load_model(args: argparse.Namespace) -> tuple[Any, Path | None]:
    """(Predictor, checkpoint folder or None) of the options (see :func:`model_spec`)."""
    from napari_cliprl.annotation.models import load_predictor

    spec = model_spec(args)
    predictor = load_predictor(spec)
    predictor.cache_size = 0  # every frame is seen once
    return predictor, Path(spec.checkpoint) if spec.checkpoint else None


def _predict(
    args: argparse.Namespace,
    source: Any,
    indices: list[int],
    predictor: Any,
    ckpt: Path | None,
    out: Path,
    anchors: dict[int, Any],
) -> int:
    from tqdm import tqdm

    from napari_cliprl.annotation.models import checkpoint_hash
    from napari_cliprl.annotation.output_folder import OutputFolder
    from napari_cliprl.annotation.run import predict_sequence

    model = predictor.model
    store = OutputFolder(
        out,
        model.schema,
        source.frame_names,
        steps=model.config.steps if args.steps is None else args.steps,
        source=os.fspath(Path(source.path).resolve()),
        checkpoint_hash=checkpoint_hash(ckpt),
        save_steps=args.save_steps,
        save_frames=args.save_frames,
        overwrite=args.overwrite,
        anchors=anchors,
        propagate=args.propagate,
        frame_size=tuple(source.shape[1:3]),
    )
    store.start()  # locks OUT, checks it again, writes the manifest before any label
    try:
        if args.steps is None and store.propagates:  # --corrections or OUT's reviewed frames
            store.steps = model.config.fusion_steps  # every loaded model fuses (load_predictor)
        store.write_anchors()
        todo = [i for i in indices if store.needs_prediction(i) and i not in anchors]
        done = len(indices) - len(todo)
        if done and not args.quiet:
            print(f"cliprl predict: {done} of {len(indices)} frames already written, skipping "
                  "them", file=sys.stderr)  # fmt: skip
        bar = tqdm(
            total=len(indices), initial=done, unit="frame", disable=args.quiet, file=sys.stderr
        )
        frames = predict_sequence(
            predictor,
            source,
            indices,
            store,
            key=str(source.path),
            propagate=args.propagate,
        )
        try:
            for _ in frames:
                bar.update(1)
        finally:
            bar.close()
            store.write_manifest()
    finally:
        store.close()
    return 0
