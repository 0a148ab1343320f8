"""``cliprl predict`` with the tiny-test architecture: videos, sequences, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import napari_cliprl._commands.predict as predict_cmd
from napari_cliprl.cli import main
from napari_cliprl.io.export import read_manifest
from napari_cliprl.io.sample import synthetic_clip, write_sample_sequence
from napari_cliprl.io.video import write_video
from napari_cliprl.predictor import Predictor
from napari_cliprl.schemas import ENDOVIS2018

TINY = ["--arch", "tiny-test", "--device", "cpu", "--quiet"]
_PREDICT_BATCH = Predictor.predict_batch


def _write_video(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    return write_video(path, frames, fps=fps)


def _label_files(out: Path, sub: str = "labels") -> list[str]:
    return sorted(p.name for p in (out / sub).glob("*.png"))


class _Counter:
    """Wraps Predictor.predict_batch to count (and optionally interrupt) frames computed."""

    def __init__(self, monkeypatch, stop_after: int | None = None):
        self.frames = 0
        original = _PREDICT_BATCH
        counter = self

        def wrapped(self, frames, *args, **kwargs):
            if stop_after is not None and counter.frames >= stop_after:
                raise KeyboardInterrupt
            counter.frames += len(frames)
            return original(self, frames, *args, **kwargs)

        monkeypatch.setattr(Predictor, "predict_batch", wrapped)


def test_predict_on_a_video_writes_every_frame(tmp_path):
    clip = synthetic_clip(n_frames=5, size=(64, 80), seed=1)
    video = _write_video(tmp_path / "clip.mp4", clip.frames)
    out = tmp_path / "out"
    assert main(["predict", str(video), "--out", str(out), *TINY, "--steps", "1"]) == 0
    names = _label_files(out)
    assert len(names) == 5
    from PIL import Image

    with Image.open(out / "labels" / names[0]) as img:
        assert img.size == (80, 64) and img.mode == "RGB"
        ENDOVIS2018.rgb_to_ids(np.asarray(img))  # only schema colours
    manifest = read_manifest(out)
    assert [f["index"] for f in manifest["frames"]] == [0, 1, 2, 3, 4]
    assert not any(f["reviewed"] for f in manifest["frames"])
    assert json.loads((out / "schema.json").read_text())["name"] == "endovis2018"
    assert (out / "labels.json").is_file()


def test_predict_on_the_synthetic_sequence_resumes(tmp_path, monkeypatch):
    seq = write_sample_sequence(tmp_path / "seq_1", n_frames=6, seed=2)
    out = tmp_path / "out"
    args = ["predict", str(seq), "--out", str(out), *TINY, "--steps", "2", "--save-steps"]

    first = _Counter(monkeypatch, stop_after=4)  # interrupted after 4 frames
    assert main(args) == 130
    assert first.frames == 4 and len(_label_files(out)) == 4
    assert len(read_manifest(out)["frames"]) == 4  # written even when interrupted

    second = _Counter(monkeypatch)
    assert main(args) == 0
    assert second.frames == 2
    expected = [f"frame{k:03d}.png" for k in range(6)]
    assert _label_files(out) == expected
    for sub in ("steps/zero_shot/labels", "steps/step_0/labels", "steps/step_2/labels"):
        assert _label_files(out, sub) == expected

    removed = out / "labels" / "frame003.png"
    removed.unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "labels").glob("*.png")}
    third = _Counter(monkeypatch)
    assert main(args) == 0
    assert third.frames == 1 and removed.is_file()
    assert all((out / "labels" / n).stat().st_mtime_ns == t for n, t in kept.items())

    fourth = _Counter(monkeypatch)
    assert main([*args, "--overwrite", "--frames", "1:3"]) == 0
    assert fourth.frames == 2


def test_frame_range_and_defaults(tmp_path, monkeypatch):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=5, seed=3)
    out = tmp_path / "out"
    assert main([
        "predict", str(seq), "--out", str(out), *TINY, "--frames", "1:4:2", "--save-frames",
    ]) == 0  # fmt: skip
    assert _label_files(out) == ["frame001.png", "frame003.png"]
    assert _label_files(out, "left_frames") == ["frame001.png", "frame003.png"]
    assert predict_cmd.parse_frame_range("3:", 5) == [3, 4]
    assert predict_cmd.parse_frame_range("-1", 5) == [4]
    import napari_cliprl.annotation.models as models

    monkeypatch.setattr(models, "DEMO_CHECKPOINT", tmp_path / "no-demo")
    assert main(["predict", str(seq), "--out", str(tmp_path / "o2"), "--quiet"]) == 2


def test_predict_with_a_checkpoint(tmp_path):
    from napari_cliprl.model import build_model, save_checkpoint

    ckpt = save_checkpoint(build_model("tiny-test", schema="endovis2017-binary"), tmp_path / "ck")
    seq = write_sample_sequence(tmp_path / "seq", n_frames=2, seed=4)
    out = tmp_path / "out"
    assert main(["predict", str(seq), "--out", str(out), "--checkpoint", str(ckpt), "--quiet"]) == 0
    from PIL import Image

    with Image.open(out / "labels" / "frame000.png") as img:
        assert img.mode == "L" and set(np.unique(np.asarray(img))) <= {0, 255}
    assert read_manifest(out)["checkpoint"].startswith("sha256:")
    # same folder, other schema: refused; checkpoint with the wrong schema: refused
    assert main(["predict", str(seq), "--out", str(out), *TINY]) == 2
    bad = ["predict", str(seq), "--out", str(tmp_path / "o3"), "--checkpoint", str(ckpt)]
    assert main([*bad, "--schema", "endovis2018", "--quiet"]) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.mp4", "no such file"),
        (lambda p: (p / "broken.mp4").write_bytes(b"not a video") and p / "broken.mp4", "broken"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "empty"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(tmp_path, capsys, make, message):
    src = make(tmp_path)
    assert main(["predict", str(src), "--out", str(tmp_path / "out"), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cliprl predict: error:") and message in err[0]


def test_bad_frame_range_is_reported(tmp_path, capsys):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=2, seed=5)
    assert main(["predict", str(seq), "--out", str(tmp_path / "o"), *TINY, "--frames", "5:9"]) == 2
    assert "selects no frame" in capsys.readouterr().err


# -- video propagation (--corrections) -------------------------------------------------------
def _read_ids(path: Path) -> np.ndarray:
    from napari_cliprl.io.export import IGNORE_RGB
    from napari_cliprl.io.labeled import load_schema_labels

    return load_schema_labels(path, ENDOVIS2018, ignore_rgb=IGNORE_RGB)


def _corrections(folder: Path, seq: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Reviewed corrections of ``names`` (their true labels) as an export with a manifest."""
    from napari_cliprl.io import read_labeled
    from napari_cliprl.io.export import make_manifest, write_labels

    truth = read_labeled(seq)
    labels = {n: truth.labels(truth.frame_names.index(n)) for n in names}
    manifest = make_manifest(str(seq), ENDOVIS2018, [(n, int(n[-3:]), True) for n in names])
    write_labels(folder, labels, ENDOVIS2018, manifest=manifest)
    return labels


def test_the_console_script_propagates_the_corrections(tmp_path):
    import os
    import subprocess
    import sys

    from napari_cliprl.flow import FlowCache, propagate
    from napari_cliprl.fusion.context import frame_context
    from napari_cliprl.io import open_frames

    seq = write_sample_sequence(tmp_path / "seq", n_frames=6, seed=6)
    labels = _corrections(tmp_path / "corr", seq, ["frame002"])
    out = tmp_path / "out"
    script = Path(sys.executable).parent / "cliprl"
    args = ["predict", str(seq), "--out", str(out), *TINY, "--steps", "1", "--save-steps"]
    args += ["--corrections", str(tmp_path / "corr")]
    done = subprocess.run([str(script), *args], env=dict(os.environ), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    np.testing.assert_array_equal(_read_ids(out / "labels" / "frame002.png"), labels["frame002"])
    flags = {f["name"]: f["reviewed"] for f in read_manifest(out)["frames"]}
    assert flags == {f"frame{k:03d}": k == 2 for k in range(6)}
    assert _label_files(out, "steps/propagated/labels") == [
        f"frame{k:03d}.png" for k in (0, 1, 3, 4, 5)
    ]
    frames = open_frames(seq)
    anchors = {2: labels["frame002"]}
    expected = propagate(anchors, [0, 4], FlowCache(frames))
    for k in (0, 4):  # what the flow carried from the correction, nearest anchor at distance 2
        carried = frame_context(expected[k], anchors).propagated
        np.testing.assert_array_equal(
            _read_ids(out / "steps" / "propagated" / "labels" / f"frame{k:03d}.png"), carried
        )


def test_corrections_must_name_frames_of_the_source(tmp_path, capsys):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=3, seed=7)
    other = write_sample_sequence(tmp_path / "other", n_frames=5, seed=7)
    _corrections(tmp_path / "corr", other, ["frame004"])
    args = ["predict", str(seq), "--out", str(tmp_path / "o"), *TINY]
    assert main([*args, "--corrections", str(tmp_path / "corr")]) == 2
    assert "'frame004' is not a frame of" in capsys.readouterr().err


def test_no_propagate_ignores_the_corrections(tmp_path, monkeypatch):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=3, seed=8)
    _corrections(tmp_path / "corr", seq, ["frame001"])
    contexts = []
    original = Predictor.predict

    def spy(self, frame, *a, context=None, **kw):
        contexts.append(context)
        return original(self, frame, *a, context=context, **kw)

    monkeypatch.setattr(Predictor, "predict", spy)
    args = ["predict", str(seq), "--out", str(tmp_path / "o"), *TINY, "--steps", "0"]
    assert main([*args, "--corrections", str(tmp_path / "corr"), "--no-propagate"]) == 0
    assert contexts == [None, None]  # frames 0 and 2, each on its own
    assert main([*args, "--corrections", str(tmp_path / "corr"), "--overwrite"]) == 0
    assert [c.index for c in contexts[2:]] == [0, 2]  # now seen from frame 1
