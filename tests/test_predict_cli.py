"""``cliprl predict`` with the tiny-test architecture: videos, sequences, resume, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
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
    for k in (1, 3):  # a model never trained for fusion still follows the correction
        carried = _read_ids(out / "steps" / "propagated" / "labels" / f"frame{k:03d}.png")
        known = carried != 255
        agree = _read_ids(out / "labels" / f"frame{k:03d}.png")[known] == carried[known]
        assert known.mean() > 0.5 and agree.mean() > 0.9, (known.mean(), agree.mean())


def test_a_resumed_run_writes_only_the_missing_propagated_labels(tmp_path):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=5, seed=6)
    _corrections(tmp_path / "corr", seq, ["frame002"])
    out = tmp_path / "out"
    args = ["predict", seq, "--out", out, *TINY, "--steps", "1", "--save-steps"]
    assert cliprl(*args, "--corrections", tmp_path / "corr").returncode == 0
    carried = out / "steps" / "propagated" / "labels"
    assert _label_files(out, "steps/propagated/labels") == [
        f"frame{k:03d}.png" for k in (0, 1, 3, 4)
    ]
    lost = carried / "frame004.png"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png") if p != lost}
    lost.unlink()  # frame 4 is unfinished now; the others are done
    assert cliprl(*args, "--corrections", tmp_path / "corr").returncode == 0
    assert lost.is_file()
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing else rewritten


def test_frames_out_marks_reviewed_are_anchors_at_the_fused_steps(tmp_path, monkeypatch):
    from dataclasses import replace

    import napari_cliprl.model.build as build

    add_fusion = build.add_fusion

    def fusion_with_two_steps(model, side_actions=True):
        add_fusion(model, side_actions)
        model.config = replace(model.config, steps=1, fusion_steps=2)

    monkeypatch.setattr(build, "add_fusion", fusion_with_two_steps)
    calls = []
    original = Predictor.predict

    def spy(self, frame, steps=None, *a, context=None, **kw):
        calls.append((steps, context is not None))
        return original(self, frame, steps, *a, context=context, **kw)

    monkeypatch.setattr(Predictor, "predict", spy)
    seq = write_sample_sequence(tmp_path / "seq", n_frames=4, seed=9)
    out = tmp_path / "out"
    assert main(["predict", str(seq), "--out", str(out), *TINY]) == 0
    assert calls == [(1, False)] * 4  # no reviewed frame: each frame alone, at T* = 1
    manifest = read_manifest(out)  # a person reviewed frame 1 there and dropped frame 3
    for f in manifest["frames"]:
        f["reviewed"] = f["name"] == "frame001"
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "labels" / "frame003.png").unlink()
    calls.clear()
    assert main(["predict", str(seq), "--out", str(out), *TINY]) == 0
    assert calls == [(2, True)]  # frame 3 seen from frame 1, at T* with a context


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


# -- the output folder: never anyone else's files, reviewed means reviewed, kill-safe order ----
CLIPRL = Path(sys.executable).parent / "cliprl"
KILL_AT = """
import os, sys
import napari_cliprl.annotation.output_folder as output_folder
from napari_cliprl.cli import main

target, original = os.environ["KILL_AT"], output_folder.write_png


def write_png(path, *args, **kwargs):
    if str(path).endswith(target):
        os._exit(137)  # as a kill -9 just before this file is written
    return original(path, *args, **kwargs)


output_folder.write_png = write_png
sys.exit(main(sys.argv[1:]))
"""


def cliprl(*args: object, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """The console script as a user runs it (or, with ``kill_at``, killed before that file)."""
    argv = [str(a) for a in args]
    command = [sys.executable, "-c", KILL_AT, *argv] if kill_at else [str(CLIPRL), *argv]
    env = os.environ | ({"KILL_AT": kill_at} if kill_at else {})
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> a digest of its content (what "nothing changed" means)."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "link:" + os.readlink(path)
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[key] = "dir"
    return out


def assert_refused(result: subprocess.CompletedProcess, names: Path, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("cliprl predict: error:"), result.stderr
    assert str(names) in lines[0] and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _reviewed_export(folder: Path, source: Path, n: int = 4) -> Path:
    """What the widget's Export writes: labels + frames + a manifest of reviewed frames (at the
    size of write_sample_sequence's frames, the sources they are exported from)."""
    from napari_cliprl.io.export import make_manifest, write_labels

    clip = synthetic_clip(n_frames=n, size=(256, 320), seed=11)
    names = [f"frame{k:03d}" for k in range(n)]
    manifest = make_manifest(source, ENDOVIS2018, [(m, k, True) for k, m in enumerate(names)])
    write_labels(
        folder,
        dict(zip(names, clip.labels)),
        ENDOVIS2018,
        images=dict(zip(names, clip.frames)),
        manifest=manifest,
    )
    return folder


def _flags(out: Path) -> dict[int, bool]:
    return {
        f["index"]: f["reviewed"] for f in json.loads((out / "manifest.json").read_text())["frames"]
    }


def test_predict_never_writes_into_its_own_input(tmp_path):
    exp = _reviewed_export(tmp_path / "exp", tmp_path / "exp")
    before = tree(tmp_path)
    result = cliprl("predict", exp, "--out", exp, "--overwrite", "--frames", "0:3", *TINY)
    assert_refused(result, exp, "overlaps the input")
    inside = cliprl("predict", exp, "--out", exp / "pred", *TINY)
    assert_refused(inside, exp / "pred", "overlaps the input")
    holder = cliprl("predict", exp / "left_frames", "--out", exp, "--overwrite", *TINY)
    assert_refused(holder, exp, "overlaps the input")
    assert tree(tmp_path) == before


def test_reviewed_labels_are_anchors_never_overwritten(tmp_path):
    """With propagation (the default) a frame OUT's manifest marks reviewed is an anchor: even
    with --overwrite its label file and flag stay, and the others are predicted from it."""
    seq = write_sample_sequence(tmp_path / "seq", n_frames=4, seed=12)
    exp = _reviewed_export(tmp_path / "exp", seq.resolve())
    kept = tree(exp / "labels")
    assert cliprl("predict", seq, "--out", exp, "--overwrite", *TINY).returncode == 0
    assert tree(exp / "labels") == kept
    assert _flags(exp) == {0: True, 1: True, 2: True, 3: True}


def test_overwriting_a_reviewed_label_clears_its_flag_first(tmp_path):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=4, seed=12)
    exp = _reviewed_export(tmp_path / "exp", seq.resolve())
    kept = tree(exp / "labels")
    args = ["predict", seq, "--out", exp, "--overwrite", "--no-propagate", "--frames", "0:3"]
    killed = cliprl(*args, *TINY, kill_at="labels/frame001.png")
    assert killed.returncode == 137
    assert tree(exp / "labels")["frame000.png"] != kept["frame000.png"]  # replaced ...
    assert _flags(exp) == {0: False, 1: False, 2: True, 3: True}  # ... so no longer reviewed
    assert cliprl(*args, *TINY).returncode == 0
    assert _flags(exp) == {0: False, 1: False, 2: False, 3: True}
    assert tree(exp / "labels")["frame003.png"] == kept["frame003.png"]


def test_a_killed_save_frames_run_leaves_nothing_reviewed_and_resumes_exactly(tmp_path):
    from napari_cliprl.io.export import read_export

    seq = write_sample_sequence(tmp_path / "seq", n_frames=4, seed=13)
    source = tree(seq)
    args = ["predict", seq, "--out", tmp_path / "out", "--save-frames", *TINY, "--steps", "1"]
    first = cliprl(*args, kill_at="labels/frame000.png")  # before the first label
    assert first.returncode == 137
    out = tmp_path / "out"
    assert _flags(out) == {} and (out / "left_frames" / "frame000.png").is_file()
    with pytest.raises(ValueError):
        read_export(out, reviewed_only=True)  # nothing here is training data
    second = cliprl(*args, kill_at="labels/frame002.png")  # frame 2's image, not its label
    assert second.returncode == 137
    assert (out / "left_frames" / "frame002.png").is_file()
    assert not (out / "labels" / "frame002.png").exists()
    assert cliprl(*args).returncode == 0
    reference = tmp_path / "reference"
    assert (
        cliprl(
            "predict", seq, "--out", reference, "--save-frames", *TINY, "--steps", "1"
        ).returncode
        == 0
    )
    got, want = tree(out), tree(reference)
    for digests in (got, want):
        digests.pop("manifest.json"), digests.pop(".cliprl.lock")
    assert got == want  # frame 2 was done again; every label has its frame
    assert _flags(out) == dict.fromkeys(range(4), False)
    assert tree(seq) == source  # nothing outside the output changed


def test_a_ground_truth_folder_is_refused_and_left_untouched(tmp_path):
    from PIL import Image

    video = _write_video(tmp_path / "clip.mp4", synthetic_clip(n_frames=2, size=(64, 80)).frames)
    gt = tmp_path / "seq_1"
    for sub in ("left_frames", "labels"):
        (gt / sub).mkdir(parents=True)
        Image.new("RGB", (80, 64), (12, 34, 56)).save(gt / sub / "frame000.png")
    custom = [{"name": "my-organ", "color": [12, 34, 56], "classid": 0}]
    (gt / "labels.json").write_text(json.dumps(custom))
    before = tree(tmp_path)
    for extra in ([], ["--overwrite"]):
        result = cliprl("predict", video, "--out", gt, *TINY, *extra)
        assert_refused(result, gt, "no manifest.json")
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    before[str(mine.relative_to(tmp_path))] = "dir"
    before["thesis/thesis.txt"] = hashlib.sha256(b"years of work").hexdigest()
    assert_refused(cliprl("predict", video, "--out", mine, *TINY, "--overwrite"), mine)
    assert tree(tmp_path) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cliprl("predict", video, "--out", empty, *TINY).returncode == 0


def test_another_schema_is_refused_even_with_overwrite(tmp_path):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=2, seed=14)
    out = tmp_path / "out"
    assert cliprl("predict", seq, "--out", out, *TINY).returncode == 0
    before = tree(out)
    other = cliprl(
        "predict", seq, "--out", out, *TINY, "--schema", "endovis2017-binary", "--overwrite"
    )
    assert_refused(other, out, "endovis2017-binary")
    assert tree(out) == before


def test_resume_never_replaces_an_existing_label(tmp_path):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=3, seed=15)
    out = tmp_path / "out"
    args = ["predict", seq, "--out", out, *TINY, "--steps", "1", "--save-steps"]
    assert cliprl(*args).returncode == 0
    hand = out / "labels" / "frame001.png"
    from napari_cliprl.io.export import write_labels

    write_labels(out, {"frame001": np.full((64, 80), 3, np.uint8)}, ENDOVIS2018, overwrite=True)
    edited = hand.read_bytes()
    (out / "steps" / "step_0" / "labels" / "frame001.png").unlink()
    assert cliprl(*args).returncode == 0
    assert hand.read_bytes() == edited  # a person's correction survives a resume
    assert (out / "steps" / "step_0" / "labels" / "frame001.png").is_file()


def test_temporaries_of_a_killed_run_are_removed_and_nothing_else(tmp_path):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=2, seed=16)
    out = tmp_path / "out"
    args = ["predict", seq, "--out", out, *TINY, "--save-frames"]
    assert cliprl(*args).returncode == 0
    stale = [
        out / ".schema.json.k2j3h4g5.tmp",
        out / "labels" / ".frame001.png.abcd_123.tmp",
        out / "left_frames" / ".frame000.png.zzzzzzzz.tmp",
        out / ".cliprl-tmp-manifest.json.x8y7z6",
    ]
    mine = [out / "notes.tmp", out / "labels" / ".mine.tmp"]
    for path in [*stale, *mine]:
        path.write_text("left behind")
    assert cliprl(*args).returncode == 0
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "left behind" for p in mine)


def test_a_second_writer_is_refused(tmp_path):
    from napari_cliprl.annotation.locking import FolderLock

    seq = write_sample_sequence(tmp_path / "seq", n_frames=2, seed=17)
    out = tmp_path / "out"
    assert cliprl("predict", seq, "--out", out, *TINY).returncode == 0
    lock = FolderLock.acquire(out)  # as a run in progress holds it
    try:
        before = tree(out)
        result = cliprl("predict", seq, "--out", out, *TINY, "--overwrite")
        assert_refused(result, out, f"pid {os.getpid()}")
        assert tree(out) == before
    finally:
        lock.release()


def test_manifest_entries_of_other_frames_keep_their_flags(tmp_path):
    from napari_cliprl.io.export import make_manifest, write_labels

    seq = write_sample_sequence(tmp_path / "seq", n_frames=2, seed=18)
    out = tmp_path / "out"
    source = (seq / "left_frames").resolve()
    manifest = make_manifest(source, ENDOVIS2018, [("extra", 7, True)])
    write_labels(out, {"extra": np.zeros((64, 80), np.uint8)}, ENDOVIS2018, manifest=manifest)
    assert main(["predict", str(seq), "--out", str(out), *TINY]) == 0
    flags = {f["name"]: f["reviewed"] for f in read_manifest(out)["frames"]}
    assert flags == {"frame000": False, "frame001": False, "extra": True}


def _contents(out: Path) -> dict[str, str]:
    """Everything in OUT but the run's own lock file (rewritten by every run that starts)."""
    return {k: v for k, v in tree(out).items() if k != ".cliprl.lock"}


def _mark_reviewed(out: Path, reviewed: dict[str, bool]) -> None:
    """A person's hand edit of OUT's manifest: these frames' reviewed flags."""
    manifest = read_manifest(out)
    for f in manifest["frames"]:
        f["reviewed"] = reviewed.get(f["name"], f["reviewed"])
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_a_reviewed_frame_whose_label_is_gone_is_refused_every_time(tmp_path):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=4, seed=19)
    out = tmp_path / "out"
    assert cliprl("predict", seq, "--out", out, *TINY).returncode == 0
    _mark_reviewed(out, {"frame002": True})
    (out / "labels" / "frame002.png").unlink()
    before = _contents(out)
    for _ in range(2):  # refused, and the manifest still says why the next time
        result = cliprl("predict", seq, "--out", out, *TINY)
        assert_refused(result, out / "labels" / "frame002.png", "marked reviewed", "missing")
        assert _contents(out) == before


def test_a_manifest_listing_a_frame_under_another_index_is_refused(tmp_path):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=4, seed=20)
    out = tmp_path / "out"
    assert cliprl("predict", seq, "--out", out, *TINY).returncode == 0
    manifest = read_manifest(out)
    manifest["frames"].append({"name": "frame001", "index": 3, "reviewed": True})
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = _contents(out)
    result = cliprl("predict", seq, "--out", out, "--overwrite", *TINY)
    assert_refused(result, out / "manifest.json", "'frame001' as frame 3", "frame 1")
    assert _contents(out) == before


def test_a_correction_never_silently_replaces_a_different_reviewed_label(tmp_path):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=4, seed=21)
    labels = _corrections(tmp_path / "corr", seq, ["frame001"])
    out = tmp_path / "out"
    assert cliprl("predict", seq, "--out", out, *TINY).returncode == 0  # proposals only
    _mark_reviewed(out, {"frame001": True})  # a person reviewed frame 1's proposal as it is
    before = _contents(out)
    args = ["predict", seq, "--out", out, *TINY, "--corrections", tmp_path / "corr"]
    assert_refused(cliprl(*args), out / "labels" / "frame001.png", "--overwrite")
    assert _contents(out) == before
    assert cliprl(*args, "--overwrite").returncode == 0  # named explicitly: replaced
    np.testing.assert_array_equal(_read_ids(out / "labels" / "frame001.png"), labels["frame001"])


def test_a_complete_folder_with_reviewed_frames_predicts_nothing(tmp_path, monkeypatch, capsys):
    seq = write_sample_sequence(tmp_path / "seq", n_frames=4, seed=22)
    _corrections(tmp_path / "corr", seq, ["frame001"])
    out = tmp_path / "out"
    args = ["predict", str(seq), "--out", str(out), "--arch", "tiny-test", "--device", "cpu"]
    args += ["--save-steps"]
    assert main([*args, "--corrections", str(tmp_path / "corr")]) == 0
    counter = _Counter(monkeypatch)
    capsys.readouterr()
    assert main(args) == 0  # frame 1 is reviewed in OUT now (an anchor, without step files)
    assert counter.frames == 0
    assert "4 of 4 frames already written" in capsys.readouterr().err


def test_a_reviewed_label_of_another_size_is_refused_naming_it(tmp_path):
    from napari_cliprl.io._png import write_png

    seq = write_sample_sequence(tmp_path / "seq", n_frames=4, seed=23)
    out = tmp_path / "out"
    assert cliprl("predict", seq, "--out", out, *TINY).returncode == 0
    _mark_reviewed(out, {"frame002": True})
    label = out / "labels" / "frame002.png"
    write_png(label, np.zeros((10, 12, 3), np.uint8), overwrite=True)  # a person's bad edit
    (out / "labels" / "frame000.png").unlink()
    before = _contents(out)
    result = cliprl("predict", seq, "--out", out, *TINY)
    assert_refused(result, label, "label map is 12x10", "marked reviewed")
    assert _contents(out) == before
