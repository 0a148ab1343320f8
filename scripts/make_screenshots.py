"""Take the user guide's screenshots (docs/screenshots/*.png) from a real napari session.

Run under a virtual screen on a headless machine:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/make_screenshots.py

It opens the synthetic clip, runs the annotator (the demo checkpoint when shipped, else the
tiny-test model), then captures: the window after a run, the refinement steps side by side, a
correction in progress, and the export section; then closes the loop: corrects the suggested
frames (with their ground truth, as an annotator would), fine-tunes on the reviewed frames,
re-runs the others and evaluates, capturing the suggestion, fine-tune and evaluation sections.
PNGs are palette-quantised to stay small.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from napari_cliprl._napari._demo import open_demo_viewer, settle, wait_for  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
MAX_BYTES = 300_000
FRAME = 5  # the frame shown in every screenshot


def save_small(image: Image.Image | np.ndarray, path: Path, max_width: int = 1280) -> None:
    """Save a PNG, scaled to ``max_width`` and quantised to 256 colours (< 300 KB)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image[..., :3])
    image = image.convert("RGB")
    if image.width > max_width:
        image = image.resize(
            (max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS
        )
    colours = 256
    while True:
        image.quantize(colours, dither=Image.Dither.NONE).save(path, optimize=True)
        if path.stat().st_size <= MAX_BYTES or colours <= 32:
            break
        colours //= 2
    print(f"{path}: {image.width}x{image.height}, {path.stat().st_size // 1024} KB")


def widget_png(widget, path: Path) -> None:
    """A grab of one Qt widget (what it shows on screen)."""
    pixmap = widget.grab()
    tmp = path.with_suffix(".raw.png")
    pixmap.save(str(tmp))
    save_small(Image.open(tmp), path)
    tmp.unlink()


def steps_montage(viewer, names: list[str], path: Path) -> None:
    """The canvas with each of ``names`` over the frame, side by side and captioned."""
    labels = [
        layer
        for layer in viewer.layers
        if layer.name in names
        or layer.name in ("corrected", "ground truth")
        or layer.name.startswith("step")
        or layer.name == "zero-shot"
    ]
    tiles = []
    for name in names:
        for layer in labels:
            layer.visible = layer.name == name
        viewer.layers[name].opacity = 0.65
        settle(4)
        shot = viewer.screenshot(canvas_only=True, flash=False)
        tile = Image.fromarray(shot[..., :3])
        tile = tile.resize((420, round(tile.height * 420 / tile.width)))
        caption = Image.new("RGB", (tile.width, tile.height + 28), (38, 41, 48))
        caption.paste(tile, (0, 28))
        ImageDraw.Draw(caption).text((8, 7), name, fill=(235, 235, 235))
        tiles.append(caption)
    sheet = Image.new(
        "RGB", (sum(t.width for t in tiles) + 6 * (len(tiles) - 1), tiles[0].height), (20, 20, 20)
    )
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width + 6
    save_small(sheet, path, max_width=1600)


def wait_until(done, timeout: float = 900) -> None:
    """Process Qt events until ``done()``; SystemExit on timeout."""
    import time

    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise SystemExit("timed out waiting for the widget")
        settle(1)


def correct_suggested(viewer, widget, n: int) -> list[int]:
    """Review the ``n`` suggested frames by painting their ground truth into "corrected"."""
    truth = viewer.layers["ground truth"].data
    corrected = viewer.layers["corrected"]
    picked = []
    for _ in range(n):
        i = widget._loop.next_suggested()
        if i is None:
            break
        ys, xs = np.nonzero(np.asarray(truth[i]) != np.asarray(corrected.data[i]))
        corrected.data_setitem((np.full(ys.size, i), ys, xs), np.asarray(truth[i])[ys, xs])
        widget._on_reviewed([i])
        picked.append(i)
    return picked


def loop_screenshots(viewer, widget, out: Path) -> None:
    """Suggestions, a fine-tune on the reviewed frames, a re-run and the evaluation."""
    from qtpy.QtWidgets import QScrollArea

    loop = widget._loop
    loop.suggest.set_distance_weight(1.0)
    picked = correct_suggested(viewer, widget, 4)
    widget._loop.next_suggested()
    settle()
    widget_png(loop.suggest, out / "suggest.png")
    print(f"corrected suggested frames {picked}")

    loop.finetune.set_budget(epochs=30, rl_iters=30)
    loop.finetune.set_device("cpu")
    loop.start_finetune()
    wait_until(lambda: not loop.is_finetuning)
    print(loop.finetune.status())
    loop.rerun_unreviewed()
    wait_until(lambda: not widget.is_running)
    loop.refresh()
    loop.run_evaluation()
    wait_until(lambda: not loop.is_evaluating)
    settle()
    widget_png(loop.finetune, out / "finetune.png")
    widget_png(loop.evaluate, out / "evaluate.png")
    for layer in viewer.layers:
        layer.visible = layer.name in ("synthetic clip", "corrected")
    viewer.dims.set_current_step(0, FRAME + 2)
    bar = widget.findChild(QScrollArea).verticalScrollBar()
    bar.setValue(bar.maximum())  # the dock scrolled down to the fine-tune and evaluation
    settle()
    save_small(viewer.screenshot(canvas_only=False, flash=False), out / "loop.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    viewer, widget = open_demo_viewer(frames=args.frames)
    if not wait_for(widget, timeout=900):
        raise SystemExit("the run did not finish")
    steps = widget.session.steps
    viewer.dims.set_current_step(0, FRAME)
    settle()
    save_small(viewer.screenshot(canvas_only=False, flash=False), args.out / "overview.png")

    names = ["zero-shot", "step 0", f"step {steps}", "ground truth"]
    steps_montage(viewer, names, args.out / "steps.png")

    corrected = viewer.layers["corrected"]
    for layer in viewer.layers:
        layer.visible = layer.name in ("synthetic clip", "corrected")
    corrected.opacity = 0.6
    widget.pick_class("instrument-shaft")
    corrected.mode = "paint"
    corrected.brush_size = 18
    corrected._begin_stroke()
    for x in range(60, 200, 6):
        corrected.paint((FRAME, 128 + (x - 60) // 6, x), corrected.selected_label)
    corrected._commit_stroke()
    settle()
    save_small(viewer.screenshot(canvas_only=False, flash=False), args.out / "correct.png")

    viewer.dims.set_current_step(0, FRAME + 1)
    widget.accept_step(steps)
    with tempfile.TemporaryDirectory() as tmp:
        widget.export(str(Path(tmp) / "seq_1"))
        while widget._export_worker is not None:
            settle(1)
        settle()
        widget._export.set_out_dir("~/annotations/seq_1")
        widget_png(widget, args.out / "review_export.png")
    loop_screenshots(viewer, widget, args.out)
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
