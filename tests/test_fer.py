"""ViTForFER, early / late fusion, the optimizer groups and schedule, gradient checkpointing
(lab_utils.models.fer). Tiny ViTs saved with save_pretrained into tmp_path stand
in for google/vit-base-patch16-224-in21k: the full profile's loading path, offline."""
import math

import numpy as np

import pytest
import torch
from torch import nn
from transformers import ViTModel

from lab_utils.data.fer_data import TensorBatches
from lab_utils.models.fer import (EarlyFusionViT, LateFusionViT, ViTForFER, create_multimodal_vit_model,
                                  encoder_layers, make_fer_head, six_channel_patch_embedding, vit_tokens)
from lab_utils.recipes.fer import fer_step, lr_schedule_table, saved_activation_bytes
from lab_utils.models.pretrained import quick_vit_config
from lab_utils.training import get_optimizer_and_scheduler

H, LAYERS, S = 32, 3, 16


def tiny_config(**kw):
    return quick_vit_config(image_size=S, patch_size=8, hidden_size=H, num_hidden_layers=LAYERS,
                            num_attention_heads=2, intermediate_size=64, **kw)


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    """A tiny pretrained-looking ViTModel on disk (what save_pretrained writes)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_vit")
    ViTModel(tiny_config(), add_pooling_layer=False).save_pretrained(path)
    return str(path)


def n_params(module: nn.Module, trainable: bool | None = None) -> int:
    return sum(p.numel() for p in module.parameters() if trainable is None or p.requires_grad == trainable)


def images(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, S, S, generator=g), torch.rand(b, 3, S, S, generator=g)   # pixels in [0, 1]


# --------------------------------------------------------------------------- head and loading
def test_head_is_seed_001s_mlp_for_vit_b_sizes():
    head = make_fer_head(768, 7, 0.1)
    kinds = [type(m) for m in head]
    assert kinds == [nn.LayerNorm, nn.Dropout, nn.Linear, nn.GELU, nn.Dropout, nn.Linear]
    assert head[0].normalized_shape == (768,)
    assert (head[2].in_features, head[2].out_features) == (768, 384)
    assert (head[5].in_features, head[5].out_features) == (384, 7)
    assert head[1].p == pytest.approx(0.1) and head[4].p == pytest.approx(0.05)


def test_vit_for_fer_loads_local_weights_and_has_h_to_half_h_head(vit_dir):
    model = ViTForFER(vit_dir, num_classes=5, dropout_rate=0.2, profile="full")
    ref = ViTModel.from_pretrained(vit_dir)
    for (name, p), (_, q) in zip(model.vit.named_parameters(), ref.named_parameters()):
        assert torch.equal(p, q), name                       # the saved weights, not a new init
    assert model.vit.pooler is None
    lin1, lin2 = model.classifier[2], model.classifier[5]
    assert (lin1.in_features, lin1.out_features, lin2.out_features) == (H, H // 2, 5)
    x, _ = images()
    assert model(x).shape == (4, 5)
    model.eval()
    with torch.no_grad():
        expected = model.classifier(ref(pixel_values=(x - 0.5) / 0.5).last_hidden_state[:, 0])   # [CLS] by default;
        assert torch.allclose(model(x), expected, atol=1e-6)               # the model normalises its pixels itself
        assert torch.allclose(model(x), expected, atol=1e-6)
        model.pooling = "mean"
        expected = model.classifier(ref(pixel_values=(x - 0.5) / 0.5).last_hidden_state[:, 1:].mean(1))
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_quick_profile_builds_small_model_without_network(capsys):
    model = ViTForFER("google/vit-base-patch16-224-in21k", profile="quick")
    assert "random init" in capsys.readouterr().out
    assert model.vit.config.hidden_size == 64 and model.image_size == 32
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


# --------------------------------------------------------------------------- freezing
def test_freeze_and_progressive_unfreeze_counts(vit_dir):
    model = ViTForFER(vit_dir, freeze_backbone=True, profile="full")
    head, backbone = n_params(model.classifier), n_params(model.vit)
    assert n_params(model, trainable=True) == head
    assert n_params(model, trainable=False) == backbone

    model.unfreeze_backbone(1)                              # top block + final LayerNorm
    top = n_params(encoder_layers(model.vit)[-1]) + n_params(model.vit.layernorm)
    assert n_params(model, trainable=True) == head + top
    assert all(not p.requires_grad for p in encoder_layers(model.vit)[0].parameters())
    assert all(not p.requires_grad for p in model.vit.embeddings.parameters())

    model.unfreeze_backbone(2)
    assert n_params(model, trainable=True) == head + top + n_params(encoder_layers(model.vit)[-2])
    model.unfreeze_backbone()
    assert n_params(model, trainable=False) == 0


# --------------------------------------------------------------------------- early fusion
def test_early_concat_reproduces_pretrained_stem_when_thermal_equals_rgb(vit_dir):
    ref = ViTModel.from_pretrained(vit_dir).eval()
    model = EarlyFusionViT(vit_dir, fusion_type="concat", profile="full").eval()
    conv = model.vit.embeddings.patch_embeddings.projection
    assert conv.in_channels == 6
    w = ref.embeddings.patch_embeddings.projection.weight
    assert torch.equal(conv.weight[:, :3] * 2, w) and torch.equal(conv.weight[:, 3:] * 2, w)
    x, _ = images()
    with torch.no_grad():
        stem_ref = ref.embeddings.patch_embeddings(x)
        stem = model.vit.embeddings.patch_embeddings(torch.cat([x, x], 1))
        assert torch.allclose(stem, stem_ref, atol=1e-5, rtol=1e-5)   # same sum, other order
        out = model.vit(pixel_values=model.fuse_inputs(x, x)).last_hidden_state      # pixels, normalised inside
        assert torch.allclose(out, ref(pixel_values=(x - 0.5) / 0.5).last_hidden_state, atol=1e-5, rtol=0)
        # the bug this avoids: W in both halves doubles the patch embeddings
        doubled = nn.functional.conv2d(torch.cat([x, x], 1), torch.cat([w, w], 1), stride=8)
        assert torch.allclose(doubled, 2 * nn.functional.conv2d(x, w, stride=8), atol=1e-5)


def test_six_channel_embedding_keeps_bias():
    conv = nn.Conv2d(3, 8, 4, 4)
    new = six_channel_patch_embedding(conv)
    assert torch.equal(new.bias, conv.bias) and new.weight.shape == (8, 6, 4, 4)


def test_early_add_sums_images_into_the_three_channel_stem(vit_dir):
    ref = ViTModel.from_pretrained(vit_dir).eval()
    model = EarlyFusionViT(vit_dir, fusion_type="add", profile="full", pooling="mean").eval()
    rgb, th = images()
    with torch.no_grad():
        expected = model.classifier(ref(pixel_values=(rgb - 0.5) / 0.5 + (th - 0.5) / 0.5).last_hidden_state[:, 1:].mean(1))
        assert torch.allclose(model(rgb, th), expected, atol=1e-5)
        assert torch.allclose(model(rgb, th[:, :1]), model(rgb, th[:, :1].expand(-1, 3, -1, -1)))


# --------------------------------------------------------------------------- late fusion
@pytest.mark.parametrize("fusion_type,fusion_layer", [("concat", "feature"), ("attention", "feature"),
                                                      ("concat", "prediction"), ("attention", "prediction")])
def test_late_fusion_shapes_and_weights(vit_dir, fusion_type, fusion_layer):
    model = LateFusionViT(vit_dir, num_classes=7, fusion_type=fusion_type, fusion_layer=fusion_layer,
                          profile="full").eval()
    rgb, th = images(5)
    with torch.no_grad():
        logits = model(rgb, th)
    assert logits.shape == (5, 7)
    if fusion_layer == "feature" and fusion_type == "concat":
        assert model.classifier[2].in_features == 2 * H
    else:
        w = model.branch_weights()
        assert w.shape == (5, 2)
        assert torch.allclose(w.sum(1), torch.ones(5), atol=1e-6)
        assert (w >= 0).all()
    if fusion_layer == "prediction":
        with torch.no_grad():
            f_rgb, f_th = model.encode(rgb, th)
            avg = (model.rgb_head(f_rgb) + model.thermal_head(f_th)) / 2   # equal weights at start
        assert torch.allclose(logits, avg, atol=1e-6)


def test_late_fusion_encoders_are_independent_copies(vit_dir):
    model = LateFusionViT(vit_dir, profile="full")
    assert model.rgb_vit is not model.thermal_vit
    p = next(model.rgb_vit.parameters())
    q = next(model.thermal_vit.parameters())
    assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()


def test_factory_builds_each_valid_combination(vit_dir):
    kw = dict(model_name=vit_dir, profile="full")
    assert isinstance(create_multimodal_vit_model("rgb", **kw), ViTForFER)
    assert isinstance(create_multimodal_vit_model("thermal", **kw), ViTForFER)
    m = create_multimodal_vit_model("combined", "early", "add", **kw)
    assert isinstance(m, EarlyFusionViT) and m.fusion_type == "add"
    m = create_multimodal_vit_model("combined", "late", "attention", "prediction", **kw)
    assert isinstance(m, LateFusionViT) and (m.fusion_type, m.fusion_layer) == ("attention", "prediction")


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args,match", [
    (dict(mode="depth"), "mode='depth'"),
    (dict(mode="combined", fusion_strategy="middle"), "fusion_strategy='middle'"),
    (dict(mode="combined", fusion_strategy="early", fusion_type="attention"), "early fusion has no"),
    (dict(mode="combined", fusion_strategy="early", fusion_layer="prediction"), "makes no sense"),
    (dict(mode="combined", fusion_strategy="late", fusion_type="add"), "late fusion has no"),
    (dict(mode="combined", fusion_strategy="late", fusion_layer="pixel"), "fusion_layer='pixel'"),
])
def test_invalid_combinations_list_the_valid_ones(vit_dir, args, match):
    with pytest.raises(ValueError, match=match) as err:
        create_multimodal_vit_model(model_name=vit_dir, profile="full", **args)
    assert "Valid combinations" in str(err.value)
    assert "fusion_strategy='late', fusion_type='attention', fusion_layer='feature'" in str(err.value)


def test_shape_mismatch_and_bad_arguments(vit_dir):
    model = EarlyFusionViT(vit_dir, profile="full")
    rgb, _ = images(4)
    with pytest.raises(ValueError, match=r"same shape.*\(4, 3, 16, 16\).*\(3, 3, 16, 16\)"):
        model(rgb, rgb[:3])
    late = LateFusionViT(vit_dir, profile="full")
    with pytest.raises(ValueError, match="same shape"):
        late(rgb, torch.zeros(4, 3, 8, 8))
    for cls in (ViTForFER, EarlyFusionViT, LateFusionViT):
        with pytest.raises(ValueError, match="num_classes must be an integer ≥ 2.*got 1"):
            cls(vit_dir, num_classes=1, profile="full")
    with pytest.raises(ValueError, match="num_classes"):
        create_multimodal_vit_model("rgb", model_name=vit_dir, num_classes=0, profile="full")
    with pytest.raises(ValueError, match="pooling='max'"):
        ViTForFER(vit_dir, pooling="max", profile="full")
    with pytest.raises(ValueError, match="dropout_rate"):
        ViTForFER(vit_dir, dropout_rate=1.5, profile="full")
    with pytest.raises(ValueError, match=f"has {LAYERS} encoder layers.*between 1 and {LAYERS}"):
        ViTForFER(vit_dir, freeze_backbone=True, profile="full").unfreeze_backbone(LAYERS + 1)
    with pytest.raises(ValueError, match="between 1 and"):
        ViTForFER(vit_dir, profile="full").unfreeze_backbone(0)


# --------------------------------------------------------------------------- optimizer, schedule
def test_optimizer_groups_backbone_at_tenth_and_frozen_left_out(vit_dir):
    model = ViTForFER(vit_dir, freeze_backbone=True, profile="full")
    opt, _ = get_optimizer_and_scheduler(model, 1e-3, 0, 10)
    assert [g["name"] for g in opt.param_groups] == ["head"]        # frozen backbone: not handed over
    assert sum(p.numel() for p in opt.param_groups[0]["params"]) == n_params(model.classifier)

    model.unfreeze_backbone(1)
    opt, _ = get_optimizer_and_scheduler(model, 1e-3, 0, 10)        # re-created after unfreezing
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["backbone"]["lr"] == pytest.approx(1e-4) and groups["head"]["lr"] == pytest.approx(1e-3)
    top = n_params(encoder_layers(model.vit)[-1]) + n_params(model.vit.layernorm)
    assert sum(p.numel() for p in groups["backbone"]["params"]) == top

    late = LateFusionViT(vit_dir, fusion_type="attention", profile="full")
    opt, _ = get_optimizer_and_scheduler(late, 2e-4, 0, 10)
    groups = {g["name"]: g for g in opt.param_groups}
    assert sum(p.numel() for p in groups["backbone"]["params"]) == n_params(late.rgb_vit) + n_params(late.thermal_vit)
    assert groups["backbone"]["lr"] == pytest.approx(0.1 * groups["head"]["lr"])
    early = EarlyFusionViT(vit_dir, profile="full")                # the 6-channel stem is backbone
    opt, _ = get_optimizer_and_scheduler(early, 1e-3, 0, 10)
    backbone = {id(p) for p in opt.param_groups[0]["params"]}
    assert id(early.vit.embeddings.patch_embeddings.projection.weight) in backbone


def test_schedule_is_linear_warmup_then_cosine(vit_dir):
    model = ViTForFER(vit_dir, profile="full")
    lr, warm, total = 1e-3, 5, 25
    opt, sched = get_optimizer_and_scheduler(model, lr, warm, total)
    table = lr_schedule_table(opt, sched, total)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)            # table left the optimizer as it was
    for step in range(total):
        factor = step / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
        assert table.loc[step, "head"] == pytest.approx(lr * factor, abs=1e-12)
        assert table.loc[step, "backbone"] == pytest.approx(0.1 * lr * factor, abs=1e-12)


# --------------------------------------------------------------------------- checkpointing
def test_gradient_checkpointing_gives_same_gradients_and_less_memory(vit_dir):
    torch.manual_seed(0)
    model = ViTForFER(vit_dir, dropout_rate=0.0, profile="full").train()
    x, _ = images(8)
    y = torch.arange(8) % 7
    loss_fn = lambda: nn.functional.cross_entropy(model(x), y)            # noqa: E731
    plain = saved_activation_bytes(model, loss_fn)
    loss_fn().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    ckpt = saved_activation_bytes(model, loss_fn)
    loss_fn().backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[n], atol=1e-6, rtol=1e-5), n
    assert ckpt <= 0.7 * plain                                           # ≥ 30 % less kept for backward
    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing


# --------------------------------------------------------------------------- training helpers
def test_fer_step_flips_both_modalities_together():
    seen = {}

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, rgb, thermal):
            seen["rgb"], seen["thermal"] = rgb, thermal
            return torch.zeros(rgb.shape[0], 7) + self.w

    x = torch.arange(64 * 3 * 4 * 4, dtype=torch.float).reshape(64, 3, 4, 4)
    batch = {"rgb": x, "thermal": x.clone(), "label": torch.zeros(64, dtype=torch.long)}
    model = Recorder().train()
    torch.manual_seed(0)
    fer_step(("rgb", "thermal"))(model, batch)
    flipped = (seen["rgb"] != x).flatten(1).any(1)
    assert 0 < flipped.sum() < 64                                        # some, not all
    assert torch.equal(seen["rgb"], seen["thermal"])                     # the same items in both
    model.eval()
    fer_step(("rgb", "thermal"))(model, batch)
    assert torch.equal(seen["rgb"], x)                                   # no flip when evaluating


def test_tensor_batches_cover_every_item_once():
    data = {"x": torch.arange(10), "label": torch.arange(10)}
    torch.manual_seed(0)
    batches = list(TensorBatches(data, batch_size=4, shuffle=True))
    assert [len(b["x"]) for b in batches] == [4, 4, 2] and len(TensorBatches(data, 4)) == 3
    assert sorted(torch.cat([b["x"] for b in batches]).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="same first dimension"):
        TensorBatches({"x": torch.zeros(3), "y": torch.zeros(4)})


# --------------------------------------------------------------------------- notebook data plumbing
def test_load_fer_splits_maps_fer2013_csv_usages(tmp_path):
    from lab_utils.data.fer_data import load_fer_splits

    rows = ["emotion,pixels,Usage"]
    for i, usage in enumerate(["Training"] * 4 + ["PublicTest"] * 2 + ["PrivateTest"] * 3):
        rows.append(f"{i % 7},{' '.join(str((i * 7 + k) % 256) for k in range(48 * 48))},{usage}")
    (tmp_path / "fer2013.csv").write_text("\n".join(rows) + "\n")
    splits, described = load_fer_splits("fer2013", str(tmp_path), 32, 140)
    assert "PublicTest" in described
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "val": 2, "test": 3}
    item = splits["test"][0]
    assert item["rgb"].shape == (3, 32, 32) and item["rgb"].min() >= -1 and item["label"] == 6 % 7


def test_missing_fer2013_falls_back_to_synthetic_and_says_how_to_get_it(tmp_path, capsys):
    from lab_utils.data.fer_data import load_fer_splits, make_loaders

    splits, described = load_fer_splits("fer2013", str(tmp_path / "nothing"), 32, 140, data_seed=3)
    out = capsys.readouterr().out
    assert "kaggle" in out.lower() and "synthetic" in out
    assert "synthetic" in described and sum(len(s) for s in splits.values()) == 140
    loaders = make_loaders(splits, batch_size=16)
    batch = next(iter(loaders["val"]))
    assert isinstance(loaders["train"], TensorBatches)
    assert batch["rgb"].min() >= 0 and batch["rgb"].max() <= 1     # pixels: the FER models normalise them
    assert batch["label"].tolist() == splits["val"].labels[:len(batch["label"])].tolist()


# --------------------------------------------------------------------------- other input sizes (full profile: 112 px)
def test_other_image_sizes_interpolate_the_position_embeddings(vit_dir):
    model = ViTForFER(vit_dir, profile="full").eval()
    ref = ViTModel.from_pretrained(vit_dir).eval()
    x, _ = images()
    big = torch.randn(2, 3, 2 * S, 2 * S)                                # 4 × 4 patches instead of 2 × 2
    with torch.no_grad():
        assert torch.equal(vit_tokens(model.vit, x), ref(pixel_values=x).last_hidden_state)   # native: unchanged
        tokens = vit_tokens(model.vit, big)
        assert tokens.shape == (2, 1 + 16, H)
        expected = ref(pixel_values=big, interpolate_pos_encoding=True).last_hidden_state
        assert torch.allclose(tokens, expected, atol=1e-6)
        assert model(big).shape == (2, 7)
        late = LateFusionViT(vit_dir, profile="full").eval()
        assert late(big, big).shape == (2, 7)
    with pytest.raises(ValueError, match="multiple of its 8-px patches"):
        model(torch.randn(1, 3, 20, 20))


# --------------------------------------------------------------------------- a frozen backbone, computed once
def test_cached_features_give_the_model_s_logits_and_flip_with_the_images(vit_dir):
    from lab_utils.recipes.fer import extract_features

    model = ViTForFER(vit_dir, freeze_backbone=True, profile="full")
    x, _ = images(6)
    labels = torch.arange(6) % 7
    batches = TensorBatches({"rgb": x, "label": labels}, batch_size=4, shuffle=True)
    cached = extract_features(model, batches, flip=True)
    assert cached["feature"].shape == (6, H) and cached["feature_flipped"].shape == (6, H)
    assert model.training                                                 # mode restored
    model.eval()
    with torch.no_grad():
        order = [int((labels == y).nonzero()[0]) for y in cached["label"]]  # the shuffled order
        assert torch.allclose(cached["feature"], model.features(x[order]), atol=1e-6)
        assert torch.allclose(cached["feature_flipped"], model.features(x[order].flip(-1)), atol=1e-6)
        assert torch.allclose(model.classifier(cached["feature"]), model(x[order]), atol=1e-6)


def test_feature_step_mirrors_a_random_half_only_in_training():
    from lab_utils.recipes.fer import feature_step

    seen = []
    head = nn.Linear(2, 7)
    head.register_forward_hook(lambda m, inp, out: seen.append(inp[0].clone()))
    batch = {"feature": torch.zeros(400, 2), "feature_flipped": torch.ones(400, 2), "label": torch.zeros(400).long()}
    torch.manual_seed(0)
    out = feature_step()(head, batch)
    assert out["loss"].requires_grad and out["logits"].shape == (400, 7)
    assert 0.4 < seen[-1][:, 0].mean() < 0.6                                  # about half mirrored
    head.eval()
    feature_step()(head, batch)
    assert seen[-1].sum() == 0                                                # evaluation: never


def test_strategy_stages_split_the_epochs():
    from lab_utils.recipes.fer import strategy_stages

    stages = strategy_stages(8, 2, 4)
    assert stages == {"head only": [(8, 0)], "full fine-tuning": [(8, None)], "progressive": [(2, 0), (3, 4), (3, None)]}
    assert all(sum(e for e, _ in s) == 8 for s in stages.values())
    with pytest.raises(ValueError, match="head_only_epochs=8 must be"):
        strategy_stages(8, 8, 4)


def test_data_on_the_device_is_read_once_and_served_as_the_items_were():
    """make_loaders(device=…) (and in_memory=True) keep each split as bytes and decode every
    batch where they live: the same numbers as the items, within a byte's rounding."""
    from lab_utils.data.fer_data import make_loaders, stored_bytes

    class Pairs(torch.utils.data.Dataset):               # stands in for image files read one by one
        def __init__(self, n):
            self.n, self.reads = n, 0

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            self.reads += 1
            return {"rgb": torch.linspace(0, 1, 48).reshape(3, 4, 4) * (i + 1) / 10,
                    "thermal": torch.full((3, 4, 4), i / 10), "label": i}

    splits = {"train": Pairs(10), "val": Pairs(4)}
    loaders = make_loaders(splits, batch_size=3, device="cpu")
    stored = loaders["train"].tensors
    assert isinstance(loaders["train"], TensorBatches) and stored["rgb"].dtype == torch.uint8
    assert stored["rgb"].shape == (10, 3, 4, 4) and stored["thermal"].shape == (10, 1, 4, 4)   # gray: one channel
    assert stored["rgb"].device == torch.device("cpu") and loaders["train"].image_size == 4
    for _ in range(3):
        batches = list(loaders["train"])
    assert splits["train"].reads == 10 + 1                                    # once (+ the size probe), not per epoch
    got = {int(l): (r, t) for b in batches for l, r, t in zip(b["label"], b["rgb"], b["thermal"])}
    for i in range(10):
        want = Pairs(10)[i]
        assert got[i][0].dtype == torch.float32 and got[i][1].shape == (3, 4, 4)
        torch.testing.assert_close(got[i][0], want["rgb"], atol=0.5 / 255 + 1e-6, rtol=0)   # half a byte
        torch.testing.assert_close(got[i][1], want["thermal"], atol=0.5 / 255 + 1e-6, rtol=0)
    assert next(iter(loaders["val"]))["label"].tolist() == [0, 1, 2, 3]
    assert make_loaders(splits, batch_size=3, in_memory=True)["val"].tensors["rgb"].dtype == torch.uint8

    class Raw(Pairs):                                    # items in [0, 255]: not what the FER models read
        def __getitem__(self, i):
            return {"rgb": torch.full((3, 4, 4), 200.0), "label": 0}

    with pytest.raises(ValueError, match=r"range from 200 to 200.*pixels in \[0, 1\].*backbone='none'"):
        stored_bytes(Raw(2))


def test_fer2013_on_the_device_keeps_its_48px_bytes_and_matches_the_cpu_transforms(tmp_path):
    """FER2013 is stored as its own 48×48 gray bytes; decode_images resizes a batch to the
    model's size, repeats the channel and normalises: what get_transforms does per item."""
    from lab_utils.data.fer_data import load_fer_splits, make_loaders

    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"] + [f"{i % 7},{' '.join(map(str, rng.integers(0, 256, 2304)))},{u}"
                                       for i, u in enumerate(["Training"] * 6 + ["PublicTest"] * 2 + ["PrivateTest"] * 3)]
    (tmp_path / "fer2013.csv").write_text("\n".join(rows) + "\n")
    splits, _ = load_fer_splits("fer2013", str(tmp_path), 112, 140)
    loaders = make_loaders(splits, batch_size=4, device="cpu", shuffle=False)
    stored = loaders["train"].tensors["rgb"]
    assert stored.dtype == torch.uint8 and stored.shape == (6, 1, 48, 48)       # 2,304 bytes a face
    batch = next(iter(loaders["test"]))
    assert batch["rgb"].shape == (3, 3, 112, 112) and batch["label"].tolist() == [8 % 7, 9 % 7, 10 % 7]
    want = torch.stack([splits["test"][i]["rgb"] for i in range(3)])
    torch.testing.assert_close(batch["rgb"], want, atol=1e-5, rtol=0)


def test_synthetic_faces_above_64px_go_to_the_device_as_rendered_bytes():
    from lab_utils.data.fer_data import load_fusion_splits, make_loaders

    splits, _ = load_fusion_splits("synthetic", "", 72, 56)
    loaders = make_loaders(splits, batch_size=8, device="cpu", shuffle=False)
    stored = loaders["val"].tensors
    assert stored["rgb"].dtype == torch.uint8 and stored["thermal"].shape[1:] == (1, 72, 72)
    batch = next(iter(loaders["val"]))
    want = [splits["val"][i] for i in range(len(batch["label"]))]
    torch.testing.assert_close(batch["rgb"], torch.stack([w["rgb"] for w in want]), atol=1e-6, rtol=0)
    torch.testing.assert_close(batch["thermal"], torch.stack([w["thermal"] for w in want]), atol=1e-6, rtol=0)
    assert batch["label"].tolist() == [w["label"] for w in want]


def test_modality_attention_matches_a_hand_computation_and_starts_as_concat():
    from lab_utils.models.fer import ModalityAttention
    torch.manual_seed(0)
    att = ModalityAttention(8, num_heads=2)
    tokens = torch.randn(3, 2, 8)
    out = att(tokens)
    assert out.shape == (3, 16)
    # by hand, head by head: scores = q_k · K(token + embed)_k / √d, softmax over the 2 modalities
    keys = att.key(tokens + att.modality_embed)                                   # (3, 2, 8)
    expected = []
    for m in range(2):
        parts = []
        for k in range(2):
            sl = slice(4 * k, 4 * k + 4)
            s = torch.stack([keys[:, j, sl] @ att.query[k] for j in range(2)], 1) / 2.0   # (3, 2)
            parts.append(2 * s.softmax(1)[:, m:m + 1] * tokens[:, m, sl])
        expected.append(torch.cat(parts, 1))
    assert torch.allclose(out, torch.cat(expected, 1), atol=1e-6)
    assert torch.allclose(att.last_attention.sum(1), torch.ones(3))
    # a zero query gives every modality weight 1/2: the output is exactly [f_rgb ; f_thermal]
    with torch.no_grad():
        att.query.zero_()
    assert torch.allclose(att(tokens), tokens.flatten(1)) and torch.allclose(att.last_attention, torch.full((3, 2), 0.5))


def test_late_attention_fusion_head_sees_both_modalities_in_their_own_slots(vit_dir):
    model = LateFusionViT(vit_dir, fusion_type="attention", fusion_layer="feature", profile="full").eval()
    assert model.classifier[2].in_features == 2 * H       # [w_rgb·f_rgb ; w_th·f_th], not their sum
    with pytest.raises(ValueError, match="not divisible by num_heads=5"):
        LateFusionViT(vit_dir, fusion_type="attention", num_heads=5, profile="full")


def test_per_encoder_auxiliary_losses_train_each_encoder_and_leave_predictions_alone(vit_dir):
    """aux_weight=λ: the training loss is CE(fused) + λ · mean(CE(rgb aux), CE(thermal aux)), computed
    by hand here; eval uses the fused head only; each encoder gets a gradient from its own head even
    when the fused head's is cut."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = LateFusionViT(vit_dir, num_classes=7, fusion_type="attention", aux_weight=0.5, profile="full")
    rgb, th = images(6)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    batch = {"rgb": rgb, "thermal": th, "label": labels}
    step = fer_step(("rgb", "thermal"), flip=False)
    model.classifier[1].p = model.classifier[4].p = 0.0      # no dropout: training numbers are exact
    model.train()
    loss = step(model, batch)["loss"]
    with torch.no_grad():
        f_rgb, f_th = model.encode(rgb, th)
        fused = model.classifier(model.fusion(torch.stack([f_rgb, f_th], 1)))
        by_hand = F.cross_entropy(fused, labels) + 0.5 * (F.cross_entropy(model.aux_heads["rgb"](f_rgb), labels)
                                                          + F.cross_entropy(model.aux_heads["thermal"](f_th), labels)) / 2
    assert torch.allclose(loss, by_hand, atol=1e-5)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(step(model, batch)["loss"], F.cross_entropy(model(rgb, th), labels), atol=1e-6)
    # the thermal encoder learns from its own head alone when the fused head ignores it
    model.train()
    model.zero_grad()
    logits, aux = model.forward_with_aux(rgb, th)
    F.cross_entropy(aux["thermal"], labels).backward()
    assert model.thermal_vit.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    assert model.rgb_vit.embeddings.patch_embeddings.projection.weight.grad is None
    assert set(aux) == {"rgb", "thermal"} and aux["rgb"].shape == (6, 7)
    with pytest.raises(ValueError, match="aux_weight=-1.*≥ 0"):
        LateFusionViT(vit_dir, fusion_type="attention", aux_weight=-1, profile="full")
    with pytest.raises(ValueError, match="feature fusion only"):
        LateFusionViT(vit_dir, fusion_type="concat", fusion_layer="prediction", aux_weight=0.5, profile="full")


def test_hide_modality_finds_the_modality_a_model_ignores():
    """A model that reads only the thermal image loses everything when thermal is hidden (every
    face gets the mean image, hence one prediction) and nothing when RGB is: modality collapse,
    seen from outside the model."""
    from lab_utils.recipes.fer import hide_modality

    class ThermalOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, rgb, thermal):
            t = thermal.mean(dim=(1, 2, 3), keepdim=False)[:, None]         # (B, 1)
            return torch.cat([-t, t], dim=1) * self.w                        # class 1 when warm

    g = torch.Generator().manual_seed(0)
    thermal = torch.randn(40, 3, 4, 4, generator=g) + torch.where(torch.arange(40) % 2 == 0, -1.0, 1.0)[:, None, None, None]
    labels = (thermal.mean(dim=(1, 2, 3)) > 0).long()
    batches = [{"rgb": torch.randn(10, 3, 4, 4, generator=g), "thermal": thermal[i:i + 10], "label": labels[i:i + 10]}
               for i in range(0, 40, 10)]
    scores = hide_modality(ThermalOnly(), batches, fer_step(("rgb", "thermal"), flip=False), num_classes=2)
    assert scores["both"] == 1.0 and scores["rgb hidden"] == 1.0
    assert scores["thermal hidden"] == pytest.approx(1 / 3)     # one class predicted for all: F1 (2/3 + 0) / 2


def test_factory_gives_auxiliary_losses_to_late_feature_fusions_only(vit_dir):
    """One aux_weight serves notebook 05's whole comparison: the late feature fusions get a head per
    encoder; single-encoder models and late prediction (a head per encoder already) are unchanged."""
    from lab_utils.models.fer import FUSION_MODELS

    built = {name: create_multimodal_vit_model(**spec, model_name=vit_dir, aux_weight=0.5, profile="full", verbose=False)
             for name, spec in FUSION_MODELS.items()}
    with_aux = {name for name, m in built.items() if getattr(m, "aux_heads", None) is not None}
    assert with_aux == {"late concat", "late attention"}
    assert built["late attention"].aux_weight == 0.5
    plain = create_multimodal_vit_model(**FUSION_MODELS["RGB only"], model_name=vit_dir, profile="full", verbose=False)
    assert n_params(built["RGB only"]) == n_params(plain)
    with pytest.raises(ValueError, match="aux_weight=-0.5 must be ≥ 0"):
        create_multimodal_vit_model(mode="rgb", model_name=vit_dir, aux_weight=-0.5, profile="full")
