"""Train the shipped demo checkpoint (tiny-test) on synthetic clips; score it on the sample clip.

    OMP_NUM_THREADS=1 python scripts/train_demo_checkpoint.py --json demo_metrics.json

Reproducible: training clips are ``synthetic_clip(16, (256, 320), seed)`` for seeds 1..6 (the
sample clip the demo opens is seed 0 and is never trained on), written to a temporary folder in
the plugin's export layout; ``finetune`` then trains the ``tiny-test`` architecture (its random
backbone is trained too) with the curriculum, phase A then phase B, and picks T* on held-out
frames of the training clips. The checkpoint (config.json + weights.safetensors, no training
state) replaces ``src/napari_cliprl/data/demo_checkpoint/``. About 6-9 minutes on 1 CPU thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

DEST = Path(__file__).resolve().parents[1] / "src" / "napari_cliprl" / "data" / "demo_checkpoint"
TRAIN_SEEDS = (1, 2, 3, 4, 5, 6)  # the sample clip is seed 0
CLIP_FRAMES, CLIP_SIZE = 16, (256, 320)  # the sample clip's length and size


def write_training_clips(root: Path, seeds: tuple[int, ...]) -> list[str]:
    """One export folder per seed, every frame reviewed (exact synthetic ground truth)."""
    from napari_cliprl.io.export import make_manifest, write_labels
    from napari_cliprl.io.sample import synthetic_clip

    folders = []
    for seed in seeds:
        clip = synthetic_clip(CLIP_FRAMES, CLIP_SIZE, seed=seed)
        names = [f"frame{k:03d}" for k in range(CLIP_FRAMES)]
        folder = root / f"synthetic-seed{seed}"
        manifest = make_manifest(
            f"synthetic_clip(seed={seed})", clip.schema, [(n, k, True) for k, n in enumerate(names)]
        )
        write_labels(
            folder,
            dict(zip(names, clip.labels)),
            clip.schema,
            images=dict(zip(names, clip.frames)),
            manifest=manifest,
        )
        folders.append(str(folder))
    return folders


def demo_config(data: list[str], out: Path, seed: int):  # noqa: ANN201 - FinetuneConfig
    from napari_cliprl.training.finetune import FinetuneConfig
    from napari_cliprl.training.rl import RLConfig
    from napari_cliprl.training.supervised import SupervisedConfig

    return FinetuneConfig(
        data=data,
        out=str(out),
        arch="tiny-test",
        device="cpu",
        supervised=SupervisedConfig(
            epochs=50, batch_size=8, learning_rate=3e-3, backbone_lr=1e-3, train_backbone=True
        ),
        rl=RLConfig(imitation_iters=300, iterations=300, max_steps=3),
        val_fraction=0.2,
        checkpoint_every=100,
        log_every=50,
        seed=seed,
    )


def score_on_sample_clip(checkpoint: Path, steps: int = 3) -> dict:
    """``evaluate_model`` on the sample clip (seed 0), every step up to ``steps``."""
    from napari_cliprl.io.sample import sample_clip
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training.evaluate import evaluate_model

    clip = sample_clip()
    model = build_model(checkpoint=checkpoint)
    sequence = [list(zip(clip.frames, clip.labels))]
    return evaluate_model(model, sequence, steps=steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEST, help=f"checkpoint folder ({DEST})")
    parser.add_argument("--json", type=Path, help="write the sample-clip metrics here")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from napari_cliprl.model.build import build_model, read_checkpoint_config, save_checkpoint
    from napari_cliprl.model.checkpoint import usual_permissions
    from napari_cliprl.training.finetune import finetune, format_metrics

    torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_training_clips(Path(tmp), TRAIN_SEEDS)
        result = finetune(
            demo_config(data, Path(tmp) / "ckpt", args.seed),
            on_metrics=lambda m: print(format_metrics(m), flush=True),
        )
        extra = read_checkpoint_config(result.checkpoint)["extra"]
        model = build_model(checkpoint=result.checkpoint)
        extra["finetune"]["data"] = [
            f"synthetic_clip({CLIP_FRAMES}, {CLIP_SIZE}, seed={s})" for s in TRAIN_SEEDS
        ]
        extra["finetune"]["out"] = "src/napari_cliprl/data/demo_checkpoint"
        extra["command"] = "python scripts/train_demo_checkpoint.py"
        save_checkpoint(model, args.out, extra=extra)
        usual_permissions(args.out)
    seconds = time.perf_counter() - start
    metrics = score_on_sample_clip(args.out)
    report = {
        "checkpoint": str(args.out),
        "train_seconds": seconds,
        "tstar": result.tstar,
        "sample_clip": metrics,
    }
    print(f"trained in {seconds:.0f} s, T* = {result.tstar}; sample clip (seed 0):")
    for name in ["zero_shot", *(f"step_{t}" for t in range(metrics["steps"] + 1))]:
        m = metrics[name]
        print(
            f"  {name:<10} challenge IoU {m['challenge_iou']:.4f}  mIoU {m['miou']:.4f}  "
            f"pixels to change {metrics['pixels_to_change'][name]:.4f}"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
