"""OpenAI's ResNet CLIPs (RN50 … RN50x64) through open_clip as notebook 03's frozen CLIP branch.

Offline: every model here is open_clip's random init (``pretrained=None``), built once per
module; the full profile's loading is checked on a random-init RN50 saved where the
Hugging Face cache keeps open_clip's OpenAI weights."""
from __future__ import annotations

import socket
import sys
import time

import pytest
import torch

from lab_utils.models.clip_names import CLIP_RESNET_NAMES, is_open_clip_name, resolve_clip_name
from lab_utils.models.hybrid import HybridViTCLIP, load_clip_branch, open_clip_branch
from lab_utils.models.pretrained import PretrainedUnavailable
from test_hybrid import NUM_CLASSES, images, save_lab_clip_encoder, tiny_vit

open_clip = pytest.importorskip("open_clip")

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _no_network(*args, **kwargs):
    raise OSError("network use in a test that must stay offline")


@pytest.fixture(scope="module")
def rn50():
    """``(branch, reference)``: ``open_clip_branch("RN50", pretrained=None)`` built with the
    network blocked, and a separate open_clip RN50 whose image tower holds the same weights
    (the reference for ``encode_image``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        torch.manual_seed(0)
        branch = open_clip_branch("RN50", pretrained=None)
        reference = open_clip.create_model("RN50", pretrained=None, force_quick_gelu=True).eval()
    reference.visual.load_state_dict(branch.encoder.state_dict())
    return branch, reference


@pytest.fixture
def offline_empty_cache(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1, an empty Hugging Face cache in tmp_path, and no network at all.
    huggingface_hub reads its cache folder when imported, so its constant is patched too."""
    import huggingface_hub.constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.setenv(var, str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    return cache


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize("name", CLIP_RESNET_NAMES)
def test_resnet_clip_names_are_accepted(name):
    assert CLIP_RESNET_NAMES == ("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64")
    assert resolve_clip_name(name) == name and is_open_clip_name(name)


@pytest.mark.parametrize("name, hint", [("RN51", None), ("rn50x3", None), ("rn101", "RN101")])
def test_unknown_resnet_spellings_are_refused_with_the_known_names(name, hint):
    with pytest.raises(ValueError, match=f"unknown ResNet CLIP '{name}'") as err:
        resolve_clip_name(name)
    for known in CLIP_RESNET_NAMES + ("ViT-B/32",):
        assert known in str(err.value)
    if hint:
        assert f"did you mean {hint}?" in str(err.value)
    assert not is_open_clip_name(name)


# --------------------------------------------------------------------------- the branch
def test_branch_is_frozen_and_stays_in_eval_mode(rn50):
    branch, _ = rn50
    assert branch.kind == "open_clip" and "RN50" in branch.source
    assert branch.embed_dim == 1024 and branch.image_size == 224
    assert sum(p.numel() for p in branch.parameters() if p.requires_grad) == 0
    assert sum(p.numel() for p in branch.parameters()) > 0
    branch.train()
    assert not branch.encoder.training and not any(m.training for m in branch.encoder.modules())


def test_preprocess_uses_the_models_size_and_openais_statistics(rn50):
    branch, _ = rn50
    assert branch.mean == pytest.approx(OPENAI_MEAN) and branch.std == pytest.approx(OPENAI_STD)
    x = torch.full((2, 3, 224, 224), 0.5)
    x[0, 1, 3, 4] = 0.9
    pv = branch.preprocess(x)
    assert pv.shape == (2, 3, 224, 224)
    assert pv[0, 1, 3, 4].item() == pytest.approx((0.9 - 0.4578275) / 0.26130258, rel=1e-5)
    assert pv[1, 2, 0, 0].item() == pytest.approx((0.5 - 0.40821073) / 0.27577711, rel=1e-5)
    stored = torch.full((3, 3, 32, 32), 51, dtype=torch.uint8)                      # bytes, small
    pv = branch.preprocess(stored)
    assert pv.shape == (3, 3, 224, 224)
    assert pv[2, 0, 100, 7].item() == pytest.approx((51 / 255 - 0.48145466) / 0.26862954, rel=1e-4)


def test_embeddings_are_unit_length_and_match_open_clips_encode_image(rn50):
    branch, reference = rn50
    pv = branch.preprocess(images(batch=2, size=48))
    out = branch(pv)
    assert out.shape == (2, 1024) and not out.requires_grad
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2), atol=1e-5, rtol=0)
    with torch.no_grad():
        expected = reference.encode_image(pv, normalize=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_embed_dim_and_size_are_read_from_the_model():
    """Random-init RN101 at 64 px (no text tower needed for the check): 512-d, 64-px input."""
    torch.manual_seed(0)
    branch = open_clip_branch("RN101", pretrained=None, image_size=64)
    assert (branch.embed_dim, branch.image_size) == (512, 64)
    assert branch(branch.preprocess(images(batch=1, size=20))).shape == (1, 512)
    with pytest.raises(ValueError, match="image_size=64 needs pretrained=None"):
        open_clip_branch("RN50", pretrained="openai", image_size=64)
    with pytest.raises(ValueError, match="'ViT-B/32' is not one of OpenAI's ResNet CLIPs"):
        open_clip_branch("ViT-B/32", pretrained=None)


@pytest.mark.parametrize("fusion, feature_dim", [("concat", 64 + 1024), ("attention", 64)])
def test_inside_the_hybrid_model(rn50, fusion, feature_dim):
    branch, _ = rn50
    model = HybridViTCLIP(tiny_vit(), branch, NUM_CLASSES, fusion=fusion).eval()
    stored = (images(batch=2, size=32) * 255).round().to(torch.uint8)
    embeds = model.encode_clip(stored)
    assert embeds.shape == (2, 1024)
    pv_vit, pv_clip = model.preprocess(stored)
    assert pv_vit.shape == (2, 3, 32, 32) and pv_clip.shape == (2, 3, 224, 224)
    assert model.features(pv_vit, clip_embeds=embeds)["fused"].shape == (2, feature_dim)
    assert model(pv_vit, clip_embeds=embeds).shape == (2, NUM_CLASSES)
    torch.testing.assert_close(model(pv_vit, pv_clip), model(pv_vit, clip_embeds=embeds))
    summary = model.parameter_summary()
    assert summary.loc["CLIP branch (frozen)", "trainable"] == 0
    model.train()
    assert not model.clip.encoder.training


# --------------------------------------------------------------------------- loading by profile
def test_full_profile_offline_fails_fast_and_says_what_to_do(offline_empty_cache):
    start = time.perf_counter()
    with pytest.raises(PretrainedUnavailable) as err:
        load_clip_branch("RN50", profile="full")
    assert time.perf_counter() - start < 10
    message = str(err.value)
    for words in ("RN50", "HF_HUB_OFFLINE=1", "Colab", "ViT-B/32", "LAB_PROFILE=quick"):
        assert words in message, words


def test_full_profile_unreachable_hub_fails_fast(monkeypatch, offline_empty_cache):
    import lab_utils.models.hybrid as hybrid

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hybrid, "hub_reachable", lambda: False)
    with pytest.raises(PretrainedUnavailable, match="RN50x64 .*cannot be reached.*LAB_PROFILE=quick"):
        load_clip_branch("RN50x64", profile="full")


def test_full_profile_loads_cached_weights_offline(rn50, offline_empty_cache):
    """OpenAI's weights once downloaded sit in the Hugging Face cache; offline, the full
    profile loads them from there (here: the reference RN50's weights in their place)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME
    from safetensors.torch import save_file

    from lab_tools.standins import save_to_hub_cache

    branch, reference = rn50
    repo = open_clip.get_pretrained_cfg("RN50", "openai")["hf_hub"].rstrip("/")
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    save_to_hub_cache(offline_empty_cache, repo, lambda folder: save_file(state, folder / HF_SAFE_WEIGHTS_NAME))
    loaded = load_clip_branch("RN50", profile="full")
    assert loaded.kind == "open_clip" and loaded.source == "open_clip RN50 (openai)"
    assert (loaded.embed_dim, loaded.image_size, loaded.mean) == (1024, 224, branch.mean)
    for key, value in branch.encoder.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[key], value), key
    pv = branch.preprocess(images(batch=1))
    torch.testing.assert_close(loaded(pv), branch(pv))


def test_open_clip_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)   # import open_clip → ImportError
    with pytest.raises(PretrainedUnavailable, match=r"RN50 .*pip install open_clip_torch"):
        open_clip_branch("RN50", pretrained=None)


def test_quick_profile_uses_notebook_02s_encoder_as_for_vit_names(monkeypatch, capsys):
    """The quick profile never downloads: RN50 gets notebook 02's encoder, as ViT-B/32 does,
    and open_clip is not even imported."""
    save_lab_clip_encoder(embed_dim=32, image_size=32)
    monkeypatch.setitem(sys.modules, "open_clip", None)
    rn50 = load_clip_branch("RN50", profile="quick")
    assert "instead of RN50" in capsys.readouterr().out
    vit = load_clip_branch("ViT-B/32", profile="quick", verbose=False)
    assert rn50.kind == vit.kind == "lab" and rn50.source == "notebook 02"
    assert (rn50.embed_dim, rn50.image_size) == (vit.embed_dim, vit.image_size) == (32, 32)
    x = images(batch=2)
    torch.testing.assert_close(rn50(rn50.preprocess(x)), vit(vit.preprocess(x)))
    torch.testing.assert_close(rn50(rn50.preprocess(x)).norm(dim=-1), torch.ones(2))
