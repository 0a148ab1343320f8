"""Two processes under torchrun (gloo on CPU) give a checkpoint that build_model and predict use."""

import os
import subprocess
import sys

import numpy as np


def test_torchrun_two_processes_on_cpu(tiny_export, tmp_path):
    from napari_cliprl.model.build import build_model
    from napari_cliprl.predictor import Predictor

    out = tmp_path / "ckpt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--standalone",
        "-m",
        "napari_cliprl.cli",
        "finetune",
        "--data",
        str(tiny_export),
        "--out",
        str(out),
        "--arch",
        "tiny-test",
        "--input-size",
        "64",
        "80",
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--rl-iters",
        "2",
        "--imitation-iters",
        "2",
        "--batch-size",
        "2",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("checkpoint:") == 1  # rank 0 alone reports (and writes)
    model = build_model(checkpoint=out)
    frame = (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8)
    prediction = Predictor(model).predict(frame)
    assert len(prediction.steps) == model.config.steps + 1
    assert prediction.steps[0].shape == (64, 80)
