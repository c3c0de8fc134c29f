"""Offline-safe pretrained loading (lab_utils.models.pretrained), on tiny local models."""
import time

import pytest
import torch
from transformers import ViTConfig, ViTModel

from lab_utils.models.pretrained import PretrainedUnavailable, count_parameters, load_pretrained, quick_vit_config

TINY = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1,
                 num_attention_heads=2, intermediate_size=64)


def test_local_directory_loads_same_weights(tmp_path):
    torch.manual_seed(0)
    saved = ViTModel(TINY)
    saved.save_pretrained(tmp_path / "tiny-vit")
    for profile in ("quick", "full"):
        loaded = load_pretrained(ViTModel, tmp_path / "tiny-vit", quick_config=quick_vit_config(),
                                 what="ViT", profile=profile)
        for (n, p), (_, q) in zip(saved.named_parameters(), loaded.named_parameters()):
            assert torch.equal(p, q), n


def test_quick_profile_never_downloads_and_says_so(capsys):
    model = load_pretrained(ViTModel, "google/vit-base-patch16-224-in21k", quick_config=quick_vit_config(),
                            what="ViT backbone", profile="quick")
    assert model.config.hidden_size == 64 and model.config.image_size == 32
    out = capsys.readouterr().out
    assert out == ("Quick profile: ViT backbone is a small ViTModel (4 layers, hidden 64, 4 heads, "
                   "32 px, patch 8, random init) instead of google/vit-base-patch16-224-in21k.\n")
    with pytest.raises(PretrainedUnavailable, match="never downloads"):
        load_pretrained(ViTModel, "google/vit-base-patch16-224-in21k", what="ViT", profile="quick")


def test_full_profile_offline_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(PretrainedUnavailable, match=r"not in the local Hugging Face cache.*HF_HUB_OFFLINE=1.*LAB_PROFILE=quick"):
        load_pretrained(ViTModel, "google/vit-base-patch16-224-in21k-not-cached", what="ViT", profile="full")
    assert time.perf_counter() - start < 10


def test_full_profile_unreachable_hub_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")   # nothing listens there
    start = time.perf_counter()
    with pytest.raises(PretrainedUnavailable, match="cannot be reached"):
        load_pretrained(ViTModel, "someone/not-cached-model", what="ViT", profile="full")
    assert time.perf_counter() - start < 10


def test_broken_local_directory_is_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PretrainedUnavailable, match=r"local directory .*empty.*config\.json"):
        load_pretrained(ViTModel, tmp_path / "empty", quick_config=quick_vit_config(), what="ViT")


def test_count_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert count_parameters(model) == {"trainable": 10, "frozen": 16, "total": 26}
