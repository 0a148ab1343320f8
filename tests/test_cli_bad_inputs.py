"""Every subcommand of the real ``cliprl`` console script, fed bad input (issue 10).

Malformed JSON (truncated, not an object, numbers too big, wrong types), truncated media,
decompression bombs, special files (FIFOs, symbolic-link loops), out-of-range options and
pickle files given as CLIP weights. For every case: exit status 2, exactly one line on stderr,
``cliprl <command>: error: ...`` naming the file or option, no traceback, never advice to
disable a check, nothing changed outside the output folder, and no half result inside it.
A case that hangs fails after ``DEADLINE`` seconds instead of blocking the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# The builders of hostile files (tests/io) and of tiny training data (tests/training).
_TESTS = Path(__file__).resolve().parent
for _folder in (_TESTS / "io", _TESTS / "training"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from _hostile import fifo, link_loop, lying_avi, png_bomb, truncate  # noqa: E402
from _io_builders import make_endovis2018_seq, save_png, write_video  # noqa: E402
from _training_data import write_export  # noqa: E402

pytestmark = pytest.mark.slow

CLIPRL = Path(sys.executable).parent / "cliprl"
DEADLINE = 120  # seconds per case: a hang (e.g. a FIFO opened) fails instead of blocking CI
PICKLE_RAN = "CLIPRL-BAD-INPUT-PICKLE-RAN"  # printed only if a pickle given as weights is run
PREDICT = ["--device", "cpu", "--quiet"]
TINY_PREDICT = ["--arch", "tiny-test", *PREDICT]
FINETUNE = ["--arch", "tiny-test", "--input-size", "64", "80", "--device", "cpu", "--epochs", "1"]
FINETUNE += ["--rl-iters", "0", "--imitation-iters", "0", "--batch-size", "2", "--quiet"]
EVALUATE = ["--device", "cpu"]


@dataclass
class Case:
    """``cliprl ARGV`` must fail naming every one of ``names``; ``out`` is the output folder
    (None: the command writes nothing), which must not exist before unless ``out_exists``."""

    argv: list[object]
    names: list[object]
    out: Path | None = None
    out_exists: bool = False


class _RunsPrint:
    """Unpickling this calls ``print(PICKLE_RAN)``: harmless proof that a pickle was run."""

    def __reduce__(self):
        return (print, (PICKLE_RAN,))


# ---------------------------------------------------------------- builders of the inputs


def _video(root: Path, n: int = 5) -> Path:
    path = root / "clip.mp4"
    write_video(path, n, h=32, w=48, codec="mpeg4")
    return path


def _frames(root: Path, n: int = 3) -> Path:
    folder = root / "frames"
    rng = np.random.default_rng(0)
    for k in range(n):
        save_png(folder / f"frame{k:03d}.png", rng.integers(0, 256, (32, 48, 3)))
    return folder


def _checkpoint(root: Path, pristine: Path, **config: object) -> Path:
    """A copy of the tiny checkpoint; ``config`` replaces keys of config.json (top and model)."""
    folder = root / "ckpt"
    shutil.copytree(pristine, folder)
    if config:
        file = folder / "config.json"
        data = json.loads(file.read_text())
        for key, value in config.items():
            data[key] = value
            if key in data.get("model", {}):
                data["model"][key] = value
        file.write_text(json.dumps(data))
    return folder


def _checkpoint_text(root: Path, pristine: Path, text: str) -> tuple[Path, Path]:
    folder = _checkpoint(root, pristine)
    (folder / "config.json").write_text(text)
    return folder, folder / "config.json"


def _pickle_weights(path: Path) -> Path:
    """A weight file that is a pickle running ``print``: .pt as torch.save writes it (zip),
    anything else as a bare pickle."""
    if path.suffix == ".pt":
        import torch

        torch.save({"visual.proj": _RunsPrint()}, path)
    else:
        path.write_bytes(pickle.dumps({"visual.proj": _RunsPrint()}))
    return path


def _export(root: Path) -> Path:
    return write_export(root / "export", n_frames=6)


def _export_with(root: Path, name: str, text: str) -> tuple[Path, Path]:
    folder = _export(root)
    (folder / name).write_text(text)
    return folder, folder / name


def _first_png(folder: Path, sub: str) -> Path:
    return sorted((folder / sub).glob("*.png"))[0]


TRUNCATED_JSON = '{"name": "mine", "classes": [{"id": 0, "name": "backgr'
HUGE_INT = "9" * 5000  # beyond Python's int-from-text limit (4300 digits)


# ---------------------------------------------------------------- cliprl predict


def _predict(root: Path, src: Path, *extra: object, out: Path | None = None) -> Case:
    out = out or root / "out"
    return Case(["predict", src, "--out", out, *extra], [], out=out)


def _p_option(*extra: object) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        case = _predict(root, _video(root), *TINY_PREDICT, *extra)
        case.names = [extra[0]]
        return case

    return build


def _p_source(make: Callable[[Path], tuple[Path, Path]]) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        src, named = make(root)
        case = _predict(root, src, *TINY_PREDICT)
        case.names = [named]
        return case

    return build


def _truncated_video(root: Path) -> tuple[Path, Path]:
    path = truncate(_video(root, n=20), keep=0.4)
    return path, path


def _lying(**kw: object) -> Callable[[Path], tuple[Path, Path]]:
    def make(root: Path) -> tuple[Path, Path]:
        path = lying_avi(root / "clip.avi", **kw)
        return path, path

    return make


def _frames_with(damage: Callable[[Path], object], k: int = 1) -> Callable:
    def make(root: Path) -> tuple[Path, Path]:
        folder = _frames(root)
        path = sorted(folder.glob("*.png"))[k]
        damage(path)
        return folder, path

    return make


def _special_src(kind: Callable[[Path], Path], name: str) -> Callable:
    def make(root: Path) -> tuple[Path, Path]:
        path = kind(root / name)
        return path, path

    return make


def _p_schema(text: str) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        schema = root / "schema.json"
        schema.write_text(text)
        case = _predict(root, _video(root), *TINY_PREDICT, "--schema", schema)
        case.names = [schema]
        return case

    return build


def _p_checkpoint(text: str | None = None, **config: object) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        if text is None:
            folder = _checkpoint(root, ckpt, **config)
        else:
            folder, _ = _checkpoint_text(root, ckpt, text)
        case = _predict(root, _video(root), *PREDICT, "--checkpoint", folder)
        case.names = [folder]
        return case

    return build


def _p_truncated_weights(root: Path, ckpt: Path) -> Case:
    folder = _checkpoint(root, ckpt)
    truncate(folder / "weights.safetensors", keep=0.5)
    case = _predict(root, _video(root), *PREDICT, "--checkpoint", folder)
    case.names = [folder / "weights.safetensors"]
    return case


def _p_config_fifo(root: Path, ckpt: Path) -> Case:
    folder = _checkpoint(root, ckpt)
    fifo(folder / "config.json")
    case = _predict(root, _video(root), *PREDICT, "--checkpoint", folder)
    case.names = [folder / "config.json"]
    return case


def _p_clip_weights(name: str) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        weights = _pickle_weights(root / name)
        case = _predict(root, _video(root), *TINY_PREDICT, "--clip-weights", weights)
        case.names = [weights]
        return case

    return build


def _p_own_output(text: str) -> Callable[..., Case]:
    """--out an earlier output of cliprl predict whose manifest.json is damaged."""

    def build(root: Path, ckpt: Path) -> Case:
        out, manifest = _export_with(root, "manifest.json", text)
        case = _predict(root, _video(root), *TINY_PREDICT, out=out)
        case.names, case.out_exists = [manifest], True
        return case

    return build


PREDICT_CASES: dict[str, Callable[..., Case]] = {
    "steps-negative": _p_option("--steps", "-1"),
    "steps-huge": _p_option("--steps", str(10**6)),
    "frames-out-of-range": _p_option("--frames", "7"),
    "frames-select-none": _p_option("--frames", "100:200"),
    "corrections-missing": _p_option("--corrections", "no-such-folder"),
    "video-truncated": _p_source(_truncated_video),
    "avi-lies-frame-count": _p_source(_lying(claim=10**9)),
    "avi-lies-frame-size": _p_source(_lying(size=(100_000, 100_000))),
    "frame-png-bomb": _p_source(_frames_with(lambda p: png_bomb(p, 10_000, 9_000))),
    "frame-png-truncated": _p_source(_frames_with(lambda p: truncate(p, 0.5), k=0)),
    "src-fifo": _p_source(_special_src(fifo, "clip.mp4")),
    "src-link-loop": _p_source(_special_src(link_loop, "clip.mp4")),
    "schema-truncated": _p_schema(TRUNCATED_JSON),
    "schema-not-an-object": _p_schema("[1, 2, 3]"),
    "schema-huge-number": _p_schema('{"name": "mine", "classes": ' + HUGE_INT + "}"),
    "checkpoint-input-size-huge": _p_checkpoint(input_size=[100_000, 100_000]),
    "checkpoint-config-truncated": _p_checkpoint('{"format": "napari-cliprl/checkpoint", "arc'),
    "checkpoint-steps-wrong-type": _p_checkpoint(steps="three"),
    "checkpoint-weights-truncated": _p_truncated_weights,
    "checkpoint-config-fifo": _p_config_fifo,
    "clip-weights-pickle-pt": _p_clip_weights("weights.pt"),
    "out-manifest-truncated": _p_own_output('{"format": "napari-cliprl/export", "frames": [{'),
    "out-manifest-not-an-object": _p_own_output('"manifest"'),
}


# ---------------------------------------------------------------- cliprl finetune


def _finetune(root: Path, data: Path, *extra: object) -> Case:
    out = root / "trained"
    return Case(["finetune", "--data", data, "--out", out, *FINETUNE, *extra], [], out=out)


def _f_option(*extra: object) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        case = _finetune(root, _export(root), *extra)
        case.names = [extra[0]]
        return case

    return build


def _f_data(make: Callable[[Path], tuple[Path, Path]]) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        data, named = make(root)
        case = _finetune(root, data)
        case.names = [named]
        return case

    return build


def _export_json(name: str, text: str) -> Callable[[Path], tuple[Path, Path]]:
    return lambda root: _export_with(root, name, text)


def _export_png(sub: str, damage: Callable[[Path], object]) -> Callable:
    def make(root: Path) -> tuple[Path, Path]:
        folder = _export(root)
        path = _first_png(folder, sub)
        damage(path)
        return folder, path

    return make


def _labels_json_only(text: str) -> Callable[[Path], tuple[Path, Path]]:
    """An export without schema.json, so that its damaged labels.json is read."""

    def make(root: Path) -> tuple[Path, Path]:
        folder, named = _export_with(root, "labels.json", text)
        (folder / "schema.json").unlink()
        return folder, named

    return make


def _endovis2018_truncated_label(root: Path) -> tuple[Path, Path]:
    """(An export skips a label PNG cut short, as a half-written frame; a dataset never does.)"""
    seq, _, _ = make_endovis2018_seq(root / "train", n=4, h=64, w=80)
    return seq, truncate(seq / "labels" / "frame001.png", 0.5)


def _f_from(root: Path, ckpt: Path) -> Case:
    folder = _checkpoint(root, ckpt, input_size=[100_000, 100_000])
    case = _finetune(root, _export(root), "--from", folder)
    case.argv.remove("--arch")
    case.argv.remove("tiny-test")
    case.names = [folder]
    return case


def _f_resume(root: Path, ckpt: Path) -> Case:
    """--resume into a checkpoint whose saved config.json (the run's state) was cut short."""
    case = _finetune(root, _export(root), "--resume")
    _checkpoint_text(root, ckpt, '{"format": "napari-cliprl/checkpoint", "ar')
    (root / "ckpt").rename(case.out)
    case.names, case.out_exists = [case.out / "config.json"], True
    return case


def _f_clip_weights(root: Path, ckpt: Path) -> Case:
    weights = _pickle_weights(root / "open_clip_pytorch_model.bin")
    case = _finetune(root, _export(root), "--clip-weights", weights)
    case.names = [weights]
    return case


FINETUNE_CASES: dict[str, Callable[..., Case]] = {
    "lr-nan": _f_option("--lr", "nan"),
    "val-fraction-1.5": _f_option("--val-fraction", "1.5"),
    "batch-size-0": _f_option("--batch-size", "0"),
    "max-steps-negative": _f_option("--max-steps", "-1"),
    "input-size-huge": _f_option("--input-size", "100000", "100000"),
    "labels-json-truncated": _f_data(_labels_json_only('[{"name": "background", "col')),
    "manifest-not-an-object": _f_data(_export_json("manifest.json", "[]")),
    "manifest-huge-number": _f_data(
        _export_json("manifest.json", '{"format": "napari-cliprl/export", "frames": 1e999}')
    ),
    "schema-wrong-types": _f_data(_export_json("schema.json", '{"name": 5, "classes": "all"}')),
    "endovis2018-label-png-truncated": _f_data(_endovis2018_truncated_label),
    "frame-png-bomb": _f_data(_export_png("left_frames", lambda p: png_bomb(p, 10_000, 9_000))),
    "data-fifo": _f_data(lambda root: (fifo(root / "export"),) * 2),
    "from-checkpoint-input-size-huge": _f_from,
    "resume-config-truncated": _f_resume,
    "clip-weights-pickle-bin": _f_clip_weights,
}


# ---------------------------------------------------------------- cliprl evaluate


def _evaluate(root: Path, data: Path, ckpt: Path, *extra: object) -> Case:
    return Case(["evaluate", "--data", data, "--checkpoint", ckpt, *EVALUATE, *extra], [])


def _e_option(*extra: object) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        case = _evaluate(root, _export(root), _checkpoint(root, ckpt), *extra)
        case.names = [extra[0]]
        return case

    return build


def _e_checkpoint(text: str | None = None, **config: object) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        if text is None:
            folder = _checkpoint(root, ckpt, **config)
        else:
            folder, _ = _checkpoint_text(root, ckpt, text)
        case = _evaluate(root, _export(root), folder)
        case.names = [folder]
        return case

    return build


def _e_data(make: Callable[[Path], tuple[Path, Path]]) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        data, named = make(root)
        case = _evaluate(root, data, _checkpoint(root, ckpt))
        case.names = [named]
        return case

    return build


def _e_clip_weights(root: Path, ckpt: Path) -> Case:
    weights = _pickle_weights(root / "weights.pt")
    case = _evaluate(root, _export(root), _checkpoint(root, ckpt), "--clip-weights", weights)
    case.names = [weights]
    return case


def _e_json_fifo(root: Path, ckpt: Path) -> Case:
    report = fifo(root / "report.json")
    case = _evaluate(root, _export(root), _checkpoint(root, ckpt), "--json", report)
    case.names = [report]
    return case


EVALUATE_CASES: dict[str, Callable[..., Case]] = {
    "steps-negative": _e_option("--steps", "-1"),
    "steps-huge": _e_option("--steps", str(10**6)),
    "checkpoint-config-not-an-object": _e_checkpoint("[]"),
    "checkpoint-input-size-huge": _e_checkpoint(input_size=[100_000, 100_000]),
    "checkpoint-input-size-wrong-type": _e_checkpoint(input_size="big"),
    "manifest-truncated": _e_data(_export_json("manifest.json", '{"frames": [{"name": "fr')),
    "data-link-loop": _e_data(lambda root: (link_loop(root / "export"),) * 2),
    "clip-weights-pickle-pt": _e_clip_weights,
    "json-fifo": _e_json_fifo,
}


# ---------------------------------------------------------------- cliprl convert


def _convert(src: Path, out: Path, *extra: object) -> Case:
    return Case(["convert", src, out, *extra], [], out=out)


def _index(root: Path) -> Path:
    seq = root / "index" / "seq_1"
    for k in range(3):
        save_png(seq / f"frame{k:03d}.png", np.full((4, 5), k, np.uint8))
    return root / "index"


def _c_index(damage: Callable[[Path], Path]) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        src = _index(root)
        named = damage(src / "seq_1")
        case = _convert(src, root / "converted", "--from", "index", "--to", "endovis2018")
        case.names = [named]
        return case

    return build


def _schema_file(text: str) -> Callable[[Path], Path]:
    def damage(seq: Path) -> Path:
        (seq / "schema.json").write_text(text)
        return seq / "schema.json"

    return damage


def _c_2018_labels_json(root: Path, ckpt: Path) -> Case:
    seq, _, _ = make_endovis2018_seq(root / "train")
    (seq / "labels.json").write_text('{"labels": "not a list"}')
    case = _convert(root / "train", root / "converted", "--from", "endovis2018")
    case.names = [seq / "labels.json"]
    return case


def _c_export_manifest(root: Path, ckpt: Path) -> Case:
    src, manifest = _export_with(root, "manifest.json", '{"format": "napari-cliprl/exp')
    case = _convert(src, root / "converted", "--from", "export")
    case.names = [manifest]
    return case


def _c_src_link_loop(root: Path, ckpt: Path) -> Case:
    src = link_loop(root / "index")
    case = _convert(src, root / "converted", "--from", "index", "--to", "endovis2018")
    case.names = [src]
    return case


def _c_schema_fifo(root: Path, ckpt: Path) -> Case:
    schema = fifo(root / "schema.json")
    src = _index(root)
    case = _convert(src, root / "converted", "--from", "index", "--to", "endovis2018")
    case.argv += ["--schema", schema]
    case.names = [schema]
    return case


CONVERT_CASES: dict[str, Callable[..., Case]] = {
    "index-schema-truncated": _c_index(_schema_file(TRUNCATED_JSON)),
    "index-schema-huge-number": _c_index(_schema_file('{"name": "x", "classes": 1e999}')),
    "index-png-truncated": _c_index(lambda seq: truncate(seq / "frame001.png", 0.5)),
    "index-png-bomb": _c_index(lambda seq: png_bomb(seq / "frame001.png", 10_000, 9_000)),
    "endovis2018-labels-json-not-a-list": _c_2018_labels_json,
    "export-manifest-truncated": _c_export_manifest,
    "src-link-loop": _c_src_link_loop,
    "schema-fifo": _c_schema_fifo,
}


# ---------------------------------------------------------------- cliprl demo


def _d_option(*extra: object) -> Callable[..., Case]:
    def build(root: Path, ckpt: Path) -> Case:
        shot = root / "demo.png"
        return Case(["demo", "--screenshot", shot, *extra], [extra[0]], out=shot)

    return build


DEMO_CASES: dict[str, Callable[..., Case]] = {
    "steps-negative": _d_option("--steps", "-1"),
    "steps-huge": _d_option("--steps", str(10**6)),
    "frames-zero": _d_option("--frames", "0"),
    "frames-huge": _d_option("--frames", str(10**9)),
    "timeout-nan": _d_option("--timeout", "nan"),
}


CASES = {
    f"{command}-{name}": build
    for command, cases in (
        ("predict", PREDICT_CASES),
        ("finetune", FINETUNE_CASES),
        ("evaluate", EVALUATE_CASES),
        ("convert", CONVERT_CASES),
        ("demo", DEMO_CASES),
    )
    for name, build in cases.items()
}


# ---------------------------------------------------------------- the checks


def tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Relative path -> content hash of everything under ``root`` except ``skip``. Never
    follows a symbolic link nor opens a special file (a FIFO would block)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d != skip]
        for name in [*dirs, *files]:
            path = here / name
            if path == skip:
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                value = "link -> " + os.readlink(path)
            elif stat.S_ISDIR(info.st_mode):
                value = "dir"
            elif stat.S_ISREG(info.st_mode):
                value = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                value = f"special {stat.S_IFMT(info.st_mode):o}"
            out[str(path.relative_to(root))] = value
    return out


def assert_no_half_result(out: Path) -> None:
    """``out``, new before the run, holds nothing torn: no temporary file, every JSON and PNG
    file complete, and (cliprl predict, which resumes) the manifest lists exactly the label
    files there. A checkpoint or report is never left behind by a refused run."""
    from PIL import Image

    files = [p for p in out.rglob("*") if not p.is_dir()] if out.is_dir() else [out]
    names = [str(p.relative_to(out)) if p != out else p.name for p in files]
    assert not [n for n in names if "tmp" in n.lower() or n.endswith(".partial")], names
    assert not [n for n in names if n.endswith((".safetensors", ".pt"))], names
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".png":
            with Image.open(path) as img:
                img.load()
    if (out / "manifest.json").is_file():
        listed = {f["name"] for f in json.loads((out / "manifest.json").read_text())["frames"]}
        assert listed == {p.stem for p in (out / "labels").glob("*.png")}, names
    else:
        assert not [n for n in names if n.endswith(".png")], names


@pytest.fixture(scope="module")
def pristine_checkpoint(tmp_path_factory) -> Path:
    from napari_cliprl.model.build import build_model
    from napari_cliprl.model.checkpoint import save_checkpoint

    model = build_model("tiny-test", input_size=(64, 80))
    return save_checkpoint(model, tmp_path_factory.mktemp("pristine") / "ckpt")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_naming_it_and_changes_nothing(
    case: str, tmp_path: Path, pristine_checkpoint: Path
) -> None:
    c = CASES[case](tmp_path, pristine_checkpoint)
    command = str(c.argv[0])
    assert c.out is None or c.out_exists == c.out.exists(), c.out
    before = tree(tmp_path, skip=None if c.out_exists else c.out)
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("CLIPRL_DEBUG", None)
    argv = [str(CLIPRL), *(str(a) for a in c.argv)]
    try:
        proc = subprocess.run(
            argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"cliprl {command} hung for {DEADLINE} s: {argv}")
    err = proc.stderr.strip()
    everything = proc.stdout + proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], err[-3000:])
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"cliprl {command}: error: "), err
    assert "Traceback" not in everything, everything
    assert "weights_only=False" not in everything, err
    assert PICKLE_RAN not in everything, "a pickle given as weights was run"
    for name in c.names:
        assert str(name) in err, f"{name} not named in: {err}"
    assert tree(tmp_path, skip=None if c.out_exists else c.out) == before
    if c.out is not None and not c.out_exists and c.out.exists():
        assert_no_half_result(c.out)
