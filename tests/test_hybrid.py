"""Notebook 03's config (configs/model.yml) and the hybrid ViT + frozen CLIP model."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lab_utils.config import ConfigError, load_config
from lab_utils.models.clip_names import CLIP_SHORT_NAMES, resolve_clip_name
from lab_utils.models.hybrid import FrozenCLIPBranch, HybridViTCLIP, load_clip_branch
from lab_utils.recipes.hybrid import hybrid_step
from lab_utils.models.pretrained import count_parameters, quick_vit_config

REPO = Path(__file__).resolve().parents[1]
MODEL_YML = REPO / "configs" / "model.yml"
NUM_CLASSES = 7


# --------------------------------------------------------------------------- helpers
def write_config(tmp_path: Path, text: str | None = None, **changes) -> Path:
    """configs/model.yml copied into tmp_path (named model.yml so the schema applies),
    with top-level lines replaced by ``changes`` or the whole text replaced."""
    folder = tmp_path / "cfg"
    folder.mkdir(exist_ok=True)
    if text is None:
        lines = MODEL_YML.read_text().splitlines()
        for key, value in changes.items():
            lines = [f"{key}: {value}" if line.startswith(f"{key}:") else line for line in lines]
        text = "\n".join(lines) + "\n"
    path = folder / "model.yml"
    path.write_text(text)
    return path


def tiny_clip_vision(seed: int = 0):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, image_size=32, patch_size=8, projection_dim=24)
    return CLIPVisionModelWithProjection(cfg).eval()


def tiny_vit(seed: int = 0):
    from transformers import ViTModel

    torch.manual_seed(seed)
    return ViTModel(quick_vit_config(), add_pooling_layer=False)


def tiny_hybrid(fusion: str = "concat") -> HybridViTCLIP:
    clip = FrozenCLIPBranch.from_hf(tiny_clip_vision())
    return HybridViTCLIP(tiny_vit(), clip, NUM_CLASSES, fusion=fusion)


def images(batch: int = 4, size: int = 40) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------- config
def test_defaults_are_the_documented_ones():
    cfg = load_config(MODEL_YML, profile="full")
    assert cfg.to_dict() == {
        "vit": {"model_name": "google/vit-base-patch16-224-in21k"},
        "clip": {"model_name": "ViT-B/32"},
        "fusion": {"method": "concat", "modality_dropout": 0.0, "aux_weight": 0.0},
        "remedies": {"modality_dropout": 0.3, "aux_weight": 0.5, "staged_lr_scale": 0.1},
        "data": {"num_faces": 4200, "image_size": 64, "test_fraction": 0.2, "seed_offset": 1000},
        "batch_size": 32, "learning_rate": 2e-5, "weight_decay": 0.05, "epochs": 10, "patience": 3,
        "val_split": 0.2, "seed": 42,
    }
    assert isinstance(cfg.learning_rate, float) and isinstance(cfg.val_split, float)
    assert cfg.fusion.method == "concat"  # attribute access


def test_quick_profile_changes_sizes_not_meanings():
    full, quick = load_config(MODEL_YML, profile="full"), load_config(MODEL_YML, profile="quick")
    assert set(quick) == set(full)
    for key in ("vit", "clip", "fusion", "patience", "val_split", "seed"):
        assert quick[key] == full[key], key
    assert isinstance(quick.learning_rate, float)


def test_2e_minus_5_is_read_as_a_float(tmp_path):
    import yaml

    assert yaml.safe_load("lr: 2e-5")["lr"] == "2e-5"  # the PyYAML trap the loader fixes
    cfg = load_config(write_config(tmp_path, learning_rate="2e-5"), profile="full")
    assert cfg.learning_rate == pytest.approx(2e-5) and isinstance(cfg.learning_rate, float)
    cfg = load_config(write_config(tmp_path, learning_rate="1"), profile="full")
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)


@pytest.mark.parametrize("text, words", [
    ("vit:\n  model_name: a/b\nclip:\n  model_name: ViT-B/32\nfusion:\n  methd: concat\n",
     ["'fusion.methd'", "'fusion.method'"]),
    (MODEL_YML.read_text().replace("learning_rate:", "learnig_rate:"),
     ["'learnig_rate'", "'learning_rate'"]),
])
def test_typos_name_the_key_and_the_closest_one(tmp_path, text, words):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, text), profile="full")
    for word in words:
        assert word in str(err.value)


def test_unknown_fusion_method(tmp_path):
    text = MODEL_YML.read_text().replace("method: concat", "method: sum")
    with pytest.raises(ConfigError, match=r"'fusion.method' = 'sum' is not allowed.*'concat', 'attention'"):
        load_config(write_config(tmp_path, text), profile="full")


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "0.0"])
def test_val_split_must_be_inside_0_1(tmp_path, value):
    with pytest.raises(ConfigError, match=r"'val_split' = .* out of range"):
        load_config(write_config(tmp_path, val_split=value), profile="full")


@pytest.mark.parametrize("key, value", [("patience", "0"), ("epochs", "0"), ("batch_size", "0"),
                                        ("learning_rate", "0"), ("learning_rate", "-1e-4")])
def test_out_of_range_values_name_key_and_value(tmp_path, key, value):
    with pytest.raises(ConfigError, match=rf"'{key}' = .* out of range"):
        load_config(write_config(tmp_path, **{key: value}), profile="full")


def test_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match=r"'patience' must be of type int, got 'three'"):
        load_config(write_config(tmp_path, patience="three"), profile="full")


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "model.yml"
    with pytest.raises(ConfigError, match="Config file not found") as err:
        load_config(missing, profile="full")
    assert str(missing) in str(err.value)


def test_invalid_yaml_gives_the_line(tmp_path):
    text = "vit:\n  model_name: a/b\nclip:\n  model_name: [ViT-B/32\nfusion:\n  method: concat\n"
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+"):
        load_config(write_config(tmp_path, text), profile="full")


def test_unknown_clip_short_name_lists_known_ones(tmp_path):
    text = MODEL_YML.read_text().replace("model_name: ViT-B/32", "model_name: ViT-H/14")
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, text), profile="full")
    message = str(err.value)
    assert "'clip.model_name'" in message and "ViT-H/14" in message
    for short in CLIP_SHORT_NAMES:
        assert short in message


@pytest.mark.parametrize("name", ["RN50x64", "RN50"])
def test_resnet_clips_are_accepted_by_the_config(tmp_path, name):
    text = MODEL_YML.read_text().replace("model_name: ViT-B/32", f"model_name: {name}")
    assert load_config(write_config(tmp_path, text), profile="full").clip.model_name == name


@pytest.mark.parametrize("name, hint", [("rn101", "did you mean RN101"), ("RN51", "RN50, RN101")])
def test_unknown_resnet_clips_are_refused_clearly(tmp_path, name, hint):
    text = MODEL_YML.read_text().replace("model_name: ViT-B/32", f"model_name: {name}")
    with pytest.raises(ConfigError, match=rf"unknown ResNet CLIP '{name}'.*{hint}"):
        load_config(write_config(tmp_path, text), profile="full")


def test_notebook_02_checkpoints_are_clip_names(tmp_path, monkeypatch):
    """clip.model_name may name a notebook 02 checkpoint, relative to the lab's folder; a
    missing one named like notebook 02's is accepted (trained when loaded), others refused."""
    monkeypatch.chdir(tmp_path)                                # not the repo's own checkpoints/
    saved = save_lab_clip_encoder(24, 32)                      # under LAB_ROOT=tmp_path/checkpoints
    assert resolve_clip_name(f"checkpoints/{saved.name}") == str(saved)
    assert resolve_clip_name(str(saved)) == str(saved)
    assert resolve_clip_name("checkpoints/02_clip_image_encoder_vit.safetensors") == str(
        tmp_path / "checkpoints" / "02_clip_image_encoder_vit.safetensors")
    with pytest.raises(ValueError, match=r"no CLIP image encoder checkpoint at 'mine\.safetensors'.*run notebook 02"):
        resolve_clip_name("mine.safetensors")


def test_clip_names_map_to_hub_ids_and_accept_ids_and_folders(tmp_path):
    assert resolve_clip_name("ViT-B/32") == "openai/clip-vit-base-patch32"
    assert resolve_clip_name("ViT-L/14") == "openai/clip-vit-large-patch14"
    assert resolve_clip_name("ViT-L/14@336px") == "openai/clip-vit-large-patch14-336"
    assert resolve_clip_name("laion/CLIP-ViT-B-32-laion2B-s34B-b79K") == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    assert resolve_clip_name(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ValueError, match="neither a known CLIP short name"):
        resolve_clip_name("clip base")
    text = MODEL_YML.read_text().replace("model_name: ViT-B/32", f"model_name: {tmp_path}")
    assert load_config(write_config(tmp_path, text), profile="full").clip.model_name == str(tmp_path)


# --------------------------------------------------------------------------- model
@pytest.mark.parametrize("fusion, feature_dim", [("concat", 64 + 24), ("attention", 64),
                                                 ("vit_only", 64), ("clip_only", 24)])
def test_shapes_for_every_fusion(fusion, feature_dim):
    model = tiny_hybrid(fusion).eval()
    pv_vit, pv_clip = model.preprocess(images(batch=5))
    if model.vit is not None:
        assert pv_vit.shape == (5, 3, 32, 32)
    if model.clip is not None:
        assert pv_clip.shape == (5, 3, 32, 32)
    feats = model.features(pv_vit, pv_clip)
    assert feats["fused"].shape == (5, feature_dim)
    assert model(pv_vit, pv_clip).shape == (5, NUM_CLASSES)
    if "clip" in feats:
        assert feats["clip"].shape == (5, 24)
        assert torch.allclose(feats["clip"].norm(dim=-1), torch.ones(5), atol=1e-5)  # unit length
    if "vit" in feats:
        assert feats["vit"].shape == (5, 64)


def test_concat_is_vit_cls_then_scaled_clip_embedding():
    model = tiny_hybrid("concat").eval()
    pv_vit, pv_clip = model.preprocess(images())
    fused = model.features(pv_vit, pv_clip)["fused"]
    cls = model.vit(pixel_values=pv_vit).last_hidden_state[:, 0]
    embed = F.normalize(model.clip.encoder(pixel_values=pv_clip).image_embeds, dim=-1)
    torch.testing.assert_close(fused, torch.cat([cls, embed * math.sqrt(24)], dim=-1))


def test_each_branch_has_its_own_preprocessing():
    model = tiny_hybrid("concat")
    x = images(batch=2, size=32)
    pv_vit, pv_clip = model.preprocess(x)
    torch.testing.assert_close(pv_vit, (x - 0.5) / 0.5)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    torch.testing.assert_close(pv_clip, (x - mean) / std)


def test_attention_weights_match_a_hand_computation():
    model = tiny_hybrid("attention").eval()
    pv_vit, pv_clip = model.preprocess(images(batch=3))
    feats = model.features(pv_vit, pv_clip)
    weights = model.last_attention
    assert weights.shape == (3, 2, 2)
    # reference: the two tokens, per-head scaled dot products, softmax, averaged over heads
    tokens = torch.stack([feats["vit"], model.clip_proj(feats["clip"] * math.sqrt(24))], dim=1)
    attn = model.attention
    q, k, _ = F.linear(tokens, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    heads, d = attn.num_heads, attn.embed_dim // attn.num_heads
    q = q.view(3, 2, heads, d).transpose(1, 2)
    k = k.view(3, 2, heads, d).transpose(1, 2)
    ref = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1).mean(dim=1)
    torch.testing.assert_close(weights, ref, atol=1e-5, rtol=1e-4)
    per_branch = model.branch_weights()
    assert per_branch.shape == (3, 2)
    torch.testing.assert_close(per_branch.sum(-1), torch.ones(3))
    with pytest.raises(RuntimeError, match="fusion='attention'"):
        tiny_hybrid("concat").branch_weights()


def test_clip_branch_is_frozen_and_counted_as_frozen():
    model = tiny_hybrid("attention")
    clip_params = sum(p.numel() for p in model.clip.parameters())
    summary = model.parameter_summary()
    assert summary.loc["CLIP branch (frozen)", "trainable"] == 0
    assert summary.loc["CLIP branch (frozen)", "frozen"] == clip_params
    assert summary.loc["total", "frozen"] == clip_params
    vit_params = sum(p.numel() for p in model.vit.parameters())
    assert summary.loc["ViT branch", "trainable"] == vit_params
    expected_trainable = vit_params + sum(p.numel() for m in (model.clip_proj, model.attention,
                                                              model.classifier) for p in m.parameters())
    assert summary.loc["total", "trainable"] == expected_trainable
    model.train()
    assert model.vit.training and not model.clip.encoder.training  # frozen stays in eval mode


def test_one_training_step_moves_vit_and_head_but_not_clip():
    model = tiny_hybrid("concat").train()
    clip_before = {k: v.clone() for k, v in model.clip.state_dict().items()}
    vit_before = model.vit.embeddings.patch_embeddings.projection.weight.clone()
    pv_vit, pv_clip = model.preprocess(images(batch=8))
    batch = {"pixel_values_vit": pv_vit, "pixel_values_clip": pv_clip,
             "label": torch.arange(8) % NUM_CLASSES}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    hybrid_step()(model, batch)["loss"].backward()
    opt.step()
    for key, value in model.clip.state_dict().items():
        assert torch.equal(value, clip_before[key]), key
    assert not torch.equal(model.vit.embeddings.patch_embeddings.projection.weight, vit_before)


def test_modality_dropout_hides_clip_features_in_training_only():
    model = tiny_hybrid("concat")
    model = HybridViTCLIP(model.vit, model.clip, NUM_CLASSES, fusion="concat", modality_dropout=0.5)
    x = images(batch=64, size=32)
    pv_vit, pv_clip = model.preprocess(x)
    torch.manual_seed(0)
    clip_part = model.train().features(pv_vit, pv_clip)["fused"][:, model.vit_dim:]      # (64, D)
    hidden = (clip_part == 0).all(1)
    assert 16 < int(hidden.sum()) < 48                      # about half of the images, drawn per image
    assert (clip_part[~hidden] != 0).any(1).all()           # the others keep their whole CLIP feature
    with torch.no_grad():
        evaluated = model.eval().features(pv_vit, pv_clip)["fused"][:, model.vit_dim:]
    assert not (evaluated == 0).all(1).any()                # never at evaluation


def test_aux_weight_adds_the_vit_only_loss_in_training():
    import torch.nn.functional as F
    base = tiny_hybrid("concat")
    model = HybridViTCLIP(base.vit, base.clip, NUM_CLASSES, fusion="concat", aux_weight=0.5)
    x, labels = images(batch=8, size=32), torch.arange(8) % NUM_CLASSES
    pv_vit, pv_clip = model.preprocess(x)
    batch = {"pixel_values_vit": pv_vit, "pixel_values_clip": pv_clip, "label": labels}
    model.train()
    torch.manual_seed(0)
    out = hybrid_step()(model, batch)
    f = model.features(pv_vit, pv_clip)
    expected = F.cross_entropy(model.classifier(f["fused"]), labels) + 0.5 * F.cross_entropy(model.aux_head(f["vit"]), labels)
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    assert model.aux_head.weight.grad is not None           # the auxiliary head trains …
    summary = model.parameter_summary()                     # … and is counted in its own row
    assert summary.loc["auxiliary ViT classifier (training only)", "trainable"] == (model.vit_dim + 1) * NUM_CLASSES
    assert summary.drop("total")["total"].sum() == summary.loc["total", "total"]
    model.eval()
    torch.testing.assert_close(hybrid_step()(model, batch)["loss"], F.cross_entropy(model(pv_vit, pv_clip), labels))


@pytest.mark.parametrize("kwargs,match", [
    (dict(modality_dropout=1.0), r"modality_dropout=1.0 must be in \[0, 1\)"),
    (dict(aux_weight=-0.1), "aux_weight=-0.1 must be ≥ 0"),
    (dict(fusion="vit_only", aux_weight=0.5), "fusion='vit_only' has one branch"),
])
def test_remedy_arguments_are_checked(kwargs, match):
    base = tiny_hybrid("concat")
    with pytest.raises(ValueError, match=match):
        HybridViTCLIP(base.vit, base.clip, NUM_CLASSES, **{"fusion": "concat", **kwargs})


def test_from_config_passes_the_remedies_to_fusions_only(tmp_path):
    text = MODEL_YML.read_text().replace("modality_dropout: 0.0", "modality_dropout: 0.3").replace("aux_weight: 0.0", "aux_weight: 0.5")
    cfg = load_config(write_config(tmp_path, text), profile="quick")
    clip = FrozenCLIPBranch.from_hf(tiny_clip_vision())
    fused = HybridViTCLIP.from_config(cfg, NUM_CLASSES, clip=clip, profile="quick", verbose=False)
    assert (fused.modality_dropout, fused.aux_weight) == (0.3, 0.5) and fused.aux_head is not None
    probe = HybridViTCLIP.from_config(cfg, NUM_CLASSES, fusion="clip_only", clip=clip, profile="quick", verbose=False)
    assert (probe.modality_dropout, probe.aux_weight, probe.aux_head) == (0.0, 0.0, None)


def test_cached_clip_embeddings_give_the_same_logits():
    model = tiny_hybrid("attention").eval()
    x = images(batch=6)
    pv_vit, pv_clip = model.preprocess(x)
    cached = model.encode_clip(x, batch_size=4)  # two batches
    assert cached.shape == (6, 24)
    torch.testing.assert_close(model(pv_vit, clip_embeds=cached), model(pv_vit, pv_clip))
    mirrored = model.encode_clip(x, batch_size=4, flip=True)
    torch.testing.assert_close(mirrored, model.clip(model.clip.preprocess(x.flip(-1))))
    torch.testing.assert_close(model.preprocess_vit(x), pv_vit)
    with pytest.raises(ValueError, match="needs pixel_values_clip"):
        model(pv_vit)
    with pytest.raises(ValueError, match="clip_embeds has 5 dims"):
        model(pv_vit, clip_embeds=torch.zeros(6, 5))


def test_stored_bytes_are_preprocessed_per_batch_like_float_images():
    """The notebook keeps small uint8 images and lets each branch resize a batch: the same
    logits as preprocessing [0, 1] floats, and the ViT input is upsampled to its size."""
    model = tiny_hybrid("concat").eval()
    stored = (images(batch=5, size=20) * 255).round().to(torch.uint8)      # small, as bytes
    floats = stored.float() / 255
    pv_vit, pv_clip = model.preprocess(stored)
    assert pv_vit.shape[-1] == model.vit_image_size and pv_clip.shape[-1] == model.clip.image_size
    torch.testing.assert_close(pv_vit, model.preprocess_vit(floats), rtol=0, atol=0)
    torch.testing.assert_close(model.encode_clip(stored), model.encode_clip(floats), rtol=0, atol=0)
    embeds = model.encode_clip(stored)
    batch = {"image": stored, "clip_embeds": embeds, "label": torch.arange(5) % NUM_CLASSES}
    out = hybrid_step()(model, batch)
    torch.testing.assert_close(out["logits"], model(pv_vit, clip_embeds=embeds))
    with pytest.raises(TypeError, match="uint8"):
        model.preprocess_vit(stored.long())


def test_optimizer_groups_put_vit_in_backbone_and_leave_clip_out():
    from lab_utils.training import get_optimizer_and_scheduler

    model = tiny_hybrid("attention")
    opt, _ = get_optimizer_and_scheduler(model, 1e-3, warmup_steps=1, num_training_steps=10)
    groups = {g["name"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert groups["backbone"] == {id(p) for p in model.vit.parameters()}
    assert not groups["head"] & {id(p) for p in model.clip.parameters()}
    assert not groups["backbone"] & {id(p) for p in model.clip.parameters()}
    assert opt.param_groups[0]["initial_lr"] == pytest.approx(1e-4)  # 0.1 × the head rate


def test_bad_fusion_and_missing_branches():
    with pytest.raises(ValueError, match="'sum' is not a fusion method.*concat, attention"):
        HybridViTCLIP(tiny_vit(), None, 7, fusion="sum")
    with pytest.raises(ValueError, match="needs a CLIP branch"):
        HybridViTCLIP(tiny_vit(), None, 7, fusion="concat")
    with pytest.raises(ValueError, match="needs a ViT branch"):
        HybridViTCLIP(None, FrozenCLIPBranch.from_hf(tiny_clip_vision()), 7, fusion="attention")
    with pytest.raises(ValueError, match=r"num_heads=5 must divide the ViT width 64"):
        HybridViTCLIP(tiny_vit(), FrozenCLIPBranch.from_hf(tiny_clip_vision()), 7,
                      fusion="attention", num_heads=5)


# --------------------------------------------------------------------------- from_config
def test_from_config_full_profile_loads_local_folders(tmp_path):
    """The full profile's loading code on tiny models saved with save_pretrained."""
    vit, clip = tiny_vit(seed=3), tiny_clip_vision(seed=4)
    vit.save_pretrained(tmp_path / "vit")
    clip.save_pretrained(tmp_path / "clip")
    cfg = load_config(MODEL_YML, profile="full")
    cfg["vit"]["model_name"], cfg["clip"]["model_name"] = str(tmp_path / "vit"), str(tmp_path / "clip")
    for fusion in ("concat", "attention"):
        cfg["fusion"]["method"] = fusion
        model = HybridViTCLIP.from_config(cfg, NUM_CLASSES, profile="full").eval()
        assert model.fusion == fusion and model.clip.kind == "hf"
        torch.testing.assert_close(model.vit.embeddings.patch_embeddings.projection.weight,
                                   vit.embeddings.patch_embeddings.projection.weight)
        torch.testing.assert_close(model.clip.encoder.visual_projection.weight, clip.visual_projection.weight)
        pv_vit, pv_clip = model.preprocess(images(batch=2, size=48))
        assert model(pv_vit, pv_clip).shape == (2, NUM_CLASSES)
        torch.testing.assert_close(model.features(pv_vit, pv_clip)["clip"],
                                   F.normalize(clip(pixel_values=pv_clip).image_embeds, dim=-1))
        assert model.parameter_summary().loc["CLIP branch (frozen)", "trainable"] == 0


def test_from_config_full_profile_offline_hub_id_says_what_to_do(monkeypatch):
    from lab_utils.models.pretrained import PretrainedUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hf-cache")
    cfg = load_config(MODEL_YML, profile="full")
    with pytest.raises(PretrainedUnavailable, match="google/vit-base-patch16-224-in21k"):
        HybridViTCLIP.from_config(cfg, NUM_CLASSES, profile="full")


def test_from_config_reuses_a_shared_clip_branch_and_builds_baselines():
    cfg = load_config(MODEL_YML, profile="quick")
    clip = FrozenCLIPBranch.from_hf(tiny_clip_vision())
    vit_only = HybridViTCLIP.from_config(cfg, NUM_CLASSES, fusion="vit_only", profile="quick", verbose=False)
    assert vit_only.clip is None and vit_only.vit.config.hidden_size == 64
    probe = HybridViTCLIP.from_config(cfg, NUM_CLASSES, fusion="clip_only", clip=clip, profile="quick")
    assert probe.vit is None and probe.clip is clip
    assert isinstance(probe.classifier, nn.Linear)  # a linear probe
    assert probe.parameter_summary().loc["total", "trainable"] == 24 * NUM_CLASSES + NUM_CLASSES


# --------------------------------------------------------------------------- quick profile: notebook 02's encoder
def save_lab_clip_encoder(embed_dim: int = 32, image_size: int = 32) -> Path:
    """A small notebook-02 encoder saved where the quick profile looks (LAB_ROOT = tmp_path)."""
    from lab_utils.models.clip import CLIPImageEncoder
    from lab_utils.recipes.clip import save_clip_image_encoder

    torch.manual_seed(5)
    return save_clip_image_encoder(CLIPImageEncoder("resnet18", embed_dim), image_size=image_size)


def test_from_config_quick_uses_notebook_02s_encoder(capsys):
    from lab_utils.recipes.clip import load_clip_image_encoder

    path = save_lab_clip_encoder(embed_dim=32, image_size=32)
    before = path.read_bytes()
    cfg = load_config(MODEL_YML, profile="quick")
    model = HybridViTCLIP.from_config(cfg, NUM_CLASSES, fusion="attention", profile="quick").eval()
    out = capsys.readouterr().out
    assert "random init" in out and "notebook 02" in out
    assert model.clip.kind == "lab" and model.clip_dim == 32 and model.clip.image_size == 32
    x = images(batch=3, size=48)
    pv_vit, pv_clip = model.preprocess(x)
    # reference: notebook 02's encoder on the resized [0, 1] images (it normalises inside)
    reference = load_clip_image_encoder(path, verbose=False).eval()
    resized = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(model.features(pv_vit, pv_clip)["clip"], reference(resized),
                                   atol=1e-5, rtol=1e-4)
    summary = model.parameter_summary()
    assert summary.loc["CLIP branch (frozen)", "trainable"] == 0
    assert summary.loc["CLIP branch (frozen)", "frozen"] == sum(p.numel() for p in reference.parameters())
    model.train()
    assert not model.clip.encoder.training  # batch-norm statistics stay as trained
    assert path.read_bytes() == before


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_notebook_03_reuses_the_vit_recipes_encoder(tmp_path, profile):
    """The ViT + BERT recipe's image encoder (saved by notebook 02 beside the ResNet one) is a
    CLIP branch too, in either profile, when clip.model_name names its checkpoint."""
    from lab_utils.models.clip import ViTImageEncoder
    from lab_utils.recipes.clip import encoder_checkpoint_path, save_clip_image_encoder

    torch.manual_seed(3)
    encoder = ViTImageEncoder(embed_dim=24, image_size=32, profile="quick").eval()
    path = save_clip_image_encoder(encoder, encoder_checkpoint_path("vit", main=False))
    assert path.name == "02_clip_image_encoder_vit.safetensors"
    text = MODEL_YML.read_text().replace("model_name: ViT-B/32", f"model_name: checkpoints/{path.name}")
    cfg = load_config(write_config(tmp_path, text), profile=profile)
    model = HybridViTCLIP.from_config(cfg, NUM_CLASSES, fusion="concat", profile=profile,
                                      vit_overrides={"hidden_size": 32, "num_hidden_layers": 1},
                                      verbose=False).eval() if profile == "quick" else None
    branch = model.clip if model is not None else load_clip_branch(cfg.clip.model_name, profile=profile, verbose=False)
    assert branch.kind == "lab" and branch.embed_dim == 24 and branch.image_size == 32
    assert branch.mean == (0.5, 0.5, 0.5) and branch.std == (0.5, 0.5, 0.5)
    x = images(batch=3, size=48)
    with torch.no_grad():
        torch.testing.assert_close(branch(branch.preprocess(x)), encoder(x), atol=1e-5, rtol=1e-4)
    assert count_parameters(branch)["trainable"] == 0
    if model is not None:
        assert model(*model.preprocess(x)).shape == (3, NUM_CLASSES)


def test_clip_checkpoint_of_another_architecture_is_refused_and_kept(tmp_path):
    from lab_utils.models.clip_names import default_checkpoint_path
    from lab_utils.checkpoints import CheckpointError, save_checkpoint

    path = default_checkpoint_path()
    assert str(path).startswith(str(tmp_path))  # the test's own checkpoints/ folder
    save_checkpoint(path, nn.Linear(3, 4), backbone="resnet18", embed_dim=512, image_size=32)
    before = path.read_bytes()
    cfg = load_config(MODEL_YML, profile="quick")
    with pytest.raises(CheckpointError, match="different architecture") as err:
        HybridViTCLIP.from_config(cfg, NUM_CLASSES, profile="quick", verbose=False)
    assert "02_clip_image_encoder.safetensors" in str(err.value)
    assert "not modified" in str(err.value)
    assert path.read_bytes() == before  # no silent retrain over it


def test_cached_dataset_flips_both_branches_together():
    from lab_utils.data.hybrid_data import CachedHybridDataset

    pv = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).view(2, 3, 2, 2)   # stored bytes
    emb, emb_flip = torch.zeros(2, 4), torch.ones(2, 4)
    ds = CachedHybridDataset(pv, emb, torch.tensor([3, 5]), emb_flip, flip=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        item = ds[1]
        flipped = bool(item["clip_embeds"][0] == 1)
        assert torch.equal(item["image"], pv[1].flip(-1) if flipped else pv[1])
        assert item["label"] == 5
        seen.add(flipped)
    assert seen == {True, False}
    plain = CachedHybridDataset(pv, emb, torch.tensor([3, 5]))
    assert torch.equal(plain[0]["image"], pv[0])
    with pytest.raises(ValueError, match="flip=True needs clip_embeds_flipped"):
        CachedHybridDataset(pv, emb, torch.tensor([3, 5]), flip=True)
    with pytest.raises(ValueError, match="clip_embeds has 2 rows for 3 labels"):
        CachedHybridDataset(pv[:1].repeat(3, 1, 1, 1), emb, torch.tensor([1, 2, 3]))


def test_standardize_clip_gives_mean_0_std_1_features_on_the_training_embeddings():
    model = tiny_hybrid("concat").eval()
    x = images(batch=16)
    embeds = model.encode_clip(x)
    model.standardize_clip(embeds)
    pv_vit = model.preprocess_vit(x)
    clip_part = model.features(pv_vit, clip_embeds=embeds)["fused"][:, 64:]
    torch.testing.assert_close(clip_part.mean(0), torch.zeros(24), atol=1e-4, rtol=0)
    torch.testing.assert_close(clip_part.std(0), torch.ones(24), atol=1e-3, rtol=0)
    state = model.state_dict()
    assert torch.equal(state["clip_shift"], embeds.mean(0))  # saved with the model
    with pytest.raises(ValueError, match=r"expected training embeddings \(N ≥ 2, 24\)"):
        model.standardize_clip(torch.zeros(3, 5))


def test_heads_and_the_quick_vit_initialisation():
    clip = FrozenCLIPBranch.from_hf(tiny_clip_vision())
    linear = HybridViTCLIP(tiny_vit(), clip, NUM_CLASSES, fusion="concat")
    assert isinstance(linear.classifier, nn.Linear) and linear.classifier.in_features == 64 + 24
    mlp = HybridViTCLIP(tiny_vit(), clip, NUM_CLASSES, fusion="attention", head="mlp")
    assert isinstance(mlp.classifier, nn.Sequential) and mlp.classifier[-1].out_features == NUM_CLASSES
    with pytest.raises(ValueError, match="head='deep' is not a classifier head"):
        HybridViTCLIP(tiny_vit(), clip, NUM_CLASSES, head="deep")
    cfg = load_config(MODEL_YML, profile="quick")
    vit_only = HybridViTCLIP.from_config(cfg, NUM_CLASSES, fusion="vit_only", profile="quick", verbose=False)
    assert vit_only.vit.config.initializer_range == 0.1   # quick_vit_config's wide init
    assert vit_only.vit.pooler is None  # only [CLS] is used


def test_a_config_without_the_new_sections_gets_their_defaults_and_bad_values_are_refused(tmp_path):
    """Older copies of model.yml (no remedies:, data:, weight_decay) still load, with the values
    notebook 03 used to hard-code; a bad value names the key."""
    import yaml
    from lab_utils.config import ConfigError

    old = {k: v for k, v in yaml.safe_load(MODEL_YML.read_text()).items() if k not in ("remedies", "data", "weight_decay")}
    path = tmp_path / "model.yml"
    path.write_text(yaml.safe_dump(old))
    cfg = load_config(path, profile="full")
    assert cfg.remedies.to_dict() == {"modality_dropout": 0.3, "aux_weight": 0.5, "staged_lr_scale": 0.1}
    assert cfg.data.num_faces == 4200 and cfg.data.test_fraction == 0.2 and cfg.weight_decay == 0.05
    path.write_text(yaml.safe_dump({**old, "data": {"test_fraction": 1.5}}))
    with pytest.raises(ConfigError, match=r"'data.test_fraction' = 1.5 is out of range"):
        load_config(path, profile="full")
