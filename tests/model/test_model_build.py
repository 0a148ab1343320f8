"""Building the tiny-test CLIPRL: shapes per step, determinism, backbone maths, weight errors."""

from __future__ import annotations

import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from napari_cliprl.config import ModelConfig
from napari_cliprl.model import build_model, list_architectures
from napari_cliprl.model.build import get_architecture, set_backbone_trainable
from napari_cliprl.model.weights import WeightsUnavailableError
from napari_cliprl.schemas import get_schema


@pytest.fixture(scope="module")
def tiny():
    return build_model("tiny-test")


def _images(seed: int = 0, size: tuple[int, int] = (128, 160)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, *size, generator=g)


def test_registry_lists_the_three_architectures():
    assert list_architectures() == ["ViT-B-16", "ViT-B-32", "tiny-test"]
    with pytest.raises(ValueError, match="unknown architecture 'ViT-X'.*tiny-test"):
        build_model("ViT-X")


def test_tiny_model_is_small_and_in_eval_mode(tiny):
    assert not tiny.training
    n = sum(p.numel() for p in tiny.parameters())
    assert 1e5 < n < 3.5e6
    assert sum(p.numel() for p in tiny.decoder.parameters()) < 2e6
    assert not any(p.requires_grad for p in tiny.backbone.parameters())
    assert all(p.requires_grad for p in tiny.decoder.parameters())
    assert tiny.text_bank.residual.requires_grad


def test_forward_shapes_per_step(tiny):
    K = get_schema("endovis2018").num_classes
    with torch.no_grad():
        out = tiny(_images(), steps=3)
    assert out.zero_shot.shape == (2, K, 8, 10)
    assert len(out.logits) == 4 and len(out.actions) == 3
    for logits in out.logits:
        assert logits.shape == (2, K, 32, 40)
    for actions in out.actions:
        assert actions.shape == (2, 32, 40) and actions.dtype == torch.long
        assert int(actions.max()) < K + 3
    assert out.pixel_features.shape == (2, tiny.config.decoder_dim, 32, 40)
    assert [m.shape for m in out.features.maps] == [(2, 96, 8, 10)] * 4
    assert out.features.dense.shape == (2, 64, 8, 10)
    torch.testing.assert_close(out.features.dense.norm(dim=1), torch.ones(2, 8, 10))
    with torch.no_grad():
        assert len(tiny(_images(), steps=0).logits) == 1
        assert len(tiny(_images()).logits) == tiny.config.steps + 1


def test_refine_from_features_matches_forward(tiny):
    x = _images(1)
    with torch.no_grad():
        full = tiny(x, steps=2)
        again = tiny(None, steps=2, features=tiny.encode(x))
    for a, b in zip(full.logits, again.logits):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="images or precomputed features"):
        tiny(None)


def test_same_seed_same_model_and_outputs(tiny):
    other = build_model("tiny-test")
    for (name, a), (_, b) in zip(tiny.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), name
    x = _images(2)
    with torch.no_grad():
        a, b = tiny(x, steps=2), other(x, steps=2)
    assert all(torch.equal(p, q) for p, q in zip(a.logits, b.logits))
    assert tiny.backbone_fingerprint() == other.backbone_fingerprint()


def test_sampled_refinement_changes_logits_through_actions(tiny):
    x = _images(3)
    with torch.no_grad():
        features = tiny.encode(x)
        _, L0, pixel = tiny.decode(features)
        g = torch.Generator().manual_seed(0)
        logits, actions = tiny.refine(L0, pixel, 2, greedy=False, generator=g)
    assert (actions[0] != 0).any()
    assert torch.equal(logits[0], tiny.agent.transition(L0, actions[0]))
    assert not torch.equal(logits[0], L0)


def test_backbone_last_map_and_clearclip_match_a_plain_computation(tiny):
    visual = tiny.backbone.visual
    x = _images(4)
    with torch.no_grad():
        feats = tiny.encode(x)
        tokens = visual._embeds(x)  # patch + class tokens, positional embedding, ln_pre
        blocks = visual.transformer.resblocks
        for block in blocks[:-1]:
            tokens = block(tokens)
        last = blocks[-1](tokens)
        # ClearCLIP by hand: q-q attention of the last block, no residual, no FFN
        attn = blocks[-1].attn
        y = blocks[-1].ln_1(tokens)
        C = y.shape[-1]
        q = F.linear(y, attn.in_proj_weight[:C], attn.in_proj_bias[:C])
        v = F.linear(y, attn.in_proj_weight[2 * C :], attn.in_proj_bias[2 * C :])
        heads = attn.num_heads
        qh = q.reshape(2, -1, heads, C // heads).transpose(1, 2)
        vh = v.reshape(2, -1, heads, C // heads).transpose(1, 2)
        w = torch.softmax(qh @ qh.transpose(-1, -2) / (C // heads) ** 0.5, dim=-1)
        out = attn.out_proj((w @ vh).transpose(1, 2).reshape(2, -1, C))
        dense = F.normalize(visual.ln_post(out) @ visual.proj, dim=-1)
    expected_map = last[:, 1:].reshape(2, 8, 10, C).permute(0, 3, 1, 2)
    torch.testing.assert_close(feats.maps[3], expected_map, rtol=1e-4, atol=1e-4)
    expected_dense = dense[:, 1:].reshape(2, 8, 10, -1).permute(0, 3, 1, 2)
    torch.testing.assert_close(feats.dense, expected_dense, rtol=1e-4, atol=1e-4)


def test_non_square_input_size_resizes_the_positional_embedding():
    model = build_model("tiny-test", input_size=(96, 160))
    assert model.backbone.grid_size == (6, 10)
    assert model.backbone.visual.positional_embedding.shape[0] == 6 * 10 + 1
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 160), steps=1)
    assert out.logits[-1].shape[-2:] == (24, 40)
    with pytest.raises(ValueError, match="expects \\(96, 160\\)"):
        model.encode(torch.randn(1, 3, 128, 160))


def test_preprocess_resizes_and_normalises(tiny):
    images = torch.full((1, 50, 70, 3), 255, dtype=torch.uint8)
    x = tiny.preprocess(images)
    assert x.shape == (1, 3, 128, 160)
    expected = (1 - torch.tensor(tiny.config.image_mean)) / torch.tensor(tiny.config.image_std)
    torch.testing.assert_close(x[0, :, 5, 5], expected)
    with pytest.raises(ValueError, match="uint8 B x H x W x 3"):
        tiny.preprocess(torch.zeros(1, 3, 50, 70))


def test_zero_shot_takes_the_best_prompt_name_per_class(tiny):
    bank = tiny.text_bank
    S = bank.name_embeddings.shape[0]
    dense = bank.name_embeddings.T.reshape(1, -1, 1, S)  # one pixel per prompt name
    scores = bank.zero_shot(dense)
    assert scores.shape == (1, tiny.num_classes, 1, S)
    for c in range(tiny.num_classes):
        names = (bank.name_class == c).nonzero()[:, 0]
        expected = (bank.name_embeddings[names] @ bank.name_embeddings.T).amax(0)
        torch.testing.assert_close(scores[0, c, 0], expected)


def test_trainable_blocks_and_config_roundtrip():
    model = build_model("tiny-test")
    set_backbone_trainable(model, 1)
    trainable = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert any(".resblocks.3." in n for n in trainable)
    assert not any(".resblocks.2." in n for n in trainable)
    cfg = ModelConfig.from_dict(model.config.to_dict())
    assert cfg == model.config
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"bogus": 1})


def test_offline_missing_weights_fail_fast_and_clearly(monkeypatch, tmp_path):
    import napari_cliprl.model.weights as weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/clip
    monkeypatch.setattr(weights, "_hf_cached", lambda repo, names: None)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("ViT-B-16", clip_weights="openai")
    assert time.perf_counter() - start < 5.0
    message = str(info.value)
    assert "'openai'" in message and "HF_HUB_OFFLINE" in message and "--clip-weights" in message
    with pytest.raises(WeightsUnavailableError, match="--clip-weights"):
        build_model("ViT-B-16", clip_weights="hf-hub:org/not-cached")


def test_missing_local_weight_file_and_unknown_tag_are_named(tmp_path):
    missing = tmp_path / "nope" / "clip.bin"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_model("ViT-B-16", clip_weights=str(missing))
    with pytest.raises(ValueError, match="unknown CLIP weights 'not-a-tag'.*openai"):
        build_model("ViT-B-16", clip_weights="not-a-tag")


def test_architecture_defaults_are_patch_multiples_with_4_to_5_aspect():
    for name in list_architectures():
        spec = get_architecture(name)
        patch = 32 if name == "ViT-B-32" else 16
        for h, w in (spec.cpu_input_size, spec.gpu_input_size):
            assert h % patch == 0 and w % patch == 0
            assert abs(w / h - 1.25) < 0.05


def test_random_big_architecture_warns(monkeypatch):
    """Only the warning path: building ViT-B-16 for real is left to the benchmark."""
    import napari_cliprl.model.build as build

    class StopBuildError(Exception):
        pass

    def stop(*args, **kwargs):
        raise StopBuildError

    monkeypatch.setattr(build, "_create_clip", stop)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(StopBuildError):
        warnings.simplefilter("always")
        build_model("ViT-B-16")
    assert any("random initialisation" in str(w.message) for w in caught)


def test_truncated_text_encoding_equals_open_clip():
    from napari_cliprl._compat import import_open_clip
    from napari_cliprl.model.registry import register_open_clip_configs
    from napari_cliprl.model.text import encode_prompts

    open_clip = import_open_clip()
    register_open_clip_configs(open_clip)
    torch.manual_seed(0)
    clip = open_clip.create_model("cliprl-tiny-test")
    tokens = open_clip.get_tokenizer("cliprl-tiny-test")(
        ["a kidney.", "an endoscopic image of a needle."]
    )
    with torch.no_grad():
        expected = clip.encode_text(tokens)
        got = encode_prompts(clip, tokens)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
