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


# -- video propagation (--propagate) --------------------------------------------------------
def _read_ids(path: Path) -> np.ndarray:
    from napari_cliprl.io.export import IGNORE_RGB
    from napari_cliprl.io.labeled import load_schema_labels

    return load_schema_labels(path, ENDOVIS2018, ignore_rgb=IGNORE_RGB)


def test_propagate_writes_every_frame_and_resumes_from_disk(tmp_path, monkeypatch):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=5, seed=6)
    out = tmp_path / "out"
    args = ["predict", str(seq), "--out", str(out), *TINY, "--steps", "1", "--propagate"]
    first = _Counter(monkeypatch, stop_after=2)
    assert main(args) == 130 and first.frames == 2
    priors = []
    original = Predictor.predict

    def spy(self, frame, *a, prior=None, **kw):
        priors.append(None if prior is None else prior.copy())
        return original(self, frame, *a, prior=prior, **kw)

    monkeypatch.setattr(Predictor, "predict", spy)
    second = _Counter(monkeypatch)
    assert main(args) == 0 and second.frames == 3
    assert _label_files(out) == [f"frame{k:03d}.png" for k in range(5)]
    assert len(priors) == 3  # frames 2, 3, 4; frame 2 seeded by frame001.png read back
    assert np.array_equal(priors[0], _read_ids(out / "labels" / "frame001.png"))
    assert np.array_equal(priors[1], _read_ids(out / "labels" / "frame002.png"))
    assert [f["index"] for f in read_manifest(out)["frames"]] == [0, 1, 2, 3, 4]


def test_propagate_follows_a_corrected_first_frame(tmp_path):
    from napari_cliprl.io.export import write_labels

    seq = write_sample_sequence(tmp_path / "seq", n_frames=3, seed=7)
    plain = tmp_path / "plain"
    assert main(["predict", str(seq), "--out", str(plain), *TINY, "--steps", "0"]) == 0
    unseeded = _read_ids(plain / "labels" / "frame001.png")
    h, w = unseeded.shape
    # a "correction" of frame 0: left half a class the model does not predict, right half ignore
    c = int(np.bincount(unseeded.ravel(), minlength=ENDOVIS2018.num_classes).argmin())
    corrected = np.full((h, w), ENDOVIS2018.ignore_index, np.uint8)
    corrected[:, : w // 2] = c
    out = tmp_path / "out"
    write_labels(out, {"frame000": corrected}, ENDOVIS2018)
    args = ["predict", str(seq), "--out", str(out), *TINY, "--steps", "0", "--frames", "1:"]
    assert main([*args, "--propagate", "--prior-weight", "1000"]) == 0
    seeded = _read_ids(out / "labels" / "frame001.png")
    assert not (unseeded[:, : w // 2] == c).all()
    assert (seeded[:, : w // 2] == c).all()  # the prior wins where it has an opinion
    right = slice(w // 2 + w // 8, None)  # no opinion: the plain prediction (off the border)
    assert np.array_equal(seeded[:, right], unseeded[:, right])
    assert (_read_ids(out / "labels" / "frame002.png")[:, : w // 2 - w // 8] == c).all()


def test_propagate_order_and_bad_weight(tmp_path):
    from types import SimpleNamespace

    from napari_cliprl.annotation.run import predict_sequence

    class _Fake:
        priors: list = []

        def predict(self, frame, steps=None, key=None, prior=None, prior_weight=None):
            self.priors.append((key[1], prior))
            return SimpleNamespace(zero_shot=None, steps=[f"pred{key[1]}"], entropy=[])

    class _Store:
        """Frame 3's files exist (resume skips it); label files read back as "disk<i>"."""

        steps = 0

        def needs_prediction(self, index):
            return index != 3

        def write_prediction(self, index, zero_shot, steps, **kwargs):
            pass

        def seed_labels(self, index):
            return f"disk{index}"

        def is_reviewed(self, index):
            return False

    fake = _Fake()
    frames = [np.zeros((4, 4, 3), np.uint8)] * 6
    got = predict_sequence(fake, frames, [4, 3, 2, 1], _Store(), key="v", propagate=True)
    assert [d.index for d in got] == [4, 2, 1]
    assert fake.priors == [(4, "disk5"), (2, "disk3"), (1, "pred2")]
    assert predict_cmd.PRIOR_WEIGHT == __import__("napari_cliprl.predictor").predictor.PRIOR_WEIGHT
    seq = write_sample_sequence(tmp_path / "seq", n_frames=1, seed=8)
    bad = ["predict", str(seq), "--out", str(tmp_path / "o"), *TINY, "--prior-weight", "-1"]
    assert main(bad) == 2
