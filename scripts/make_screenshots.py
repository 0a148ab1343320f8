"""Take the user guide's screenshots (docs/screenshots/*.png) from a real napari session.

Run under a virtual screen on a headless machine:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/make_screenshots.py

It opens the synthetic clip and drives the annotator as a person does, through its controls
(clicks on buttons and check boxes, combo and spin box changes, typing, napari's brush):
clicks Run (the demo checkpoint when shipped, else the tiny-test model), then captures the
window after a run, the refinement steps side by side, a correction in progress, and the
export section; then closes the loop: clicks Next suggested frame and corrects each suggested
frame (pasting its ground truth into "corrected", as an annotator would), clicks Fine-tune,
Re-run unreviewed frames and Evaluate, capturing the suggestion, fine-tune and evaluation
sections. PNGs are palette-quantised to stay small.
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

from napari_cliprl._napari._demo import (  # noqa: E402
    choose,
    click,
    click_box,
    open_demo_viewer,
    scroll_dock,
    settle,
    type_into,
    wait_for,
)

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


def wait_idle(widget, timeout: float = 900) -> None:
    """Process Qt events until the dock has nothing in progress; SystemExit on timeout."""
    settle(2)
    if not wait_for(widget, timeout):
        raise SystemExit("timed out waiting for the dock")


def correct_suggested(viewer, widget, n: int) -> list[int]:
    """Click Next suggested frame ``n`` times, each time pasting the frame's ground truth into
    "corrected" (one undoable edit, which marks the frame reviewed)."""
    truth = viewer.layers["ground truth"].data
    corrected = viewer.layers["corrected"]
    picked = []
    for _ in range(n):
        before = widget.sections.suggest.ranking_text()
        if not before.startswith("frame "):
            break
        click(widget.sections.suggest.controls["Next suggested frame"])
        i = int(viewer.dims.current_step[0])
        ys, xs = np.nonzero(np.asarray(truth[i]) != np.asarray(corrected.data[i]))
        corrected.data_setitem((np.full(ys.size, i), ys, xs), np.asarray(truth[i])[ys, xs])
        picked.append(i)
    return picked


def loop_screenshots(viewer, widget, out: Path) -> None:
    """Suggestions, a fine-tune on the reviewed frames, a re-run and the evaluation."""
    s = widget.sections
    click_box(s.suggest.controls["spread over the video"])
    picked = correct_suggested(viewer, widget, 4)
    click(s.suggest.controls["Next suggested frame"])
    settle()
    widget_png(s.suggest, out / "suggest.png")
    print(f"corrected suggested frames {picked}")

    finetune = s.finetune.controls
    finetune["Epochs"].setValue(30)
    finetune["RL iterations"].setValue(30)
    choose(finetune["Device"], "cpu")
    click(finetune["Fine-tune"])
    wait_idle(widget)
    print(s.finetune.status())
    click(finetune["Re-run unreviewed frames"])
    wait_idle(widget)
    choose(s.evaluate.controls["Ground truth"], "ground truth")
    click(s.evaluate.controls["Evaluate"])
    wait_idle(widget)
    settle()
    widget_png(s.finetune, out / "finetune.png")
    widget_png(s.evaluate, out / "evaluate.png")
    for layer in viewer.layers:
        layer.visible = layer.name in ("synthetic clip", "corrected")
    viewer.dims.set_current_step(0, FRAME + 2)
    scroll_dock(widget, top=False)  # down to the fine-tune and evaluation
    settle()
    save_small(viewer.screenshot(canvas_only=False, flash=False), out / "loop.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    viewer, widget = open_demo_viewer(frames=args.frames)  # Run is clicked
    wait_idle(widget)
    s = widget.sections
    steps = widget.controller.session.steps
    viewer.dims.set_current_step(0, FRAME)
    scroll_dock(widget, top=True)
    settle()
    save_small(viewer.screenshot(canvas_only=False, flash=False), args.out / "overview.png")

    names = ["zero-shot", "step 0", f"step {steps}", "ground truth"]
    steps_montage(viewer, names, args.out / "steps.png")
    paint_correction(viewer, widget)
    save_small(viewer.screenshot(canvas_only=False, flash=False), args.out / "correct.png")

    viewer.dims.set_current_step(0, FRAME + 1)
    click(s.review.controls["Accept step"])
    with tempfile.TemporaryDirectory() as tmp:
        type_into(s.export.controls["Folder"], str(Path(tmp) / "seq_1"))
        click(s.export.controls["Export reviewed frames"])
        wait_idle(widget)
        settle()
        type_into(s.export.controls["Folder"], "~/annotations/seq_1")
        widget_png(widget, args.out / "review_export.png")
    loop_screenshots(viewer, widget, args.out)
    viewer.close()
    return 0


def paint_correction(viewer, widget) -> None:
    """Pick the class in the dock, then one brush stroke on "corrected" as napari's brush
    records it (``paint`` calls inside one history block)."""
    corrected = viewer.layers["corrected"]
    for layer in viewer.layers:
        layer.visible = layer.name in ("synthetic clip", "corrected")
    corrected.opacity = 0.6
    choose(widget.sections.review.controls["Paint class"], "instrument-shaft")
    corrected.mode = "paint"
    corrected.brush_size = 18
    with corrected.block_history():
        for x in range(60, 200, 6):
            corrected.paint((FRAME, 128 + (x - 60) // 6, x), corrected.selected_label)
    settle()


if __name__ == "__main__":
    raise SystemExit(main())
