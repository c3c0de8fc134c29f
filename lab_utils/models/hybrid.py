"""Hybrid ViT + frozen CLIP feature fusion (notebook 03).

Two image encoders look at the same face:

* the **ViT branch** — a ``transformers.ViTModel``; its final [CLS] vector ``(B, H)`` is
  the image feature, and the whole branch is trained (fine-tuned);
* the **CLIP branch** — a *frozen* CLIP image encoder whose L2-normalised global
  embedding ``(B, D)`` is the feature. Full profile, a ViT CLIP (``ViT-B/32``, a hub id
  or a local folder): its vision tower with its projection (transformers'
  ``CLIPVisionModelWithProjection``; ``openai/clip-vit-base-patch32`` by default). Full
  profile, one of OpenAI's ResNet CLIPs (``RN50``, ``RN101``, ``RN50x4``, ``RN50x16``,
  ``RN50x64``: no transformers port): the image tower of open_clip's model with OpenAI's
  weights (``open_clip_branch``; needs ``pip install open_clip_torch``). Quick profile:
  the image encoder trained in notebook 02 (``checkpoints/``), whatever the name.

and a fusion module combines the two before one classifier:

* ``concat``    — ``[vit_cls ; clip_embed]`` ``(B, H + D)`` → classifier;
* ``attention`` — the CLIP feature is projected to ``H``, the two vectors form a 2-token
  sequence ``(B, 2, H)``, multi-head self-attention mixes them, the two outputs are
  mean-pooled ``(B, H)`` → classifier. The attention weights are kept
  (``last_attention``) so a notebook can show how much each branch is attended to.

Two remedies for **modality imbalance** (the frozen CLIP features fit the training set
before the ViT has learnt anything, and the ViT then gets little gradient), both off by
default and both used only in training:

* ``modality_dropout=p`` — hide the CLIP feature of a share ``p`` of the training images
  (replaced by 0, the training mean once ``standardize_clip`` has run): for those images the
  classifier has only the ViT to go on;
* ``aux_weight=λ`` — an auxiliary linear classifier on the ViT feature alone
  (``aux_head``); ``recipes.hybrid.hybrid_step`` adds ``λ ·`` its cross-entropy to the loss, so the ViT
  must become useful on its own.

For comparisons the same class also builds the two single-branch baselines
(``fusion="vit_only"``: ViT + the same classifier; ``fusion="clip_only"``: a linear probe
on the frozen CLIP embedding).

Because the CLIP branch never changes, its embeddings can be computed **once per image**
(``encode_clip``) and passed to ``forward(..., clip_embeds=...)`` during training: the
frozen encoder then costs one pass over the data instead of one per epoch.

Images are stored small, as bytes (``SynthFER(...).tensors(torch.uint8)``); each branch
resizes and normalises a batch on the device it runs on (``preprocess``), so a 224-px
model never needs the whole data set at 224 px in host memory.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import NORMALIZATION, normalize, to_pixels
from ..network import hub_offline, hub_reachable
from .clip import (ImageEncoderSpec, build_image_encoder, channels_last, image_encoder_spec_from_file,
                   load_image_encoder)
from .clip_names import (CLIP_RESNET_NAMES, default_checkpoint_path, is_open_clip_name, lab_checkpoint_file,
                         resolve_clip_name)
from .fer import make_fer_head
from .pretrained import (PretrainedUnavailable, ViTSpec, build_vit, cached_config, fresh_config, is_local_dir,
                         load_pretrained, load_vit, on_device, quick_vit_config, vit_shape_from_name, vit_spec)
from .summary import parameter_table
from .vit import pool_tokens

#: How each branch normalises its input (transformers' ViT and CLIP image processors): the
#: lab's one table of these constants, ``lab_utils.data.transforms.NORMALIZATION``.
VIT_MEAN, VIT_STD = NORMALIZATION["vit"]
CLIP_MEAN, CLIP_STD = NORMALIZATION["clip"]


FUSION_METHODS = ("concat", "attention")     # the config's fusion.method
BASELINES = ("vit_only", "clip_only")       # single-branch models for comparisons


# --------------------------------------------------------------------------- preprocessing
def preprocess(images: torch.Tensor, size: int, mean: tuple, std: tuple) -> torch.Tensor:
    """One branch's preprocessing: ``(B, 3, h, w)`` images (bytes 0–255 or floats in [0, 1])
    → resized to ``(B, 3, size, size)`` (bilinear, antialiased: ``to_pixels``) and normalised
    per channel, on the images' device."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W) in [0, 1], got {tuple(images.shape)}")
    return normalize(to_pixels(images, size), mean, std)               # (B, 3, size, size)


# --------------------------------------------------------------------------- CLIP branch
class FrozenCLIPBranch(nn.Module):
    """A frozen CLIP image encoder → L2-normalised embeddings ``(B, embed_dim)``.

    Wraps a ``CLIPVisionModelWithProjection`` (``kind="hf"``: its ``image_embeds``), the
    image tower ``model.visual`` of an open_clip model (``kind="open_clip"``: OpenAI's
    ResNet CLIPs; its output is the image embedding), or the lab's ``CLIPImageEncoder`` from
    notebook 02 (``kind="lab"``). Every parameter has ``requires_grad=False`` and the
    encoder stays in eval mode even inside a model that is being trained (so batch-norm
    statistics and dropout never change it).
    """

    KINDS = ("hf", "open_clip", "lab")

    def __init__(self, encoder: nn.Module, kind: str, embed_dim: int, image_size: int,
                 mean: tuple = CLIP_MEAN, std: tuple = CLIP_STD, source: str = ""):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, self.KINDS))}, got {kind!r}")
        self.encoder, self.kind, self.embed_dim = encoder, kind, int(embed_dim)
        self.image_size, self.mean, self.std, self.source = int(image_size), tuple(mean), tuple(std), source
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> "FrozenCLIPBranch":
        super().train(mode)
        self.encoder.eval()  # frozen: always in inference mode
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` in [0, 1] → ``(B, 3, image_size, image_size)`` CLIP-normalised."""
        return preprocess(images, self.image_size, self.mean, self.std)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` preprocessed pixels → ``(B, embed_dim)`` unit-length embeddings."""
        if self.kind == "hf":
            out = self.encoder(pixel_values=pixel_values).image_embeds
        elif self.kind == "open_clip":  # model.visual: pixels → image embedding (channels-last on CUDA)
            out = self.encoder(channels_last(self.encoder, pixel_values))
        else:  # notebook 02's encoder (either recipe) normalises inside; here the pixels already are
            out = self.encoder.embed_preprocessed(pixel_values)
        return F.normalize(out.float(), dim=-1)

    @classmethod
    def from_hf(cls, model: nn.Module, source: str = "") -> "FrozenCLIPBranch":
        """From a ``CLIPVisionModelWithProjection`` (its projection gives the embedding)."""
        cfg = model.config
        return cls(model, "hf", cfg.projection_dim, cfg.image_size, source=source)

    @classmethod
    def from_open_clip(cls, model: nn.Module, source: str = "") -> "FrozenCLIPBranch":
        """From an open_clip CLIP model (``open_clip.create_model("RN50", ...)``): its image
        tower ``model.visual`` (``(B, 3, S, S)`` → ``(B, visual.output_dim)``, e.g. RN50 and
        RN50x64 1024, RN101 512), with the model's own preprocessing: input size
        ``visual.image_size`` (RN50 224, RN50x4 288, RN50x16 384, RN50x64 448 px) and the
        mean/std of its preprocess config (OpenAI's statistics for OpenAI's weights). The
        text tower is not kept."""
        import open_clip

        visual = model.visual
        size = visual.image_size
        if isinstance(size, (tuple, list)):
            if len(set(size)) != 1:
                raise ValueError(f"the CLIP branch resizes to squares; this open_clip model takes {tuple(size)} images")
            size = size[0]
        cfg = open_clip.get_model_preprocess_cfg(model)
        return cls(visual, "open_clip", visual.output_dim, size, tuple(cfg.get("mean", CLIP_MEAN)),
                   tuple(cfg.get("std", CLIP_STD)), source=source)

    @classmethod
    def from_lab(cls, encoder: nn.Module, source: str = "") -> "FrozenCLIPBranch":
        """From an image encoder trained in notebook 02: ``CLIPImageEncoder`` (a ResNet +
        projection head, trained on ImageNet-normalised pixels) or ``ViTImageEncoder`` (a
        ViT + Linear + LayerNorm, pixels scaled to [-1, 1]), at ``encoder.image_size``."""
        mean, std = (tuple(torch.tensor(v, device="cpu").tolist()) for v in encoder.normalization)   # as float32
        return cls(encoder, "lab", encoder.embed_dim, int(getattr(encoder, "image_size", 32)),
                   mean, std, source=source)


@dataclass(frozen=True)
class CLIPBranchSpec:
    """The frozen CLIP branch ``clip.model_name`` stands for in a profile, settled once
    (``clip_branch_spec``) and then built (``build_clip_branch``) or loaded (``load_clip_branch``).

    ``kind``: ``"hf"`` (a ``CLIPVisionModelWithProjection`` of ``config``), ``"open_clip"``
    (open_clip's model ``name``) or ``"lab"`` (notebook 02's image encoder saved at ``name``:
    ``encoder``, ``None`` while notebook 02 has not written the file);
    ``instead_of``: the CLIP name a quick-profile ``"lab"`` branch stands in for."""

    kind: str
    name: str
    config: Any = None
    encoder: ImageEncoderSpec | None = None
    instead_of: str | None = None


def clip_branch_spec(model_name: str, profile: str = "quick") -> CLIPBranchSpec:
    """Which frozen CLIP branch ``model_name`` means in ``profile``; reads configs and checkpoint
    headers only (no download, no weights):

    * full profile + one of OpenAI's ResNet CLIPs (``RN50`` …) → open_clip's model;
    * a notebook 02 checkpoint (``checkpoints/02_clip_image_encoder_vit.safetensors`` …,
      either recipe), any profile → the image encoder its header records;
    * a local directory (any profile), or a short name / hub id in the full profile → a
      ``CLIPVisionModelWithProjection`` of its config (a hub id not on this machine: its shape
      from its name, ``vit_shape_from_name``);
    * quick profile + short name / hub id → notebook 02's main image encoder
      (``checkpoints/02_clip_image_encoder.safetensors``).

    Raises ``ValueError`` for a name ``resolve_clip_name`` refuses (the message lists the known ones)."""
    from transformers import CLIPVisionConfig

    target = resolve_clip_name(model_name)
    if profile == "full" and is_open_clip_name(target):
        return CLIPBranchSpec("open_clip", target)
    checkpoint = lab_checkpoint_file(target)
    if checkpoint is not None:
        return _lab_branch_spec(checkpoint)
    if is_local_dir(target) or profile == "full":
        config = cached_config(CLIPVisionConfig, target)
        if config is None:
            shape = vit_shape_from_name(target, patch=32)
            config = CLIPVisionConfig(**shape, projection_dim=768 if shape["hidden_size"] > 768 else 512)
        return CLIPBranchSpec("hf", target, config=config)
    return dataclasses.replace(_lab_branch_spec(default_checkpoint_path()), instead_of=target)


def _lab_branch_spec(checkpoint: Path) -> CLIPBranchSpec:
    encoder = image_encoder_spec_from_file(checkpoint) if checkpoint.is_file() else None
    return CLIPBranchSpec("lab", str(checkpoint), encoder=encoder)


def build_clip_branch(spec: CLIPBranchSpec, device: str | torch.device | None = None) -> FrozenCLIPBranch:
    """The architecture of ``spec`` as a frozen branch, random init, on ``device`` (``on_device``:
    ``"meta"`` for shapes only). Never downloads, never loads weights, never trains.

    Raises ``FileNotFoundError`` for a notebook 02 encoder not saved yet (``spec.encoder``
    is ``None``): run notebook 02, or take the spec from ``recipe_clip_branch_spec``
    (``lab_utils.recipes.clip``), which knows the encoder notebook 02 saves there."""
    if spec.kind == "open_clip":
        model = _open_clip_random(spec.name, device=device or torch.get_default_device())
        return FrozenCLIPBranch.from_open_clip(model, source=f"open_clip {spec.name} (random init)")
    with on_device(device):
        if spec.kind == "hf":
            from transformers import CLIPVisionModelWithProjection

            return FrozenCLIPBranch.from_hf(CLIPVisionModelWithProjection(fresh_config(spec.config)), source=spec.name)
        if spec.encoder is None:
            raise FileNotFoundError(f"No CLIP image encoder at {spec.name}: notebook 02 has not saved it yet, "
                                    "so its architecture is unknown. Run notebook 02 (it saves one there), or "
                                    "use lab_utils.recipes.clip.recipe_clip_branch_spec (the encoder notebook 02 "
                                    "saves there).")
        encoder = build_image_encoder(spec.encoder)
    return FrozenCLIPBranch.from_lab(encoder, source=_lab_source(spec))


def _lab_source(spec: CLIPBranchSpec) -> str:
    return "notebook 02" if spec.instead_of else f"notebook 02 ({Path(spec.name).name})"


def load_clip_branch(model_name: str | CLIPBranchSpec, profile: str = "quick", verbose: bool = True,
                     **clip_kwargs: Any) -> FrozenCLIPBranch:
    """The frozen CLIP branch for ``clip.model_name`` (or a ``CLIPBranchSpec``) with its weights:
    OpenAI's through open_clip (``open_clip_branch``), a ViT CLIP's vision tower through
    ``load_pretrained``, or notebook 02's image encoder from ``checkpoints/`` (``clip_kwargs``:
    ``backbone`` / ``embed_dim`` it must have, see ``load_image_encoder``). Never trains: a
    notebook 02 encoder not saved yet raises ``FileNotFoundError`` (run notebook 02, or
    ``lab_utils.recipes.clip.load_or_train_clip_branch``). Offline, not cached, or open_clip
    missing: ``PretrainedUnavailable`` with instructions."""
    spec = model_name if isinstance(model_name, CLIPBranchSpec) else clip_branch_spec(model_name, profile)
    if spec.kind == "open_clip":
        return open_clip_branch(spec.name)
    if spec.kind == "hf":
        from transformers import CLIPVisionModelWithProjection

        model = load_pretrained(CLIPVisionModelWithProjection, spec.name, what="CLIP branch",
                                profile="full")               # quietly: no report of the text tower left out
        return FrozenCLIPBranch.from_hf(model, source=spec.name)
    encoder = load_image_encoder(spec.name, freeze=True, verbose=verbose, **clip_kwargs)
    if verbose and spec.instead_of:
        print(f"Quick profile: the CLIP branch is notebook 02's image encoder instead of {spec.instead_of}.")
    return FrozenCLIPBranch.from_lab(encoder, source=_lab_source(spec))


def open_clip_branch(name: str, pretrained: str | None = "openai",
                     image_size: int | None = None) -> FrozenCLIPBranch:
    """One of OpenAI's ResNet CLIPs, built by open_clip, as a frozen branch
    (``FrozenCLIPBranch.from_open_clip``: ``(B, 3, S, S)`` → ``(B, D)`` unit-length embeddings).

    Args:
        name: ``"RN50"``, ``"RN101"``, ``"RN50x4"``, ``"RN50x16"`` or ``"RN50x64"``
            (``CLIP_RESNET_NAMES``; open_clip's model names too).
        pretrained: open_clip's weight tag, ``"openai"`` for OpenAI's weights: taken from the
            local Hugging Face cache when there, downloaded otherwise (open_clip keeps them on
            the hub as ``timm/resnet50_clip.openai`` …). ``None``: open_clip's random init,
            which downloads nothing (tests, offline demos).
        image_size: random init only: another input size in pixels, a multiple of 32
            (default the model's own). Pretrained weights fix the size: their attention
            pool has one position per 32-px cell of it.

    Raises:
        ValueError: a name that is not one of OpenAI's ResNet CLIPs, or ``image_size``
            with pretrained weights.
        PretrainedUnavailable: open_clip is not installed, or the weights are not cached and
            cannot be downloaded here (HF_HUB_OFFLINE=1, no network: within seconds; or the
            download failed); the message says what to do.
    """
    if not is_open_clip_name(name):
        raise ValueError(f"{name!r} is not one of OpenAI's ResNet CLIPs ({', '.join(CLIP_RESNET_NAMES)}); "
                         "ViT CLIPs load through transformers: load_clip_branch(name).")
    if image_size is not None and pretrained is not None:
        raise ValueError(f"image_size={image_size} needs pretrained=None: {name}'s {pretrained} "
                         "weights only fit its own input size.")
    open_clip = _import_open_clip(name)
    if pretrained is None:
        return FrozenCLIPBranch.from_open_clip(_open_clip_random(name, image_size),
                                               source=f"open_clip {name} (random init)")
    model = _open_clip_pretrained(open_clip, name, pretrained)
    return FrozenCLIPBranch.from_open_clip(model, source=f"open_clip {name} ({pretrained})")


def _import_open_clip(name: str) -> Any:
    """The ``open_clip`` module, or ``PretrainedUnavailable`` saying how to install it."""
    try:
        import open_clip
    except ImportError:
        raise PretrainedUnavailable(
            f"CLIP branch: {name} is loaded through open_clip, which is not installed. Run "
            "`pip install open_clip_torch` (it is in requirements.txt), or set clip.model_name: "
            "ViT-B/32 in configs/model.yml.") from None
    return open_clip


def _open_clip_random(name: str, image_size: int | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """open_clip's ``name`` with random weights (OpenAI's QuickGELU), on ``device``. open_clip
    logs "No pretrained weights loaded" for each such model; random init is asked for here, so
    the line is kept out of the output. Raises ``PretrainedUnavailable`` without open_clip."""
    open_clip = _import_open_clip(name)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return open_clip.create_model(name, pretrained=None, force_quick_gelu=True,
                                      force_image_size=image_size, device=device)
    finally:
        logging.disable(previous)


def _open_clip_pretrained(open_clip: Any, name: str, tag: str) -> nn.Module:
    """open_clip's ``name`` with the weights of ``tag``: from the local Hugging Face cache
    (no network), else downloaded; what ``load_pretrained`` does for transformers models."""
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        raise PretrainedUnavailable(f"CLIP branch: open_clip has no {tag!r} weights for {name}; its "
                                    f"tags: {', '.join(open_clip.list_pretrained_tags_by_model(name))}.")
    # OpenAI trained its CLIPs with QuickGELU (open_clip's plain "RN50" config uses GELU).
    quick_gelu = bool(cfg.get("quick_gelu", False))
    cached = _cached_open_clip_weights(cfg)
    if cached:  # the file itself, so open_clip does not ask the hub; the tag's mean/std
        return open_clip.create_model(name, pretrained=cached, force_quick_gelu=quick_gelu,
                                      force_preprocess_cfg=cfg)
    where = cfg.get("hf_hub") or cfg.get("url")
    how = ("On Colab or any machine with internet, unset HF_HUB_OFFLINE and run again (the "
           "weights are cached after the first download); or set clip.model_name: ViT-B/32 in "
           "configs/model.yml; or use LAB_PROFILE=quick (notebook 02's encoder, no download).")
    blocked = ("HF_HUB_OFFLINE=1 forbids downloading" if hub_offline() else
               "the Hugging Face hub cannot be reached from this machine" if not hub_reachable() else None)
    if blocked:  # fail in seconds, not after open_clip's download retries
        raise PretrainedUnavailable(f"CLIP branch: {name} ({tag} weights, {where}) is not in the local "
                                    f"Hugging Face cache, and {blocked}. {how}")
    try:
        return open_clip.create_model(name, pretrained=tag, force_quick_gelu=quick_gelu)
    except (RuntimeError, OSError) as err:
        raise PretrainedUnavailable(f"CLIP branch: downloading {name}'s {tag} weights ({where}) "
                                    f"failed ({err}). {how}") from None


def _cached_open_clip_weights(cfg: Mapping) -> str | None:
    """The local Hugging Face cache's copy of an open_clip weight file (``cfg["hf_hub"]``:
    ``owner/repo/`` + a file name, or open_clip's default names), or ``None``; no network."""
    from huggingface_hub import try_to_load_from_cache
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo, filename = os.path.split(cfg.get("hf_hub") or "")
    for candidate in [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]:
        path = try_to_load_from_cache(repo, candidate) if repo else None
        if isinstance(path, str):
            return path
    return None


# --------------------------------------------------------------------------- the model
class HybridViTCLIP(nn.Module):
    """ViT (trained) + frozen CLIP image features, fused by concatenation or attention.

    Args:
        vit: a ``transformers.ViTModel`` (``None`` only for ``fusion="clip_only"``).
        clip: a ``FrozenCLIPBranch`` (``None`` only for ``fusion="vit_only"``).
        num_classes: number of output classes.
        fusion: ``"concat"`` | ``"attention"`` (the two fusions), or a single-branch baseline
            ``"vit_only"`` | ``"clip_only"`` (linear probe on the CLIP embedding).
        num_heads: heads of the attention fusion (must divide the ViT width).
        dropout: dropout of the ``"mlp"`` classifier head.
        head: ``"linear"`` (default: one linear layer on the fused features, the same for
            every variant, so that comparisons measure the features) or ``"mlp"`` (the FER
            head: LayerNorm → Dropout → Linear(d, d/2) → GELU → Dropout → Linear).
        modality_dropout: share of training images whose CLIP feature is hidden, in [0, 1)
            (fusions only; 0 = off).
        aux_weight: weight of the auxiliary ViT-only loss, ≥ 0 (fusions only; 0 = off).

    ``forward(pixel_values_vit, pixel_values_clip)`` → logits ``(B, num_classes)``; each
    branch gets its own preprocessing (``preprocess(images)`` gives both).

    The CLIP embedding has length 1, so each of its D numbers is about 1/√D, while the
    ViT's [CLS] vector leaves a LayerNorm with numbers of about 1. The fusion therefore
    rescales the CLIP embedding (a fixed map, no parameters): by √D by default, or to mean 0
    and std 1 per feature over the training images after ``standardize_clip(train_embeds)``,
    so that neither branch is drowned out by scale alone.
    """

    backbone_modules = ("vit",)  # for lab_utils.training.get_optimizer_and_scheduler

    def __init__(self, vit: nn.Module | None, clip: FrozenCLIPBranch | None, num_classes: int,
                 fusion: str = "concat", num_heads: int = 4, dropout: float = 0.1, head: str = "linear",
                 modality_dropout: float = 0.0, aux_weight: float = 0.0):
        super().__init__()
        allowed = FUSION_METHODS + BASELINES
        if fusion not in allowed:
            raise ValueError(f"fusion={fusion!r} is not a fusion method. Allowed: "
                             f"{', '.join(FUSION_METHODS)} (and the baselines {', '.join(BASELINES)}).")
        if fusion != "clip_only" and vit is None:
            raise ValueError(f"fusion={fusion!r} needs a ViT branch (vit=None given).")
        if fusion != "vit_only" and clip is None:
            raise ValueError(f"fusion={fusion!r} needs a CLIP branch (clip=None given).")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout={modality_dropout} must be in [0, 1): the share of training "
                             "images whose CLIP feature is hidden (0 = off; 0.3 is a usual value).")
        if aux_weight < 0:
            raise ValueError(f"aux_weight={aux_weight} must be ≥ 0 (0 = no auxiliary ViT loss; 0.5 is a usual value).")
        if (modality_dropout or aux_weight) and fusion not in FUSION_METHODS:
            raise ValueError(f"modality_dropout / aux_weight fight modality imbalance in a fusion; fusion={fusion!r} "
                             f"has one branch. Use them with {' or '.join(map(repr, FUSION_METHODS))}.")
        self.fusion, self.num_classes = fusion, int(num_classes)
        self.modality_dropout, self.aux_weight = float(modality_dropout), float(aux_weight)
        self.vit = vit if fusion != "clip_only" else None
        self.clip = clip if fusion != "vit_only" else None
        self.vit_dim = self.vit.config.hidden_size if self.vit is not None else 0
        self.clip_dim = self.clip.embed_dim if self.clip is not None else 0
        # CLIP feature standardisation (x - shift) * scale: by default x · √D (see above);
        # standardize_clip() sets it from training embeddings (mean 0, std 1 per feature).
        self.register_buffer("clip_shift", torch.zeros(self.clip_dim))
        self.register_buffer("clip_scale", torch.full((self.clip_dim,), math.sqrt(self.clip_dim) if self.clip_dim else 1.0))
        self.last_attention: torch.Tensor | None = None

        if fusion == "concat":
            self.feature_dim = self.vit_dim + self.clip_dim
        elif fusion == "attention":
            if self.vit_dim % num_heads:
                raise ValueError(f"num_heads={num_heads} must divide the ViT width {self.vit_dim}.")
            self.clip_proj = nn.Linear(self.clip_dim, self.vit_dim)      # CLIP → ViT width
            self.attention = nn.MultiheadAttention(self.vit_dim, num_heads, batch_first=True)
            self.feature_dim = self.vit_dim
        elif fusion == "vit_only":
            self.feature_dim = self.vit_dim
        else:  # clip_only: a linear probe
            self.feature_dim = self.clip_dim
        if head not in ("linear", "mlp"):
            raise ValueError(f"head={head!r} is not a classifier head. Allowed: 'linear', 'mlp'.")
        # The same kind of head for every variant, so comparisons measure the features. The
        # CLIP-only baseline is always a linear probe.
        self.classifier = (nn.Linear(self.feature_dim, num_classes)
                           if head == "linear" or fusion == "clip_only"
                           else make_fer_head(self.feature_dim, num_classes, dropout))
        # the auxiliary ViT-only classifier (training signal only; predictions use `classifier`)
        self.aux_head = nn.Linear(self.vit_dim, num_classes) if aux_weight else None

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: Mapping, num_classes: int, fusion: str | None = None,
                    profile: str = "quick", clip: FrozenCLIPBranch | None = None,
                    vit_overrides: Mapping | None = None, verbose: bool = True,
                    **kwargs: Any) -> "HybridViTCLIP":
        """Build the model that ``configs/model.yml`` describes.

        Args:
            config: ``load_config("configs/model.yml")`` (uses ``vit.model_name``,
                ``clip.model_name``, ``fusion.method``, ``fusion.modality_dropout``,
                ``fusion.aux_weight``).
            num_classes: number of classes (7 for FER).
            fusion: override ``fusion.method`` (e.g. ``"vit_only"`` for a baseline).
            profile: the notebook's settled profile (``lab.profile``): ``"quick"`` / ``"full"``.
            clip: an already loaded ``FrozenCLIPBranch`` to share between models (it is
                frozen, so sharing is safe and saves loading it again).
            vit_overrides: changes to the quick profile's small ViT config
                (``quick_vit_config``, which starts from std 0.1 so the branch learns in seconds).
        """
        spec = hybrid_spec(config, num_classes, fusion, profile, vit_overrides, with_clip=clip is None, **kwargs)
        vit = None
        if spec.vit is not None:
            vit = load_vit(spec.vit, what="ViT branch", verbose=verbose)
            vit.pooler = None  # only the [CLS] vector is used: no unused (untrained) pooler
        if spec.clip is not None:
            clip = load_clip_branch(spec.clip, verbose=verbose)
        return cls(vit, clip, num_classes, fusion=spec.fusion, **dict(spec.options))

    # ---------------------------------------------------------------- preprocessing
    @property
    def vit_image_size(self) -> int:
        return int(self.vit.config.image_size) if self.vit is not None else 0

    def preprocess(self, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(B, 3, h, w)`` images (bytes or [0, 1] floats) → ``(pixel_values_vit, pixel_values_clip)``:
        each resized to its branch's input size and normalised with its branch's mean/std
        (ViT: 0.5/0.5; CLIP: OpenAI's statistics for a pretrained CLIP, ImageNet's for
        notebook 02's ResNet encoder). ``None`` for a missing branch."""
        clip = self.clip.preprocess(images) if self.clip is not None else None
        return self.preprocess_vit(images), clip

    def preprocess_vit(self, images: torch.Tensor) -> torch.Tensor | None:
        """The ViT branch's half of ``preprocess``: ``(B, 3, S, S)`` normalised to [-1, 1]."""
        return preprocess(images, self.vit_image_size, VIT_MEAN, VIT_STD) if self.vit is not None else None

    @torch.no_grad()
    def encode_clip(self, images: torch.Tensor, batch_size: int = 256, flip: bool = False) -> torch.Tensor:
        """Frozen CLIP embeddings ``(N, D)`` (unit length, on the CPU) of images ``(N, 3, h, w)``
        (bytes or [0, 1] floats) — preprocessed batch by batch (mirrored first with ``flip=True``) on the
        CLIP branch's device. Compute them once, then pass them as ``clip_embeds`` to ``forward``."""
        device = next(self.clip.parameters()).device
        out = []
        for i in range(0, len(images), batch_size):
            batch = images[i:i + batch_size].to(device)
            out.append(self.clip(self.clip.preprocess(batch.flip(-1) if flip else batch)).cpu())
        return torch.cat(out)

    # ---------------------------------------------------------------- forward
    def features(self, pixel_values_vit: torch.Tensor | None = None,
                 pixel_values_clip: torch.Tensor | None = None, *,
                 clip_embeds: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each branch's feature and the fused one: ``{"vit": (B, H), "clip": (B, D),
        "fused": (B, feature_dim)}`` (missing branches left out)."""
        out: dict[str, torch.Tensor] = {}
        if self.vit is not None:
            if pixel_values_vit is None:
                raise ValueError(f"fusion={self.fusion!r} needs pixel_values_vit")
            out["vit"] = pool_tokens(self.vit(pixel_values=pixel_values_vit).last_hidden_state)  # [CLS] (B, H)
        if self.clip is not None:
            if clip_embeds is None:
                if pixel_values_clip is None:
                    raise ValueError(f"fusion={self.fusion!r} needs pixel_values_clip (or clip_embeds)")
                clip_embeds = self.clip(pixel_values_clip)
            elif clip_embeds.shape[-1] != self.clip_dim:
                raise ValueError(f"clip_embeds has {clip_embeds.shape[-1]} dims; this CLIP branch gives {self.clip_dim}")
            out["clip"] = clip_embeds.detach()                                            # (B, D)
        clip_feat = (out["clip"] - self.clip_shift) * self.clip_scale if "clip" in out else None
        if self.training and self.modality_dropout and clip_feat is not None:
            hidden = torch.rand(len(clip_feat), 1, device=clip_feat.device) < self.modality_dropout   # (B, 1)
            clip_feat = clip_feat.masked_fill(hidden, 0.0)        # 0 = the training mean once standardised
        if self.fusion == "concat":
            out["fused"] = torch.cat([out["vit"], clip_feat], dim=-1)                      # (B, H + D)
        elif self.fusion == "attention":
            tokens = torch.stack([out["vit"], self.clip_proj(clip_feat)], dim=1)           # (B, 2, H)
            mixed, weights = self.attention(tokens, tokens, tokens, need_weights=True,
                                            average_attn_weights=True)                     # (B, 2, H), (B, 2, 2)
            self.last_attention = weights.detach()
            out["fused"] = mixed.mean(dim=1)                                               # (B, H)
        elif self.fusion == "vit_only":
            out["fused"] = out["vit"]
        else:
            out["fused"] = clip_feat
        return out

    def forward(self, pixel_values_vit: torch.Tensor | None = None,
                pixel_values_clip: torch.Tensor | None = None, *,
                clip_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, num_classes)``. Give ``pixel_values_clip`` or the cached
        ``clip_embeds`` ``(B, D)`` from ``encode_clip``."""
        return self.classifier(self.features(pixel_values_vit, pixel_values_clip,
                                             clip_embeds=clip_embeds)["fused"])

    @torch.no_grad()
    def standardize_clip(self, train_embeds: torch.Tensor) -> "HybridViTCLIP":
        """Fix the CLIP feature standardisation from training embeddings ``(N, D)``: each of
        the D numbers is shifted and scaled to mean 0, std 1 over the training images (the
        usual linear-probe recipe; it does not depend on how spread out a given CLIP
        encoder's embeddings are). A fixed affine map, not trained; stored in the state dict."""
        if self.clip is None:
            raise RuntimeError("standardize_clip() needs a CLIP branch")
        if train_embeds.dim() != 2 or train_embeds.shape[1] != self.clip_dim or len(train_embeds) < 2:
            raise ValueError(f"expected training embeddings (N ≥ 2, {self.clip_dim}), got {tuple(train_embeds.shape)}")
        emb = train_embeds.float().to(self.clip_shift.device)
        self.clip_shift.copy_(emb.mean(0))
        self.clip_scale.copy_(1.0 / (emb.std(0) + 1e-6))
        return self

    def branch_weights(self) -> torch.Tensor:
        """Attention fusion only: after a forward pass, ``(B, 2)`` = how much attention
        (averaged over heads and over the two query tokens) goes to the ViT token
        (column 0) and to the CLIP token (column 1); each row sums to 1."""
        if self.fusion != "attention" or self.last_attention is None:
            raise RuntimeError("branch_weights() needs fusion='attention' and a forward pass first.")
        return self.last_attention.mean(dim=1)

    # ---------------------------------------------------------------- summaries
    def parameter_summary(self) -> pd.DataFrame:
        """Trainable / frozen parameter counts per component (vit, clip, fusion, classifier)
        and in total; the CLIP row shows 0 trainable."""
        fusion = nn.ModuleList([self.clip_proj, self.attention]) if self.fusion == "attention" else None
        parts = {"ViT branch": self.vit, "CLIP branch (frozen)": self.clip,
                 "fusion (projection + attention)": fusion, "classifier": self.classifier,
                 "auxiliary ViT classifier (training only)": self.aux_head}
        return parameter_table(parts, self)

    def extra_repr(self) -> str:
        return f"fusion={self.fusion!r}, vit_dim={self.vit_dim}, clip_dim={self.clip_dim}, classes={self.num_classes}"


@dataclass(frozen=True)
class HybridSpec:
    """Notebook 03's model, settled once (``hybrid_spec``): its ViT branch (``None`` for
    ``clip_only``), its CLIP branch (``None`` for ``vit_only``, or when a loaded branch is shared),
    the number of classes, the fusion and the other ``HybridViTCLIP`` arguments (``options``)."""

    vit: ViTSpec | None
    clip: CLIPBranchSpec | None
    num_classes: int
    fusion: str = "concat"
    options: tuple[tuple[str, Any], ...] = ()


def hybrid_spec(config: Mapping, num_classes: int, fusion: str | None = None, profile: str = "quick",
                vit_overrides: Mapping | None = None, with_clip: bool = True, **kwargs: Any) -> HybridSpec:
    """The model ``HybridViTCLIP.from_config`` makes from ``configs/model.yml`` (same arguments;
    ``with_clip=False`` leaves the CLIP branch out, for a branch that is passed in already)."""
    fusion = fusion or config["fusion"]["method"]
    if fusion in FUSION_METHODS:    # the remedies the config asks for (fusions only)
        for key in ("modality_dropout", "aux_weight"):
            kwargs.setdefault(key, config["fusion"].get(key, 0.0))
    vit = (vit_spec(config["vit"]["model_name"], profile, quick_vit_config(**dict(vit_overrides or {})))
           if fusion != "clip_only" else None)
    clip = clip_branch_spec(config["clip"]["model_name"], profile) if with_clip and fusion != "vit_only" else None
    return HybridSpec(vit, clip, int(num_classes), fusion, tuple(sorted(kwargs.items())))


def build_hybrid(spec: HybridSpec, device: str | torch.device | None = None) -> HybridViTCLIP:
    """The architecture of ``spec``, random init, on ``device`` (``on_device``: ``"meta"`` for
    shapes only): the ViT without its pooler and the CLIP branch (``build_clip_branch``)."""
    with on_device(device):
        vit = build_vit(spec.vit, add_pooling_layer=False) if spec.vit is not None else None
        clip = build_clip_branch(spec.clip) if spec.clip is not None else None
        return HybridViTCLIP(vit, clip, spec.num_classes, fusion=spec.fusion, **dict(spec.options))

