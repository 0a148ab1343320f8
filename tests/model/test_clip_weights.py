"""CLIP weights from every place a user with internet gets them, resolved offline.

A local open_clip state dict (.safetensors and .bin), an ``hf-hub:`` id and an open_clip
pretrained tag, each found in a pre-populated Hugging Face cache in a temporary HF_HOME laid
out as huggingface_hub writes it (``models--ORG--REPO/snapshots/<rev>/FILE`` + ``refs/main``).
Pickles are refused in one line that names the file and the accepted formats, and never with
advice to disable the safe loader. HF_HUB_OFFLINE=1 (conftest): nothing touches the network.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_cliprl.cli import main
from napari_cliprl.model import build_model, save_checkpoint
from napari_cliprl.model.weights import ClipWeightsError, visual_sha256
from napari_cliprl.predictor import Predictor

TINY_OPEN_CLIP = "cliprl-tiny-test"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _random_clip(name: str, seed: int) -> torch.nn.Module:
    from napari_cliprl._compat import import_open_clip
    from napari_cliprl.model.registry import register_open_clip_configs

    open_clip = import_open_clip()
    register_open_clip_configs(open_clip)
    torch.manual_seed(seed)
    return open_clip.create_model(name)


def _save(clip: torch.nn.Module, path: Path, dtype: torch.dtype = torch.float32) -> Path:
    state = {k: v.detach().to(dtype).contiguous().clone() for k, v in clip.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def _hf_cache(home: Path, repo: str, filename: str, source: Path) -> Path:
    """Put ``source`` in a Hugging Face cache under HF_HOME=``home`` as a download would."""
    org, name = repo.split("/")
    root = home / "hub" / f"models--{org}--{name}"
    snapshot = root / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(REVISION)
    blob = root / "blobs" / "0f1e2d3c"
    blob.parent.mkdir()
    shutil.copyfile(source, blob)
    (snapshot / filename).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot / filename


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    from huggingface_hub import constants

    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))  # read at import
    monkeypatch.setenv("NAPARI_CLIPRL_CACHE", str(tmp_path / "cliprl-cache"))
    return home


@pytest.fixture(scope="module")
def tiny_clip() -> torch.nn.Module:
    return _random_clip(TINY_OPEN_CLIP, seed=123)


def _assert_loaded(model, clip) -> None:
    """The backbone holds the file's vision tower (the positional embedding is resized)."""
    expected = clip.visual.state_dict()
    got = model.backbone.visual.state_dict()
    for name, tensor in expected.items():
        if not name.endswith("positional_embedding"):
            assert torch.equal(got[name], tensor), name
    assert model.config.clip_weights_sha256 == visual_sha256(clip.visual)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin", ".pt"])
def test_local_open_clip_state_dict_loads(tiny_clip, tmp_path, suffix):
    path = _save(tiny_clip, tmp_path / f"open_clip_model{suffix}")
    model = build_model("tiny-test", clip_weights=path)
    _assert_loaded(model, tiny_clip)
    assert model.config.clip_weights == str(path)


def test_a_folder_of_weights_and_a_wrapped_state_dict_load(tiny_clip, tmp_path):
    _save(tiny_clip, tmp_path / "folder" / "open_clip_model.safetensors")
    _assert_loaded(build_model("tiny-test", clip_weights=tmp_path / "folder"), tiny_clip)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in tiny_clip.state_dict().items()}}
    torch.save(wrapped, tmp_path / "wrapped.pth")
    _assert_loaded(build_model("tiny-test", clip_weights=tmp_path / "wrapped.pth"), tiny_clip)


def test_hf_hub_id_resolves_from_the_cache(tiny_clip, tmp_path, hf_home):
    source = _save(tiny_clip, tmp_path / "src.safetensors")
    _hf_cache(hf_home, "someorg/tiny-clip", "open_clip_model.safetensors", source)
    model = build_model("tiny-test", clip_weights="hf-hub:someorg/tiny-clip")
    _assert_loaded(model, tiny_clip)


def test_open_clip_tag_resolves_from_the_cache_and_checkpoints_reload_it(
    tiny_clip, tmp_path, hf_home, monkeypatch
):
    from open_clip import pretrained

    cfg = {"url": "", "hf_hub": "someorg/tiny-clip-tagged/", "quick_gelu": False}
    monkeypatch.setitem(pretrained._PRETRAINED, TINY_OPEN_CLIP, {"cachetest": cfg})
    source = _save(tiny_clip, tmp_path / "src.bin")
    _hf_cache(hf_home, "someorg/tiny-clip-tagged", "open_clip_pytorch_model.bin", source)
    model = build_model("tiny-test", clip_weights="cachetest")
    _assert_loaded(model, tiny_clip)
    folder = save_checkpoint(model, tmp_path / "ckpt")
    again = build_model(checkpoint=folder)  # the checkpoint names the tag: cache again
    _assert_loaded(again, tiny_clip)


class _Payload:
    """Unpickling this would create a file: the test proves no pickle is executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickles(tmp_path: Path) -> dict[str, Path]:
    marker = tmp_path / "EXECUTED"
    out = {}
    out["object.pt"] = tmp_path / "object.pt"
    torch.save({"weights": _Payload(marker)}, out["object.pt"])
    out["module.pth"] = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), out["module.pth"])
    out["plain.pkl"] = tmp_path / "plain.pkl"
    out["plain.pkl"].write_bytes(pickle.dumps({"weights": _Payload(marker)}))
    out["garbage.bin"] = tmp_path / "garbage.bin"
    out["garbage.bin"].write_bytes(b"\x00not a state dict\xff" * 10)
    out["numbers.bin"] = tmp_path / "numbers.bin"
    torch.save({"epoch": 3, "lr": 0.1}, out["numbers.bin"])
    return out


@pytest.mark.parametrize("name", ["object.pt", "module.pth", "plain.pkl", "garbage.bin",
                                  "numbers.bin"])  # fmt: skip
def test_pickles_and_junk_are_refused_in_one_line(tmp_path, name, recwarn):
    path = _pickles(tmp_path)[name]
    with pytest.raises(ClipWeightsError) as info:
        build_model("tiny-test", clip_weights=path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and message.startswith(str(path)), message
    assert ".safetensors" in message and "state dict" in message
    assert "weights_only" not in message
    assert not (tmp_path / "EXECUTED").exists()
    assert not any("weights_only" in str(w.message) for w in recwarn)


def test_weights_of_another_architecture_are_named(tiny_clip, tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    state["visual.proj"] = torch.zeros(5, 7)  # another width, as ViT-B-32 weights would have
    save_file(state, str(tmp_path / "other.safetensors"))
    del state["visual.ln_post.weight"]
    state["visual.proj"] = tiny_clip.state_dict()["visual.proj"]
    save_file(state, str(tmp_path / "missing.safetensors"))
    for name, words in (("other", ("visual.proj", "(5, 7)", "(96, 64)")),
                        ("missing", ("visual.ln_post.weight", "missing"))):  # fmt: skip
        path = tmp_path / f"{name}.safetensors"
        with pytest.raises(ClipWeightsError) as info:
            build_model("tiny-test", clip_weights=path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(str(path)), message
        assert "cliprl-tiny-test" in message and all(w in message for w in words), message


def test_a_checkpoint_naming_a_pickle_is_refused_in_one_line(tiny_clip, tmp_path, capsys):
    good = _save(tiny_clip, tmp_path / "w.safetensors")
    folder = save_checkpoint(build_model("tiny-test", clip_weights=good), tmp_path / "ckpt")
    bad = _pickles(tmp_path)["object.pt"]
    config = (folder / "config.json").read_text().replace(str(good), str(bad))
    (folder / "config.json").write_text(config)
    with pytest.raises(ClipWeightsError, match=f"^{bad}"):
        build_model(checkpoint=folder)
    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    Image.new("RGB", (40, 32)).save(frames / "a.png")
    args = ["predict", str(frames), "--out", str(tmp_path / "out"), "--checkpoint", str(folder)]
    assert main([*args, "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"cliprl predict: error: {bad}")
    assert "weights_only" not in err and not (tmp_path / "EXECUTED").exists()


def test_pickle_on_the_command_line_is_one_line(tmp_path):
    bad = _pickles(tmp_path)["object.pt"]
    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    Image.new("RGB", (40, 32)).save(frames / "a.png")
    cliprl = Path(sys.executable).parent / "cliprl"
    cmd = [str(cliprl), "predict", str(frames), "--out", str(tmp_path / "out"), "--arch",
           "tiny-test", "--clip-weights", str(bad), "--device", "cpu", "--quiet"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cliprl predict: error: {bad}"), proc.stderr
    assert "weights_only" not in proc.stderr and not (tmp_path / "EXECUTED").exists()


@pytest.fixture(scope="module")
def vit_b_16_file(tmp_path_factory) -> Path:
    """A random ViT-B-16 open_clip state dict in fp16, as released weights are (~300 MB)."""
    path = tmp_path_factory.mktemp("vit") / "vit-b-16.safetensors"
    return _save(_random_clip("ViT-B-16", seed=0), path, torch.float16)


@pytest.mark.slow
def test_vit_b_16_from_a_local_file_through_cliprl_predict(tmp_path, vit_b_16_file):
    """The real architecture, random weights saved as a user's download would be, end to end."""
    from napari_cliprl.io.video import write_video

    weights = vit_b_16_file
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 80, 3), np.uint8)
    video = write_video(tmp_path / "clip.mp4", frames, fps=5)
    out = tmp_path / "out"
    cliprl = Path(sys.executable).parent / "cliprl"
    env = {**os.environ, "NAPARI_CLIPRL_CACHE": str(tmp_path / "cache"),
           "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    cmd = [str(cliprl), "predict", str(video), "--out", str(out), "--arch", "ViT-B-16",
           "--clip-weights", str(weights), "--device", "cpu", "--steps", "1"]  # fmt: skip
    cmd.append("--quiet")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "random initialisation" not in proc.stderr
    assert len(list((out / "labels").glob("*.png"))) == 2


@pytest.mark.slow
def test_vit_b_16_openai_tag_from_the_cache(vit_b_16_file, hf_home):
    """``--clip-weights openai``: open_clip's real tag, found where a download would put it."""
    from open_clip import get_pretrained_cfg

    repo = get_pretrained_cfg("ViT-B-16", "openai")["hf_hub"].strip("/")
    _hf_cache(hf_home, repo, "open_clip_model.safetensors", vit_b_16_file)
    model = build_model("ViT-B-16", clip_weights="openai")
    expected = read_state(vit_b_16_file)
    got = model.backbone.visual.state_dict()
    assert torch.equal(got["conv1.weight"], expected["visual.conv1.weight"].float())
    assert model.config.clip_weights == "openai" and model.config.clip_weights_sha256
    frame = np.random.default_rng(1).integers(0, 256, (48, 60, 3), np.uint8)
    assert Predictor(model, device="cpu").predict(frame, steps=1).labels.shape == (48, 60)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))
