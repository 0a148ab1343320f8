"""Annotation-loop benchmark (DESIGN section 10) on a real video with ground truth, as JSON.

    OMP_NUM_THREADS=1 python benchmarks/annotation_loop.py \\
        --data ../shared/data/cholecseg8k_seq --json annotation_loop.json [--pick even]

For k = 0, 1, 2, 4, 8 "corrected" frames (their ground truth, written in the plugin's export
layout with every frame marked reviewed, as the widget would), fine-tune a fresh model on them,
predict every other frame and report ``evaluate_frames`` per step (zero-shot, step 0 = decoder,
step t = after t agent steps) on the frames never corrected, T*, and the fraction of pixels an
annotator would still change at T*. Then an ablation at the largest k: no agent (step 0) /
agent trained without curriculum / agent with curriculum, each at its T*.

Frame picking: ``even`` (evenly spaced) or ``uncertainty`` (nested, like the annotation loop:
the model fine-tuned on the previous round's frames proposes the uncorrected frames whose last
step has the highest mean entropy, at least n / (2k) frames apart). With k <= 2 there is no
frame to spare for validation, so T* is chosen on the corrected frames themselves.

Architecture: ``tiny-test`` with its backbone trained (random init): without pretrained CLIP
weights (none are available offline) it is the only architecture that learns anything here.
k = 0 is that untrained model. Hyper-parameters were set on synthetic clips, never on the
frames reported. A folder that is absent is skipped with a message (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ARCH = "tiny-test"
INPUT_SIZE = (128, 224)  # (h, w): multiple of the patch size, near the 16:9 of 854 x 480
KS = (0, 1, 2, 4, 8)
STEPS = 3


def loop_config(data: str, out: Path, n_train: int, curriculum: bool, seed: int) -> Any:
    """The fine-tuning run for ``n_train`` corrected frames (fixed budget of updates)."""
    from napari_cliprl.training.curriculum import CurriculumConfig
    from napari_cliprl.training.finetune import FinetuneConfig
    from napari_cliprl.training.rl import RLConfig
    from napari_cliprl.training.supervised import SupervisedConfig

    val_fraction = 0.25 if n_train >= 4 else 0.0
    return FinetuneConfig(
        data=[data],
        out=str(out),
        arch=ARCH,
        input_size=INPUT_SIZE,
        device="cpu",
        supervised=SupervisedConfig(
            epochs=15,
            batch_size=4,
            learning_rate=3e-3,
            backbone_lr=1e-3,
            train_backbone=True,
        ),
        rl=RLConfig(imitation_iters=150, iterations=100, max_steps=STEPS),
        curriculum=CurriculumConfig(enabled=curriculum),
        val_fraction=val_fraction,
        min_epoch_frames=32,  # 15 epochs x 8 steps of 4 augmented draws, whatever k is
        checkpoint_every=1000,
        log_every=1000,
        seed=seed,
    )


def pick_even(n: int, k: int) -> list[int]:
    """k evenly spaced frame positions of n (centred: never the very first and last)."""
    return sorted({int((i + 0.5) * n / k) for i in range(k)}) if k else []


def pick_uncertain(model: Any, seq: Any, k: int, chosen: list[int]) -> list[int]:
    """Extend ``chosen`` to k frames: highest mean entropy of the last step, spaced apart."""
    from napari_cliprl.training.dataset import resize_pair
    from napari_cliprl.training.evaluate import predict_steps

    entropy = []
    for f in range(len(seq)):
        image, gt = seq[f]
        img, _ = resize_pair(image, gt, model.input_size)
        _, ent = predict_steps(model, img[None], model.config.steps)
        entropy.append(float(ent[-1].mean()))
    gap = max(1, len(seq) // (2 * k))
    picks = list(chosen)
    for f in sorted(range(len(seq)), key=lambda i: -entropy[i]):
        if len(picks) >= k:
            break
        if all(abs(f - p) >= gap for p in picks):
            picks.append(f)
    return sorted(picks)


def write_corrections(seq: Any, frames: list[int], folder: Path) -> Path:
    """The corrected frames as the widget exports them (export layout, all reviewed)."""
    from napari_cliprl.io.export import make_manifest, write_labels

    names = [f"frame{f:03d}" for f in frames]
    manifest = make_manifest(
        str(seq.path), seq.schema, [(n, seq.indices[f], True) for n, f in zip(names, frames)]
    )
    write_labels(
        folder,
        {n: seq.labels(f) for n, f in zip(names, frames)},
        seq.schema,
        images={n: seq.frames[f] for n, f in zip(names, frames)},
        manifest=manifest,
    )
    return folder


def run_k(seq: Any, frames: list[int], work: Path, curriculum: bool, seed: int) -> tuple:
    """Fine-tune on ``frames`` (k = 0: the untrained model); metrics on every other frame."""
    from napari_cliprl.model.build import build_model
    from napari_cliprl.training.evaluate import evaluate_model
    from napari_cliprl.training.finetune import finetune

    if frames:
        data = write_corrections(seq, frames, work / f"export-k{len(frames)}-{curriculum}")
        config = loop_config(
            str(data), work / f"ckpt-k{len(frames)}-{curriculum}", len(frames), curriculum, seed
        )
        model = build_model(checkpoint=finetune(config).checkpoint)
    else:
        model = build_model(ARCH, schema=seq.schema, input_size=INPUT_SIZE)
        model.config.steps = 0  # an untrained agent is never used
    rest = [(0, f) for f in range(len(seq)) if f not in set(frames)]
    return model, evaluate_model(model, [seq], steps=STEPS, frames=rest)


def summarise(k: int, frames: list[int], model: Any, result: dict[str, Any]) -> dict[str, Any]:
    names = ["zero_shot", *(f"step_{t}" for t in range(STEPS + 1))]
    tstar = int(model.config.steps)
    return {
        "k": k,
        "corrected_frames": frames,
        "tstar": tstar,
        "metrics": {n: result[n] for n in names},
        "pixels_to_change": result["pixels_to_change"][f"step_{tstar}"],
        "pixels_to_change_per_step": result["pixels_to_change"],
        "evaluated_frames": result["frames"],
        "seconds_per_frame": result["seconds_per_frame"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="labelled sequence folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--pick", choices=("even", "uncertainty"), default="even")
    parser.add_argument("--ks", default=",".join(map(str, KS)), help="corrected-frame counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ablation", action="store_true", help="skip the ablation runs")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (development data only)")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from napari_cliprl.io import read_labeled

    torch.set_num_threads(1)
    seq = read_labeled(args.data)
    ks = [int(k) for k in args.ks.split(",")]
    start = time.perf_counter()
    report: dict[str, Any] = {
        "arch": ARCH,
        "input_size": list(INPUT_SIZE),
        "pick": args.pick,
        "data": str(args.data),
        "frames": len(seq),
        "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        work, chosen, model, last = Path(tmp), [], None, None
        for k in ks:
            if args.pick == "even" or model is None or k == 0:
                chosen = pick_even(len(seq), k)
            else:
                chosen = pick_uncertain(model, seq, k, chosen[: k // 2] if k > 1 else [])
            model, result = run_k(seq, chosen, work, True, args.seed)
            report["results"].append(summarise(k, chosen, model, result))
            last = (chosen, model, result)
            _print_row(report["results"][-1], time.perf_counter() - start)
        if not args.no_ablation and last is not None and last[0]:
            report["ablation"], report["ablation_detail"] = ablation(seq, work, last, args.seed)
    report["seconds"] = time.perf_counter() - start
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def ablation(seq: Any, work: Path, last: tuple, seed: int) -> tuple[dict, dict]:
    """At the largest k: no agent / agent without curriculum / agent with curriculum (at T*)."""
    frames, model, result = last
    plain_model, plain = run_k(seq, frames, work, False, seed)
    t_cur, t_plain = int(model.config.steps), int(plain_model.config.steps)
    ablation = {
        "no_agent": result["step_0"],
        "agent_no_curriculum": plain[f"step_{t_plain}"],
        "agent_curriculum": result[f"step_{t_cur}"],
    }
    detail = {
        "k": len(frames),
        "tstar_curriculum": t_cur,
        "tstar_no_curriculum": t_plain,
        "no_curriculum_step_0": plain["step_0"],
        "agent_no_curriculum_at_T": plain[f"step_{STEPS}"],
        "agent_curriculum_at_T": result[f"step_{STEPS}"],
    }
    for name, m in ablation.items():
        print(f"ablation {name:<20} mIoU {m['miou']:.4f}  challenge IoU {m['challenge_iou']:.4f}")
    return ablation, detail


def _print_row(row: dict[str, Any], seconds: float) -> None:
    steps = "  ".join(f"{n} {m['miou']:.4f}" for n, m in row["metrics"].items())
    print(
        f"k={row['k']} frames {row['corrected_frames']} T*={row['tstar']}  mIoU: {steps}  "
        f"pixels to change {row['pixels_to_change']:.4f}  [{seconds:.0f} s]",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
