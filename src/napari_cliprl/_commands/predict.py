"""``cliprl predict SRC --out DIR``: label every frame of a video or frame folder.

Output is the export layout (``OUT/labels/<frame>.png`` in the schema's encoding, labels.json,
schema.json, manifest.json); with ``--save-steps`` also ``OUT/steps/zero_shot/`` and
``OUT/steps/step_<t>/`` in the same layout.  Frames whose outputs exist are skipped (resume)
unless ``--overwrite``.

``--propagate`` (video propagation, off by default): frames run in order and each one's
decoder logits get ``--prior-weight`` added to the class its predecessor was labelled with
(``Predictor.predict(prior=...)``).  The predecessor's labels are this run's prediction, or
its label file in OUT when that frame was skipped (resume) or lies just before the selected
range: correct ``OUT/labels/frame010.png`` by hand, then ``--propagate --frames 11:
--overwrite`` re-labels the frames after it seeded by the correction.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

NAME = "predict"
HELP = "Predict labels for a video, a frame folder or an EndoVis sequence (EndoVis output)."
PRIOR_WEIGHT = 0.125  # predictor.PRIOR_WEIGHT (not imported: the CLI parser must not load torch)
DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "demo_checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="video file, folder of frames, or EndoVis sequence folder")
    parser.add_argument("--out", required=True, help="output folder (export layout)")
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
    parser.add_argument("--overwrite", action="store_true", help="recompute existing outputs")
    parser.add_argument(
        "--propagate",
        action="store_true",
        help="seed each frame with the previous frame's labels (this run's, or OUT's file)",
    )
    parser.add_argument(
        "--prior-weight",
        type=float,
        default=PRIOR_WEIGHT,
        help=f"logit added to the previous frame's class with --propagate (default {PRIOR_WEIGHT})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from napari_cliprl.cli import CLIError
    from napari_cliprl.io.sources import open_frames

    if args.steps is not None and args.steps < 0:
        raise CLIError(f"--steps must be >= 0, got {args.steps}")
    if not math.isfinite(args.prior_weight) or args.prior_weight < 0:
        raise CLIError(f"--prior-weight must be a finite number >= 0, got {args.prior_weight}")
    source = open_frames(args.src)
    try:
        indices = parse_frame_range(args.frames, len(source))
        model, checkpoint = load_model(args)
        out = Path(args.out)
        check_output_folder(out, model.schema, args.overwrite)
        return _predict(args, source, indices, model, checkpoint, out)
    finally:
        source.close()


def parse_frame_range(text: str | None, n: int) -> list[int]:
    """'a:b' (or 'a:b:s', 'a:', ':b', 'i') -> frame indices within 0..n-1."""
    from napari_cliprl.cli import CLIError

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


def load_model(args: argparse.Namespace) -> tuple[Any, Path | None]:
    """The model asked for: --checkpoint, else --arch, else the demo checkpoint."""
    from napari_cliprl.cli import CLIError
    from napari_cliprl.model.build import build_model

    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if checkpoint is None and not args.arch:
        if not (DEMO_CHECKPOINT / "config.json").is_file():
            raise CLIError(
                "no model given and no demo checkpoint installed: pass --checkpoint DIR or "
                "--arch NAME (e.g. --arch ViT-B-16 --clip-weights openai)"
            )
        checkpoint = DEMO_CHECKPOINT
    model = build_model(
        args.arch,
        clip_weights=args.clip_weights,
        checkpoint=checkpoint,
        schema=args.schema,
        device=args.device,
    )
    return model, checkpoint


def check_output_folder(out: Path, schema: Any, overwrite: bool) -> None:
    """Refuse to mix schemas in one output folder (unless overwriting)."""
    from napari_cliprl.cli import CLIError

    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: --out exists and is not a folder")
    existing = out / "schema.json"
    if existing.is_file() and not overwrite:
        try:
            name = json.loads(existing.read_text()).get("name")
        except (OSError, json.JSONDecodeError, AttributeError):
            name = None
        if name != schema.name:
            raise CLIError(
                f"{out}: holds labels of schema {name!r}, not {schema.name!r}; "
                "choose another --out or pass --overwrite"
            )


def _outputs(out: Path, name: str, steps: int, save_steps: bool) -> list[Path]:
    """Files one frame produces; the main label file last (it marks the frame as done)."""
    files = []
    if save_steps:
        files.append(out / "steps" / "zero_shot" / "labels" / f"{name}.png")
        files += [out / "steps" / f"step_{t}" / "labels" / f"{name}.png" for t in range(steps + 1)]
    return [*files, out / "labels" / f"{name}.png"]


def _predict(
    args: argparse.Namespace,
    source: Any,
    indices: list[int],
    model: Any,
    ckpt: Path | None,
    out: Path,
) -> int:
    from tqdm import tqdm

    from napari_cliprl.predictor import Predictor

    steps = model.config.steps if args.steps is None else args.steps
    names = source.frame_names
    todo = [
        i
        for i in indices
        if args.overwrite
        or not all(p.is_file() for p in _outputs(out, names[i], steps, args.save_steps))
    ]
    done = len(indices) - len(todo)
    if done and not args.quiet:
        print(f"cliprl predict: {done} of {len(indices)} frames already written, skipping them",
              file=sys.stderr)  # fmt: skip
    predictor = Predictor(model, cache_size=0, device=model.device)
    bar = tqdm(total=len(indices), initial=done, unit="frame", disable=args.quiet, file=sys.stderr)
    if args.propagate:
        read = functools.partial(_read_labels, out, names, model.schema)
        frames = propagate_frames(
            predictor, source, indices, todo, read, steps=steps, prior_weight=args.prior_weight
        )
    else:
        frames = predictor.predict_frames(source, todo, steps=steps)
    try:
        for index, pred in frames:
            frame = source[index] if args.save_frames else None
            _write_frame(out, names[index], pred, model.schema, args, frame)
            bar.update(1)
    finally:
        bar.close()
        if out.is_dir():
            _write_manifest(out, source, names, indices, model.schema, ckpt)
    return 0


def propagate_frames(
    predictor: Any,
    source: Any,
    indices: list[int],
    todo: list[int],
    read_labels: Callable[[int], Any],
    steps: int | None = None,
    prior_weight: float = PRIOR_WEIGHT,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, Prediction)`` for ``todo`` frames, each seeded by its predecessor.

    ``indices`` is the processing order; frame ``indices[j]``'s predecessor is
    ``indices[j - 1]``, and the first frame's is its neighbour on the side the order comes from
    (``indices[0] - 1``, or ``+ 1`` in a reversed order). Its labels are the last step of the
    prediction just made, else ``read_labels(index)`` (None: no prior, e.g. no file yet).
    """
    wanted = set(todo)
    backwards = len(indices) > 1 and indices[1] < indices[0]
    origin = str(getattr(source, "path", id(source)))
    last: tuple[int, Any] | None = None
    for j, index in enumerate(indices):
        if index not in wanted:
            continue
        before = indices[j - 1] if j else index + (1 if backwards else -1)
        if last is not None and last[0] == before:
            prior = last[1]
        else:
            prior = read_labels(before) if 0 <= before < len(source) else None
        pred = predictor.predict(
            source[index], steps, key=(origin, index), prior=prior, prior_weight=prior_weight
        )
        last = (index, pred.labels)
        yield index, pred


def _read_labels(out: Path, names: list[str], schema: Any, index: int) -> Any:
    """Frame ``index``'s label file in ``out`` as class ids, or None when there is none."""
    from napari_cliprl.io.export import IGNORE_RGB
    from napari_cliprl.io.labeled import load_schema_labels

    path = out / "labels" / f"{names[index]}.png"
    if not path.is_file():
        return None
    return load_schema_labels(path, schema, ignore_rgb=IGNORE_RGB)


def _write_frame(out: Path, name: str, pred: Any, schema: Any, args: Any, frame: Any) -> None:
    from napari_cliprl.io.export import write_labels

    if args.save_steps:
        write_labels(out / "steps" / "zero_shot", {name: pred.zero_shot}, schema, overwrite=True)
        for t, labels in enumerate(pred.steps):
            write_labels(out / "steps" / f"step_{t}", {name: labels}, schema, overwrite=True)
    images = {name: frame} if args.save_frames else None
    write_labels(out, {name: pred.labels}, schema, images=images, overwrite=True)


def _write_manifest(
    out: Path, source: Any, names: list[str], indices: list[int], schema: Any, ckpt: Path | None
) -> None:
    """manifest.json listing every frame with a label file (reviewed flags are kept)."""
    from napari_cliprl.io.export import make_manifest, read_manifest, write_json_atomic

    try:
        old = read_manifest(out) or {}
    except ValueError:
        old = {}
    reviewed = {f["name"] for f in old.get("frames", []) if f.get("reviewed")}
    listed = sorted({*indices, *(f["index"] for f in old.get("frames", []))})
    frames = [
        (names[i], i, names[i] in reviewed)
        for i in listed
        if i < len(names) and (out / "labels" / f"{names[i]}.png").is_file()
    ]
    if not frames:
        return
    manifest = make_manifest(os.fspath(Path(source.path).resolve()), schema, frames, _hash(ckpt))
    write_json_atomic(out / "manifest.json", manifest, overwrite=True)


def _hash(checkpoint: Path | None) -> str | None:
    if checkpoint is None:
        return None
    h = hashlib.sha256()
    with open(checkpoint / "weights.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"
