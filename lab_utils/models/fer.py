"""ViT fine-tuning for facial expressions, and RGB + thermal fusion (notebooks 04-05).

* ``ViTForFER`` — a ``transformers.ViTModel`` backbone, one feature per image ([CLS], or the
  mean of the patch tokens), and the FER head::

      LayerNorm(h) → Dropout(p) → Linear(h, h/2) → GELU → Dropout(p/2) → Linear(h/2, C)

  (768 → 384 → 7 for ViT-B/16). ``freeze_backbone=True`` trains the head only;
  ``unfreeze_backbone(k)`` opens the top ``k`` encoder layers (progressive unfreezing) and
  ``unfreeze_backbone()`` all of them.
* ``EarlyFusionViT`` — RGB and thermal enter *one* ViT: ``concat`` stacks them into a
  6-channel image with a 6-channel patch embedding built from the pretrained 3-channel one
  (both halves = W/2, so a thermal image equal to its RGB image reproduces the pretrained
  stem exactly); ``add`` sums the two images into the 3-channel embedding.
* ``LateFusionViT`` — two ViT encoders, one per modality. ``fusion_layer="feature"``: their
  features are combined (``concat``, or ``attention``: a learned query weighs the two
  modality tokens per face and scales each in its own slot; the weights are kept for plots)
  before one head. ``fusion_layer="prediction"``: each encoder has its own head and the logits are
  averaged (``concat``) or mixed with learned modality weights (``attention``).
* ``create_multimodal_vit_model`` — builds any of the above from ``mode`` /
  ``fusion_strategy`` / ``fusion_type`` / ``fusion_layer`` (``VALID_COMBINATIONS``).

Inputs are pixels in [0, 1], as for every model of the lab: each model normalises them the
way the ViT's image processor does, ``(x − 0.5) / 0.5`` (``FERModel.preprocess``), RGB and
thermal alike.

Backbones come through ``load_pretrained``: a hub id (full profile), a local
``save_pretrained`` folder (always), or the quick profile's small ViT (random init). Each
model lists its pretrained children in ``backbone_modules``, so
``lab_utils.training.get_optimizer_and_scheduler`` gives them 0.1 × the head's learning rate.

Models only: the notebooks' data plumbing is in ``lab_utils.data.fer_data``, their training
recipes (fine-tuning strategies, steps, cached features, measurements) in ``lab_utils.recipes.fer``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch
from torch import nn

from ..data.transforms import NORMALIZATION, normalize
from .pretrained import DEFAULT_VIT, ViTSpec, load_vit, on_device, quiet_transformers, vit_spec
from .vit import POOLINGS, encoder_layers, pool_tokens

MODES = ("rgb", "thermal", "combined")
EARLY_TYPES = ("concat", "add")
LATE_TYPES = ("concat", "attention")
LATE_LAYERS = ("feature", "prediction")

#: Every model ``create_multimodal_vit_model`` can build: (mode, strategy, type, layer) → what it is.
VALID_COMBINATIONS: dict[tuple, str] = {
    ("rgb", None, None, None): "ViTForFER on the RGB image",
    ("thermal", None, None, None): "ViTForFER on the thermal image",
    ("combined", "early", "concat", None): "one ViT, 6-channel input (RGB ‖ thermal)",
    ("combined", "early", "add", None): "one ViT, input = RGB + thermal",
    ("combined", "late", "concat", "feature"): "two ViTs, [f_rgb ; f_thermal] → one head",
    ("combined", "late", "attention", "feature"): "two ViTs, attention-weighted [f_rgb ; f_thermal] → one head",
    ("combined", "late", "concat", "prediction"): "two ViTs with their own heads, logits averaged",
    ("combined", "late", "attention", "prediction"): "two ViTs with their own heads, learned logit weights",
}


def _combinations_text() -> str:
    lines = []
    for (mode, strategy, ftype, layer), what in VALID_COMBINATIONS.items():
        args = [f"mode={mode!r}"] + ([f"fusion_strategy={strategy!r}", f"fusion_type={ftype!r}"] if strategy else [])
        args += [f"fusion_layer={layer!r}"] if layer else []
        lines.append(f"  {', '.join(args)}  → {what}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- building blocks
def _check_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer ≥ 2 (a classifier needs at least two classes), "
                         f"got {num_classes!r}. FER2013 and the synthetic faces have 7.")


def _check_dropout(p: float) -> None:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {p!r}; the FER head uses 0.1.")


def _check_choice(value: Any, allowed: Sequence, what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what}={value!r} is not allowed. Allowed: {', '.join(map(repr, allowed))}.")


def make_fer_head(hidden_size: int, num_classes: int = 7, dropout_rate: float = 0.1) -> nn.Sequential:
    """The FER head: ``(B, h) → (B, num_classes)``.

    LayerNorm(h) → Dropout(p) → Linear(h, h // 2) → GELU → Dropout(p / 2) → Linear(h // 2, C).
    """
    _check_classes(num_classes)
    _check_dropout(dropout_rate)
    return nn.Sequential(
        nn.LayerNorm(hidden_size),                      # normalise the backbone's feature
        nn.Dropout(dropout_rate),
        nn.Linear(hidden_size, hidden_size // 2),       # hidden layer (768 → 384 for ViT-B)
        nn.GELU(),
        nn.Dropout(dropout_rate / 2),
        nn.Linear(hidden_size // 2, num_classes),       # one logit per expression
    )


def load_vit_backbone(model_name: str = DEFAULT_VIT, *, quick_config: Any = None,
                      profile: str = "quick", verbose: bool = True, what: str = "ViT backbone",
                      backbone: ViTSpec | None = None) -> nn.Module:
    """A ``transformers.ViTModel`` without its pooler (we pool ourselves).

    ``model_name``: hub id (full profile; offline-safe, see ``load_pretrained``) or a local
    ``save_pretrained`` folder; in the quick profile a hub id gives ``quick_config``
    (default ``quick_vit_config()``: 32 px, patch 8, hidden 64, 4 layers), random init.
    ``backbone``: the backbone settled beforehand (``vit_spec``), used instead of
    ``model_name``, ``quick_config`` and ``profile``.
    """
    with quiet_transformers():              # no load report / progress bar for the unused pooler
        vit = load_vit(backbone or vit_spec(model_name, profile, quick_config), what=what, verbose=verbose)
    vit.pooler = None  # unused: the [CLS] / mean feature goes straight into our head
    return vit


def vit_tokens(vit: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) → (B, 1 + N, h) token states of a ``ViTModel``, at any ``S`` that is a
    multiple of the patch size: for ``S`` ≠ ``config.image_size`` the pretrained position
    embeddings (a 14 × 14 grid for 224 px) are interpolated to the new grid (bicubic,
    ``interpolate_pos_encoding=True``; transformers 4.x and 5.x), so ViT-B/16 can fine-tune on
    112-px faces (7 × 7 patches, 4× fewer FLOPs than 224 px)."""
    size = pixel_values.shape[-1]
    patch = vit.config.patch_size
    if size % patch or pixel_values.shape[-2] != size:
        raise ValueError(f"images of {pixel_values.shape[-2]}×{size} px: this ViT needs square images whose side "
                         f"is a multiple of its {patch}-px patches (e.g. {patch * max(1, round(size / patch))} px). "
                         "Set data.image_size in the config to such a size.")
    return vit(pixel_values=pixel_values,
               interpolate_pos_encoding=size != vit.config.image_size).last_hidden_state


def _enable_checkpointing(vit: nn.Module) -> None:
    kwargs = {"use_reentrant": False}
    if hasattr(vit, "activation_checkpointing_enable"):      # transformers ≥ 5
        vit.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        vit.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _disable_checkpointing(vit: nn.Module) -> None:
    if hasattr(vit, "activation_checkpointing_disable"):
        vit.activation_checkpointing_disable()
    else:
        vit.gradient_checkpointing_disable()


class FERModel(nn.Module):
    """What every FER model of notebooks 04-05 shares (``ViTForFER``, ``EarlyFusionViT``,
    ``LateFusionViT``): its input convention, freezing, progressive unfreezing, gradient
    checkpointing."""

    backbone_modules: tuple[str, ...] = ("vit",)

    def __init__(self, num_classes: int, dropout_rate: float, pooling: str):
        super().__init__()
        _check_classes(num_classes)
        _check_dropout(dropout_rate)
        _check_choice(pooling, POOLINGS, "pooling")
        self.num_classes, self.pooling = num_classes, pooling

    @staticmethod
    def preprocess(pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] ``(B, C, S, S)`` → the ViT's input: ``(x − 0.5) / 0.5``, in [-1, 1]
        (``NORMALIZATION["vit"]``, what ViT-B/16's image processor does), for RGB and thermal."""
        return normalize(pixels, *NORMALIZATION["vit"])

    def _backbones(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.backbone_modules]

    @property
    def num_layers(self) -> int:
        """Transformer blocks per backbone."""
        return len(encoder_layers(self._backbones()[0]))

    def freeze(self) -> None:
        """Freeze every backbone parameter (head / fusion layers stay trainable)."""
        for vit in self._backbones():
            vit.requires_grad_(False)

    def unfreeze_backbone(self, num_layers: int | None = None) -> None:
        """Make backbone parameters trainable again.

        ``num_layers=None``: all of them (embeddings included). ``num_layers=k``: only the
        top ``k`` encoder blocks and the final LayerNorm (progressive unfreezing). After
        this, build the optimizer again (``get_optimizer_and_scheduler``): an optimizer only
        updates the parameters it was given.
        """
        total = self.num_layers
        if num_layers is not None:
            if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= total:
                raise ValueError(f"unfreeze_backbone(num_layers={num_layers!r}): this backbone has {total} "
                                 f"encoder layers, so num_layers must be between 1 and {total}, or None "
                                 "to unfreeze everything.")
        for vit in self._backbones():
            if num_layers is None:
                vit.requires_grad_(True)
                continue
            for block in list(encoder_layers(vit))[total - num_layers:]:
                block.requires_grad_(True)
            vit.layernorm.requires_grad_(True)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each encoder block's activations in the backward pass instead of keeping
        them: less memory per step, about one extra forward pass of compute."""
        for vit in self._backbones():
            _enable_checkpointing(vit)

    def gradient_checkpointing_disable(self) -> None:
        for vit in self._backbones():
            _disable_checkpointing(vit)

    @property
    def is_gradient_checkpointing(self) -> bool:
        flag = "is_activation_checkpointing"   # transformers ≥ 5; "is_gradient_checkpointing" before
        return any(getattr(v, flag if hasattr(v, flag) else "is_gradient_checkpointing", False)
                   for v in self._backbones())

    @property
    def image_size(self) -> int:
        """The size the backbone was pretrained at (``config.image_size``); other multiples of
        the patch size work too (``vit_tokens`` interpolates the position embeddings)."""
        return int(self._backbones()[0].config.image_size)


# --------------------------------------------------------------------------- single modality
class ViTForFER(FERModel):
    """A pretrained ViT with the FER head (one feature per image → the expression classifier).

    ``forward(pixel_values (B, 3, S, S) in [0, 1]) → logits (B, num_classes)``; ``S``: the backbone's
    ``config.image_size`` (224 for ViT-B/16, 32 in the quick profile) or any other multiple of
    its patch size (the position embeddings are interpolated, see ``vit_tokens``).

    Args:
        model_name: hub id or local ``save_pretrained`` folder of a ``ViTModel``.
        num_classes: number of expressions (≥ 2).
        freeze_backbone: ``True`` trains the head only (classifier-only fine-tuning).
        dropout_rate: ``p`` of the head (the second dropout uses ``p / 2``).
        pooling: ``"cls"`` (the default: the [CLS] token) or ``"mean"`` (mean of the patch tokens,
            which small ViTs trained from scratch learn faster with).
        gradient_checkpointing: trade compute for activation memory.
        quick_config, profile, verbose: passed to ``load_vit_backbone``.
    """

    backbone_modules = ("vit",)

    def __init__(self, model_name: str = DEFAULT_VIT, num_classes: int = 7,
                 freeze_backbone: bool = False, dropout_rate: float = 0.1, *, pooling: str = "cls",
                 gradient_checkpointing: bool = False, quick_config: Any = None,
                 profile: str = "quick", verbose: bool = True, backbone: ViTSpec | None = None):
        super().__init__(num_classes, dropout_rate, pooling)
        self.vit = load_vit_backbone(model_name, quick_config=quick_config, profile=profile, verbose=verbose,
                                     backbone=backbone)
        self.hidden_size = self.vit.config.hidden_size
        self.classifier = make_fer_head(self.hidden_size, num_classes, dropout_rate)
        if freeze_backbone:
            self.freeze()
        if gradient_checkpointing:
            self.gradient_checkpointing_enable()

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) pixels in [0, 1] → (B, h) pooled backbone feature."""
        return pool_tokens(vit_tokens(self.vit, self.preprocess(pixel_values)), self.pooling)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(pixel_values))


# --------------------------------------------------------------------------- fusion
def _check_pair(rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
    """Thermal with 1 channel is repeated to 3; otherwise both batches must have one shape."""
    if thermal.dim() == 4 and thermal.shape[1] == 1 and rgb.dim() == 4 and rgb.shape[1] == 3:
        thermal = thermal.expand(-1, 3, -1, -1)
    if rgb.shape != thermal.shape:
        raise ValueError(f"rgb and thermal batches must have the same shape (B, 3, S, S), got rgb "
                         f"{tuple(rgb.shape)} and thermal {tuple(thermal.shape)}. Resize both to the "
                         "model's image size and pair them item by item (a 1-channel thermal map is "
                         "repeated to 3 channels automatically).")
    return thermal


def six_channel_patch_embedding(conv: nn.Conv2d) -> nn.Conv2d:
    """A 6-channel copy of a 3-channel patch-embedding convolution, both halves = W / 2.

    For an input ``[x ; x]`` it gives ``W/2·x + W/2·x + b = W·x + b``: exactly the pretrained
    stem's output, so fine-tuning starts from the pretrained model. (Copying W into both
    halves would double every patch embedding.)
    """
    new = nn.Conv2d(2 * conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    conv.padding, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(torch.cat([conv.weight, conv.weight], dim=1) / 2)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new.to(conv.weight.device, conv.weight.dtype)


class EarlyFusionViT(FERModel):
    """One ViT sees both modalities from the first layer on.

    ``forward(rgb (B, 3, S, S), thermal (B, 3 or 1, S, S)) → logits (B, num_classes)``, pixels in [0, 1].

    * ``fusion_type="concat"``: ``[rgb ; thermal]`` (B, 6, S, S) through a 6-channel patch
      embedding initialised from the pretrained one (``six_channel_patch_embedding``);
    * ``fusion_type="add"``: ``rgb + thermal`` (B, 3, S, S) through the pretrained embedding.
    """

    backbone_modules = ("vit",)

    def __init__(self, model_name: str = DEFAULT_VIT, num_classes: int = 7, fusion_type: str = "concat",
                 freeze_backbone: bool = False, dropout_rate: float = 0.1, *, pooling: str = "cls",
                 gradient_checkpointing: bool = False, quick_config: Any = None,
                 profile: str = "quick", verbose: bool = True, backbone: ViTSpec | None = None):
        super().__init__(num_classes, dropout_rate, pooling)
        if fusion_type not in EARLY_TYPES:
            raise ValueError(f"EarlyFusionViT: fusion_type={fusion_type!r} is not an early fusion. Allowed: "
                             f"{', '.join(map(repr, EARLY_TYPES))}. Valid combinations:\n{_combinations_text()}")
        self.fusion_type = fusion_type
        self.vit = load_vit_backbone(model_name, quick_config=quick_config, profile=profile, verbose=verbose,
                                     backbone=backbone)
        if fusion_type == "concat":
            patches = self.vit.embeddings.patch_embeddings
            patches.projection = six_channel_patch_embedding(patches.projection)
            patches.num_channels = 6
            self.vit.config.num_channels = 6
        self.hidden_size = self.vit.config.hidden_size
        self.classifier = make_fer_head(self.hidden_size, num_classes, dropout_rate)
        if freeze_backbone:
            self.freeze()
        if gradient_checkpointing:
            self.gradient_checkpointing_enable()

    def fuse_inputs(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        """The ViT's input, each modality normalised (``preprocess``): (B, 6, S, S) for concat,
        (B, 3, S, S) for add."""
        thermal = self.preprocess(_check_pair(rgb, thermal))
        rgb = self.preprocess(rgb)
        return torch.cat([rgb, thermal], dim=1) if self.fusion_type == "concat" else rgb + thermal

    def features(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        out = vit_tokens(self.vit, self.fuse_inputs(rgb, thermal))
        return pool_tokens(out, self.pooling)

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(rgb, thermal))


class ModalityAttention(nn.Module):
    """Attention over modality tokens that keeps each modality in its own slot.

    ``forward(tokens (B, M, h)) → (B, M·h)``. Per head ``k`` (``h/heads`` numbers each), a
    learned query scores every modality token — ``q_k · K(token + modality embedding) / √d``
    — and a softmax over the ``M`` modalities turns the scores into weights ``w (B, heads, M)``.
    Each token's head-``k`` slice is scaled by ``M · w[:, k, m]`` and the scaled tokens are
    concatenated::

        [f_rgb ; f_thermal] (B, 2, h) ─ K ─ scores (B, heads, 2) ─ softmax ─ w
        out = [2·w_rgb ⊙ f_rgb ; 2·w_thermal ⊙ f_thermal]                    (B, 2h)

    The query starts near 0, so every weight starts at 1/M and the output starts as the plain
    concatenation (late concat); training moves the weights face by face. The usual attention
    *pooling* — the weighted *sum* of the tokens, ``(B, h)`` — puts RGB and thermal numbers into
    the same ``h`` slots, so the head cannot tell which modality a number came from, and each
    encoder gets only its weight's share of the gradient; on the lab's data it trailed even the
    single modalities (``benchmarks/README.md``).

    ``last_attention`` (B, M): the attention weights of the last forward pass, averaged over
    the heads; each row sums to 1.
    """

    def __init__(self, hidden_size: int, num_heads: int = 4, num_modalities: int = 2):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden size {hidden_size} is not divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        self.query = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.key = nn.Linear(hidden_size, hidden_size)
        self.modality_embed = nn.Parameter(torch.zeros(1, num_modalities, hidden_size))   # which token is which
        nn.init.trunc_normal_(self.query, std=0.02)
        nn.init.trunc_normal_(self.modality_embed, std=0.02)
        self.last_attention: torch.Tensor | None = None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, M, h = tokens.shape
        keys = self.key(tokens + self.modality_embed[:, :M]).view(B, M, self.num_heads, self.head_dim)
        scores = torch.einsum("bmkd,kd->bkm", keys, self.query) / self.head_dim ** 0.5   # (B, heads, M)
        weights = scores.softmax(dim=-1)                                                 # (B, heads, M)
        self.last_attention = weights.mean(dim=1).detach()                               # (B, M)
        scale = (M * weights).transpose(1, 2).repeat_interleave(self.head_dim, dim=2)   # (B, M, h)
        return (tokens * scale).flatten(1)                                               # (B, M·h)


class LateFusionViT(FERModel):
    """Two ViT encoders, one per modality, fused after encoding.

    ``forward(rgb (B, 3, S, S), thermal (B, 3 or 1, S, S)) → logits (B, num_classes)``, pixels in [0, 1].

    * ``fusion_layer="feature"``: ``concat`` → ``[f_rgb ; f_th]`` (B, 2h) → head;
      ``attention`` → ``ModalityAttention``: per-face weights over the two features scale
      each one in its own slot, (B, 2, h) → (B, 2h) → head.
    * ``fusion_layer="prediction"``: one head per encoder; ``concat`` averages the two
      logit vectors, ``attention`` mixes them with learned weights ``softmax(w)`` (2,).

    ``branch_weights()`` → (B, 2) weights [RGB, thermal] of the last forward pass
    (attention fusion), each row summing to 1.

    ``aux_weight=λ > 0`` (feature fusion) adds one linear classifier per encoder,
    ``aux_heads["rgb"]`` and ``aux_heads["thermal"]`` (h → C), used in training only:
    ``forward_with_aux`` returns their logits beside the fused ones and ``fer_step`` adds
    ``λ ·`` the mean of their cross-entropies to the loss. Each encoder then gets a gradient
    of its own, as if it trained alone, however well the other modality already fits the
    training set — the remedy for modality imbalance that notebook 03 measures. Predictions
    come from the fused head only.
    """

    backbone_modules = ("rgb_vit", "thermal_vit")

    def __init__(self, model_name: str = DEFAULT_VIT, num_classes: int = 7, fusion_type: str = "concat",
                 fusion_layer: str = "feature", freeze_backbone: bool = False, dropout_rate: float = 0.1, *,
                 pooling: str = "cls", num_heads: int = 4, thermal_model_name: str | None = None,
                 gradient_checkpointing: bool = False, aux_weight: float = 0.0, quick_config: Any = None,
                 profile: str = "quick", verbose: bool = True, backbone: ViTSpec | None = None):
        super().__init__(num_classes, dropout_rate, pooling)
        if aux_weight < 0 or (aux_weight and fusion_layer != "feature"):
            raise ValueError(f"aux_weight={aux_weight!r}: the per-encoder auxiliary losses take a weight ≥ 0 "
                             "(0 = off, 0.5 a usual value) and apply to feature fusion only (with "
                             "fusion_layer='prediction' each encoder already has its own head).")
        if fusion_type not in LATE_TYPES or fusion_layer not in LATE_LAYERS:
            raise ValueError(f"LateFusionViT: fusion_type={fusion_type!r}, fusion_layer={fusion_layer!r} is not a "
                             f"late fusion. fusion_type: {', '.join(map(repr, LATE_TYPES))}; fusion_layer: "
                             f"{', '.join(map(repr, LATE_LAYERS))}. Valid combinations:\n{_combinations_text()}")
        self.fusion_type, self.fusion_layer = fusion_type, fusion_layer
        self.rgb_vit = load_vit_backbone(model_name, quick_config=quick_config, profile=profile,
                                         verbose=verbose, what="RGB ViT encoder", backbone=backbone)
        self.thermal_vit = load_vit_backbone(thermal_model_name or model_name, quick_config=quick_config,
                                             profile=profile, verbose=False, what="thermal ViT encoder",
                                             backbone=None if thermal_model_name else backbone)
        h = self.hidden_size = self.rgb_vit.config.hidden_size
        if self.thermal_vit.config.hidden_size != h:
            raise ValueError(f"the two encoders must have the same hidden size, got {h} (RGB) and "
                             f"{self.thermal_vit.config.hidden_size} (thermal)")
        if fusion_layer == "feature":
            self.fusion = ModalityAttention(h, num_heads) if fusion_type == "attention" else nn.Identity()
            self.classifier = make_fer_head(2 * h, num_classes, dropout_rate)
            self.aux_weight = float(aux_weight)
            self.aux_heads = nn.ModuleDict({"rgb": nn.Linear(h, num_classes),          # training signal only
                                            "thermal": nn.Linear(h, num_classes)}) if aux_weight else None
        else:
            self.rgb_head = make_fer_head(h, num_classes, dropout_rate)
            self.thermal_head = make_fer_head(h, num_classes, dropout_rate)
            if fusion_type == "attention":
                self.logit_weights = nn.Parameter(torch.zeros(2))   # softmax → equal weights at start
        self._last_weights: torch.Tensor | None = None
        if freeze_backbone:
            self.freeze()
        if gradient_checkpointing:
            self.gradient_checkpointing_enable()

    def encode(self, rgb: torch.Tensor, thermal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, h) features of each encoder."""
        thermal = _check_pair(rgb, thermal)
        f_rgb = pool_tokens(vit_tokens(self.rgb_vit, self.preprocess(rgb)), self.pooling)
        f_th = pool_tokens(vit_tokens(self.thermal_vit, self.preprocess(thermal)), self.pooling)
        return f_rgb, f_th

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        return self._fused_logits(*self.encode(rgb, thermal))

    def forward_with_aux(self, rgb: torch.Tensor, thermal: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(logits (B, C), {"rgb": (B, C), "thermal": (B, C)})``: the fused logits and each
        encoder's auxiliary logits (``aux_weight > 0``; an empty dict otherwise)."""
        f_rgb, f_th = self.encode(rgb, thermal)
        aux = {} if self.fusion_layer != "feature" or self.aux_heads is None else \
            {"rgb": self.aux_heads["rgb"](f_rgb), "thermal": self.aux_heads["thermal"](f_th)}
        return self._fused_logits(f_rgb, f_th), aux

    def _fused_logits(self, f_rgb: torch.Tensor, f_th: torch.Tensor) -> torch.Tensor:
        if self.fusion_layer == "feature":
            if self.fusion_type == "concat":
                return self.classifier(torch.cat([f_rgb, f_th], dim=-1))           # (B, 2h) → (B, C)
            fused = self.fusion(torch.stack([f_rgb, f_th], dim=1))                  # (B, 2, h) → (B, 2h)
            self._last_weights = self.fusion.last_attention
            return self.classifier(fused)
        logits = torch.stack([self.rgb_head(f_rgb), self.thermal_head(f_th)], dim=1)  # (B, 2, C)
        if self.fusion_type == "concat":
            w = torch.full((2,), 0.5, device=logits.device, dtype=logits.dtype)
        else:
            w = torch.softmax(self.logit_weights, dim=0)
        self._last_weights = w.detach().expand(logits.shape[0], 2)
        return (w[None, :, None] * logits).sum(dim=1)

    def branch_weights(self) -> torch.Tensor:
        """(B, 2) weights [RGB, thermal] of the last forward pass; rows sum to 1 (the same
        idea as ``HybridViTCLIP.branch_weights``: how much each branch counted)."""
        if self._last_weights is None:
            raise RuntimeError("run a forward pass first (and use fusion_type='attention' or "
                               "fusion_layer='prediction' to have weights)")
        return self._last_weights


# --------------------------------------------------------------------------- factory
def create_multimodal_vit_model(mode: str = "rgb", fusion_strategy: str = "early", fusion_type: str = "concat",
                                fusion_layer: str = "feature", model_name: str = DEFAULT_VIT,
                                num_classes: int = 7, aux_weight: float = 0.0, **kwargs: Any) -> nn.Module:
    """Build the model for one modality setting (RGB, thermal, or a fusion of the two).

    * ``mode="rgb"`` / ``"thermal"``: a ``ViTForFER`` (fusion arguments are not used; the
      model is called with that modality's images);
    * ``mode="combined"``, ``fusion_strategy="early"``: ``EarlyFusionViT(fusion_type=
      "concat"|"add")`` (``fusion_layer`` must stay ``"feature"``);
    * ``mode="combined"``, ``fusion_strategy="late"``: ``LateFusionViT(fusion_type=
      "concat"|"attention", fusion_layer="feature"|"prediction")``.

    ``kwargs`` go to the model (``freeze_backbone``, ``dropout_rate``, ``pooling`` …). An
    invalid value or combination raises ``ValueError`` listing ``VALID_COMBINATIONS``.
    ``aux_weight`` gives each encoder of a late *feature* fusion a loss of its own
    (``LateFusionViT``); the other models need none — one encoder, or one head per encoder
    already — so for them it changes nothing, and one setting serves the whole comparison.
    """
    def bad(reason: str) -> ValueError:
        return ValueError(f"create_multimodal_vit_model: {reason}. Valid combinations:\n{_combinations_text()}")

    if mode not in MODES:
        raise bad(f"mode={mode!r} is not one of {', '.join(map(repr, MODES))}")
    _check_classes(num_classes)
    if aux_weight < 0:
        raise ValueError(f"aux_weight={aux_weight!r} must be ≥ 0 (0 = off; 0.5 a usual value)")
    if mode in ("rgb", "thermal"):
        return ViTForFER(model_name, num_classes, **kwargs)
    if fusion_strategy not in ("early", "late"):
        raise bad(f"fusion_strategy={fusion_strategy!r} is not 'early' or 'late'")
    if fusion_strategy == "early":
        if fusion_type not in EARLY_TYPES:
            raise bad(f"early fusion has no fusion_type={fusion_type!r} (early fusion mixes pixels: "
                      f"{' or '.join(map(repr, EARLY_TYPES))})")
        if fusion_layer != "feature":
            raise bad(f"fusion_layer={fusion_layer!r} makes no sense for early fusion (there is one "
                      "encoder and one head); leave fusion_layer='feature'")
        return EarlyFusionViT(model_name, num_classes, fusion_type=fusion_type, **kwargs)
    if fusion_type not in LATE_TYPES:
        raise bad(f"late fusion has no fusion_type={fusion_type!r} ({' or '.join(map(repr, LATE_TYPES))})")
    if fusion_layer not in LATE_LAYERS:
        raise bad(f"fusion_layer={fusion_layer!r} is not {' or '.join(map(repr, LATE_LAYERS))}")
    if fusion_layer == "feature":
        kwargs["aux_weight"] = aux_weight
    return LateFusionViT(model_name, num_classes, fusion_type=fusion_type, fusion_layer=fusion_layer, **kwargs)


#: Notebook 05's seven models: name → ``create_multimodal_vit_model`` arguments.
FUSION_MODELS: dict[str, dict[str, str]] = {
    "RGB only": dict(mode="rgb"),
    "thermal only": dict(mode="thermal"),
    "early concat": dict(mode="combined", fusion_strategy="early", fusion_type="concat"),
    "early add": dict(mode="combined", fusion_strategy="early", fusion_type="add"),
    "late concat": dict(mode="combined", fusion_strategy="late", fusion_type="concat", fusion_layer="feature"),
    "late attention": dict(mode="combined", fusion_strategy="late", fusion_type="attention", fusion_layer="feature"),
    "late prediction": dict(mode="combined", fusion_strategy="late", fusion_type="concat", fusion_layer="prediction"),
}


@dataclass(frozen=True)
class FERSpec:
    """One of notebooks 04-05's models, settled once (``fer_spec``): its backbone (``vit_spec``),
    ``create_multimodal_vit_model``'s choice of model, and its other arguments (``options``:
    ``(name, value)`` pairs such as ``("pooling", "cls")``)."""

    backbone: ViTSpec
    mode: str = "rgb"
    fusion_strategy: str = "early"
    fusion_type: str = "concat"
    fusion_layer: str = "feature"
    num_classes: int = 7
    options: tuple[tuple[str, Any], ...] = ()


def fer_spec(model_name: str = DEFAULT_VIT, profile: str = "quick", quick_config: Any = None,
             mode: str = "rgb", fusion_strategy: str = "early", fusion_type: str = "concat",
             fusion_layer: str = "feature", num_classes: int = 7, **options: Any) -> FERSpec:
    """The model ``create_multimodal_vit_model(mode, fusion_strategy, fusion_type, fusion_layer,
    model_name=..., num_classes=..., **options, profile=profile)`` makes, as a spec."""
    return FERSpec(vit_spec(model_name, profile, quick_config), mode, fusion_strategy, fusion_type,
                   fusion_layer, num_classes, tuple(sorted(options.items())))


def build_fer(spec: FERSpec, device: str | torch.device | None = None) -> nn.Module:
    """The architecture of ``spec``, random init, on ``device`` (``on_device``: ``"meta"`` for
    shapes only): the model ``create_multimodal_vit_model`` makes, its backbone built from
    ``spec.backbone.config`` (no download, no weights loaded)."""
    with on_device(device):
        return create_multimodal_vit_model(spec.mode, spec.fusion_strategy, spec.fusion_type, spec.fusion_layer,
                                           model_name=spec.backbone.name, num_classes=spec.num_classes,
                                           backbone=replace(spec.backbone, pretrained=False), verbose=False,
                                           **dict(spec.options))
