"""Tests for lab_utils.models.vit: patchify, the building blocks, and equality with transformers."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import ViTConfig, ViTForImageClassification, ViTModel

from lab_utils.models.vit import (
    EncoderBlock,
    MultiHeadSelfAttention,
    PatchEmbedding,
    VisionTransformer,
    attention_rollout,
    patchify,
)


def small_config(**overrides) -> ViTConfig:
    kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              image_size=32, patch_size=8, num_channels=3)
    kw.update(overrides)
    return ViTConfig(**kw)


def reference_patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """Independent reference: explicit loops over the patch grid, row by row."""
    B, C, H, W = images.shape
    rows = []
    for b in range(B):
        patches = []
        for i in range(H // p):
            for j in range(W // p):
                patch = images[b, :, i * p:(i + 1) * p, j * p:(j + 1) * p]  # (C, p, p)
                patches.append(patch.flatten())  # C, then rows, then columns
        rows.append(torch.stack(patches))
    return torch.stack(rows)


# ── patchify ────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("shape,p", [((2, 3, 32, 32), 8), ((1, 1, 12, 20), 4), ((3, 6, 16, 8), 8),
                                     ((1, 3, 224, 224), 16)])
def test_patchify_matches_loop_reference(shape, p):
    x = torch.randn(shape)
    got = patchify(x, p)
    B, C, H, W = shape
    assert got.shape == (B, (H // p) * (W // p), C * p * p)
    assert torch.equal(got, reference_patchify(x, p))


def test_patchify_row_major_order():
    # Each pixel holds its own patch index: patch k must be constant k.
    grid = torch.arange(12.0).reshape(3, 4)  # 3 rows × 4 columns of patches
    x = grid.repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None]  # (1, 1, 6, 8)
    patches = patchify(x, 2)  # (1, 12, 4)
    assert torch.equal(patches[0], torch.arange(12.0)[:, None].expand(12, 4))


@pytest.mark.parametrize("C,p,D", [(3, 8, 16), (1, 4, 10), (6, 16, 24)])
def test_linear_on_patches_equals_conv(C, p, D):
    conv = nn.Conv2d(C, D, kernel_size=p, stride=p)
    x = torch.randn(2, C, 2 * p, 3 * p)
    by_conv = conv(x).flatten(2).transpose(1, 2)  # (B, N, D)
    by_linear = patchify(x, p) @ conv.weight.reshape(D, -1).T + conv.bias
    torch.testing.assert_close(by_linear, by_conv, atol=1e-5, rtol=1e-5)
    # and the PatchEmbedding module is exactly that conv
    emb = PatchEmbedding((2 * p, 3 * p), p, C, D)
    emb.projection.load_state_dict(conv.state_dict())
    torch.testing.assert_close(emb(x), by_conv)


def test_non_divisible_size_error_message():
    with pytest.raises(ValueError) as err:
        patchify(torch.zeros(1, 3, 225, 224), 16)
    msg = str(err.value)
    assert "225" in msg and "16" in msg and "resize to 224 (= 14 × 16)" in msg
    assert "width" not in msg.split(".")[0]  # only the bad side is named
    with pytest.raises(ValueError, match=r"resize to 240 \(= 15 × 16\)"):
        patchify(torch.zeros(1, 3, 224, 236), 16)
    with pytest.raises(ValueError, match="resize to 32"):
        PatchEmbedding(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="unsqueeze"):
        patchify(torch.zeros(3, 32, 32), 8)


def test_bad_inputs_are_explained():
    model = VisionTransformer(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                              num_attention_heads=4, intermediate_size=64)
    with pytest.raises(ValueError, match="num_channels=3"):
        model(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="built for 32×32.*interpolate_pos_encoding"):
        model(torch.zeros(1, 3, 48, 48))
    with pytest.raises(ValueError, match="not divisible by num_attention_heads"):
        MultiHeadSelfAttention(30, 4)
    with pytest.raises(ValueError, match="allowed: 'cls', 'mean'"):
        VisionTransformer(pooling="max")
    with pytest.raises(ValueError, match="hidden_act 'relu'"):
        EncoderBlock(32, 4, 64, hidden_act="relu")


# ── shapes through the model ──────────────────────────────────────────────────────
def test_shapes_after_each_step():
    B, C, S, p, D, h, L, K = 2, 3, 32, 8, 32, 4, 3, 7
    N = (S // p) ** 2
    model = VisionTransformer(image_size=S, patch_size=p, num_channels=C, hidden_size=D,
                              num_hidden_layers=L, num_attention_heads=h, intermediate_size=4 * D,
                              num_classes=K)
    x = torch.randn(B, C, S, S)
    assert model.patch_embed(x).shape == (B, N, D)
    assert model.cls_token.shape == (1, 1, D) and model.pos_embed.shape == (1, 1 + N, D)
    tokens = model.embed(x)
    assert tokens.shape == (B, 1 + N, D)
    y, probs = model.blocks[0](tokens, output_attentions=True)
    assert y.shape == (B, 1 + N, D) and probs.shape == (B, h, 1 + N, 1 + N)
    out = model(x, output_attentions=True)
    assert out.last_hidden_state.shape == (B, 1 + N, D)
    assert out.pooled.shape == (B, D) and out.logits.shape == (B, K)
    assert len(out.attentions) == L and all(a.shape == (B, h, 1 + N, 1 + N) for a in out.attentions)
    assert model(x).attentions is None


def test_attention_maps_are_distributions_and_do_not_change_output():
    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=64).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        fast, explicit = model(x), model(x, output_attentions=True)
    for a in explicit.attentions:
        assert (a >= 0).all()
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
    torch.testing.assert_close(fast.last_hidden_state, explicit.last_hidden_state, atol=1e-5, rtol=0)


def test_pooling_cls_and_mean():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for pooling in ("cls", "mean"):
        model = VisionTransformer(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=4, intermediate_size=64, pooling=pooling).eval()
        out = model(x)
        want = out.last_hidden_state[:, 0] if pooling == "cls" else out.last_hidden_state[:, 1:].mean(1)
        torch.testing.assert_close(out.pooled, want)
        assert out.logits is None


def test_classifier_learns_a_tiny_problem():
    torch.manual_seed(0)
    # class = which half of the image is bright
    x = torch.zeros(16, 1, 16, 16)
    y = torch.arange(16) % 2
    x[y == 0, :, :, :8] = 1.0
    x[y == 1, :, :, 8:] = 1.0
    x += 0.1 * torch.randn_like(x)
    model = VisionTransformer(image_size=16, patch_size=4, num_channels=1, hidden_size=32,
                              num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                              num_classes=2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = nn.functional.cross_entropy(model(x).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (model(x).logits.argmax(-1) == y).float().mean() == 1.0


def test_attention_rollout():
    torch.manual_seed(0)
    attn = [torch.softmax(torch.randn(2, 3, 5, 5), -1) for _ in range(3)]
    r = attention_rollout(attn)
    assert r.shape == (2, 5, 5)
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 5))
    # with no residual mixing, one layer's rollout is the head average
    torch.testing.assert_close(attention_rollout(attn[:1], residual_weight=0.0), attn[0].mean(1))
    # two layers compose as a matrix product, later layer on the left
    a0, a1 = (0.5 * torch.eye(5) + 0.5 * a.mean(1) for a in attn[:2])
    torch.testing.assert_close(attention_rollout(attn[:2]), a1 @ a0)


# ── equality with transformers.ViTModel ──────────────────────────────────────────
HF_CONFIGS = [
    dict(),
    dict(qkv_bias=False),
    dict(layer_norm_eps=1e-6, patch_size=4, image_size=16),
    dict(patch_size=16, image_size=48, num_channels=1),
    dict(num_channels=6, qkv_bias=False, layer_norm_eps=1e-5),
    dict(image_size=(32, 48), patch_size=8),
    dict(hidden_act="gelu_new", num_hidden_layers=3, num_attention_heads=2),
]


# transformers' fast attention path for ViT (sdpa) arrived in 4.41; older releases run eager.
from transformers.models.vit.modeling_vit import ViTPreTrainedModel  # noqa: E402

FAST_ATTENTION = "sdpa" if getattr(ViTPreTrainedModel, "_supports_sdpa", False) else "eager"


@pytest.mark.parametrize("overrides", HF_CONFIGS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_from_huggingface_matches_vitmodel(overrides):
    torch.manual_seed(0)
    config = small_config(**overrides, attn_implementation=FAST_ATTENTION)
    hf = ViTModel(config).eval()
    ours = VisionTransformer.from_huggingface(hf)
    H, W = config.image_size if isinstance(config.image_size, (tuple, list)) else (config.image_size,) * 2
    x = torch.randn(2, config.num_channels, H, W)
    with torch.no_grad():
        want = hf(x).last_hidden_state
        got = ours(x).last_hidden_state
        got_explicit = ours(x, output_attentions=True).last_hidden_state
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-4
    assert (got_explicit - want).abs().max().item() < 1e-4
    n_hf = sum(p.numel() for n, p in hf.named_parameters() if not n.startswith("pooler"))
    assert sum(p.numel() for p in ours.parameters()) == n_hf


def test_attention_probabilities_match_eager_vitmodel():
    torch.manual_seed(0)
    config = small_config(attn_implementation="eager")
    hf = ViTModel(config).eval()
    ours = VisionTransformer.from_huggingface(hf)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = hf(x, output_attentions=True).attentions
        got = ours(x, output_attentions=True).attentions
    assert len(got) == len(want) == config.num_hidden_layers
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_interpolate_pos_encoding_matches_vitmodel():
    torch.manual_seed(0)
    hf = ViTModel(small_config(attn_implementation=FAST_ATTENTION)).eval()
    ours = VisionTransformer.from_huggingface(hf)
    x = torch.randn(2, 3, 48, 48)  # model built for 32×32 (4×4 patches), input gives 6×6
    with torch.no_grad():
        want = hf(x, interpolate_pos_encoding=True).last_hidden_state
        got = ours(x, interpolate_pos_encoding=True).last_hidden_state
    assert got.shape == (2, 1 + 36, 32)
    assert (got - want).abs().max().item() < 1e-4
    # at the native size, interpolation is the identity
    assert ours.interpolate_pos_encoding(32, 32) is ours.pos_embed


def test_from_huggingface_accepts_classification_model_and_overrides():
    torch.manual_seed(0)
    clf = ViTForImageClassification(small_config(num_labels=5)).eval()
    ours = VisionTransformer.from_huggingface(clf, num_classes=7, pooling="mean")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        want = clf.vit(x).last_hidden_state
        out = ours(x)
    assert (out.last_hidden_state - want).abs().max().item() < 1e-4
    assert out.logits.shape == (1, 7)


def test_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    config = small_config(qkv_bias=False, layer_norm_eps=1e-6, num_channels=1, image_size=16, patch_size=4)
    ViTModel(config).save_pretrained(tmp_path / "tiny-vit")
    loaded = ViTModel.from_pretrained(tmp_path / "tiny-vit", local_files_only=True).eval()
    ours = VisionTransformer.from_huggingface(loaded)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        diff = (ours(x).last_hidden_state - loaded(x).last_hidden_state).abs().max().item()
    assert diff < 1e-4
    assert ours.config.qkv_bias is False and ours.config.layer_norm_eps == 1e-6
    assert ours.blocks[0].attn.qkv.bias is None


def test_from_config_builds_same_sizes_with_random_weights():
    config = small_config(patch_size=4, image_size=16)
    model = VisionTransformer.from_config(config, num_classes=3)
    assert model.num_patches == 16 and model.pos_embed.shape == (1, 17, 32)
    assert len(model.blocks) == 2 and model.head.out_features == 3
