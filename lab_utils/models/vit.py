"""A Vision Transformer written from scratch, readable top to bottom (notebook 01).

The pieces appear in the order an image flows through them::

    pixel_values (B, C, H, W)
      │ patchify / PatchEmbedding           cut into N = (H/p)·(W/p) patches, project each to D
      ▼
    patch tokens (B, N, D)
      │ prepend [CLS], add position embeddings
      ▼
    tokens (B, 1+N, D)
      │ num_hidden_layers × EncoderBlock     pre-norm: x + MHSA(LN(x)), then x + MLP(LN(x))
      ▼
      │ final LayerNorm
      ▼
    last_hidden_state (B, 1+N, D)  ──(optional)──► pooled (B, D) ──► logits (B, num_classes)

ViT is *encoder-only*: every token attends to every other token (no causal mask) and
the model produces one representation per token, never a generated sequence.

Names follow ``transformers.ViTConfig`` (``hidden_size``, ``num_hidden_layers``, …) so
that :meth:`VisionTransformer.from_huggingface` can copy a ``transformers.ViTModel``
weight for weight; its ``last_hidden_state`` then matches to ~1e-6.

Shapes use B = batch, C = channels, H/W = image height/width, p = patch size,
N = number of patches, D = hidden size, h = heads, d = D / h = head size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "patchify",
    "PatchEmbedding",
    "MultiHeadSelfAttention",
    "MLP",
    "EncoderBlock",
    "VisionTransformer",
    "ViTOutput",
    "pool_tokens",
    "attention_rollout",
]


# ─────────────────────────────────────────────────────────────────────────────
# 1. Patches
# ─────────────────────────────────────────────────────────────────────────────
def _pair(x: int | Sequence[int]) -> tuple[int, int]:
    """``16 -> (16, 16)``; ``(224, 160) -> (224, 160)``."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"expected an int or a pair (height, width), got {x!r}")
        return int(x[0]), int(x[1])
    return int(x), int(x)


def _check_divisible(height: int, width: int, patch_size: int) -> None:
    """Raise a student-readable ``ValueError`` when a side is not a multiple of the patch size."""
    problems = []
    for name, size in (("height", height), ("width", width)):
        if size % patch_size:
            n = max(1, round(size / patch_size))
            problems.append(
                f"image {name} {size} is not divisible by patch size {patch_size}: "
                f"resize to {n * patch_size} (= {n} × {patch_size})"
            )
    if problems:
        raise ValueError(
            "; ".join(problems)
            + f". Every side must be a multiple of the patch size (got {height}×{width} pixels, "
            f"patch {patch_size}×{patch_size}); e.g. torchvision.transforms.Resize or "
            f"F.interpolate(images, size=...)."
        )


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping square patches and flatten each patch.

    Args:
        images: ``(B, C, H, W)``; ``H`` and ``W`` must be multiples of ``patch_size``.
        patch_size: side ``p`` of a square patch, in pixels.

    Returns:
        ``(B, N, C·p·p)`` with ``N = (H/p)·(W/p)``. Patches are in row-major order
        (left to right, then top to bottom); each patch is flattened in ``(C, p, p)``
        order — the order in which a ``Conv2d`` weight of shape ``(D, C, p, p)`` flattens,
        so ``patchify(x, p) @ conv.weight.reshape(D, -1).T + conv.bias`` equals
        ``conv(x).flatten(2).transpose(1, 2)`` for ``conv = Conv2d(C, D, p, stride=p)``.

    Raises:
        ValueError: if ``images`` is not 4-D or a side is not divisible by ``patch_size``
            (the message suggests the nearest valid size).
    """
    if images.dim() != 4:
        raise ValueError(
            f"patchify expects a batch of images (B, C, H, W), got shape {tuple(images.shape)}"
            + ("; add a batch dimension with images.unsqueeze(0)" if images.dim() == 3 else "")
        )
    p = int(patch_size)
    if p < 1:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size!r}")
    B, C, H, W = images.shape
    _check_divisible(H, W, p)
    x = images.reshape(B, C, H // p, p, W // p, p)  # [B, C, H/p, p, W/p, p]
    x = x.permute(0, 2, 4, 1, 3, 5)  # [B, H/p, W/p, C, p, p]
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # [B, N, C·p·p]


class PatchEmbedding(nn.Module):
    """Linear projection of flattened patches, done as a strided convolution.

    A ``Conv2d`` with ``kernel_size = stride = patch_size`` looks at each patch exactly
    once and applies the same linear map to it: it *is* ``patchify`` followed by a
    ``Linear(C·p·p, D)`` layer, just faster.

    Args:
        image_size: ``H`` (square) or ``(H, W)`` the model is built for.
        patch_size: side ``p`` of a square patch.
        num_channels: ``C`` (3 for RGB, 1 for grey, 6 for RGB+thermal stacked…).
        hidden_size: ``D``, the token width.

    Shapes: ``forward((B, C, H, W)) -> (B, N, D)`` with ``N = (H/p)·(W/p)``.
    """

    def __init__(self, image_size: int | Sequence[int] = 224, patch_size: int = 16,
                 num_channels: int = 3, hidden_size: int = 768) -> None:
        super().__init__()
        self.image_size = _pair(image_size)
        self.patch_size = int(patch_size)
        _check_divisible(*self.image_size, self.patch_size)
        self.num_channels = int(num_channels)
        self.grid_size = (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.projection = nn.Conv2d(num_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, N, D)`` (``H``, ``W`` multiples of ``patch_size``)."""
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.num_channels:
            raise ValueError(
                f"expected pixel_values of shape (B, {self.num_channels}, H, W), got "
                f"{tuple(pixel_values.shape)}; the model was built with num_channels={self.num_channels}"
            )
        _check_divisible(pixel_values.shape[-2], pixel_values.shape[-1], self.patch_size)
        x = self.projection(pixel_values)  # [B, D, H/p, W/p]
        return x.flatten(2).transpose(1, 2)  # [B, N, D]


# ─────────────────────────────────────────────────────────────────────────────
# 2. The encoder block
# ─────────────────────────────────────────────────────────────────────────────
class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over all tokens (no mask: ViT is an encoder).

    ``q, k, v`` come from one fused ``Linear(D, 3·h·d)``; the attention itself is
    ``torch.nn.functional.scaled_dot_product_attention`` (a fused kernel) unless the
    caller asks for the attention probabilities, which are then computed explicitly as
    ``softmax(q kᵀ / √d)``.

    Shapes: ``forward((B, T, D)) -> ((B, T, D), (B, h, T, T) or None)``.
    """

    def __init__(self, hidden_size: int, num_attention_heads: int, qkv_bias: bool = True,
                 attention_dropout: float = 0.0, head_dim: int | None = None) -> None:
        super().__init__()
        if head_dim is None:
            if hidden_size % num_attention_heads:
                raise ValueError(
                    f"hidden_size {hidden_size} is not divisible by num_attention_heads "
                    f"{num_attention_heads}; choose heads among the divisors of {hidden_size}"
                )
            head_dim = hidden_size // num_attention_heads
        self.num_heads = int(num_attention_heads)
        self.head_dim = int(head_dim)
        self.attention_dropout = float(attention_dropout)
        inner = self.num_heads * self.head_dim
        self.qkv = nn.Linear(hidden_size, 3 * inner, bias=qkv_bias)
        self.proj = nn.Linear(inner, hidden_size)

    def forward(self, x: torch.Tensor, output_attentions: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, T, D) -> (B, T, D)``, plus attention probabilities ``(B, h, T, T)`` on request."""
        B, T, _ = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim)  # [B, T, 3, h, d]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × [B, h, T, d]
        p_drop = self.attention_dropout if self.training else 0.0
        if output_attentions:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # [B, h, T, T]
            probs = scores.softmax(dim=-1)  # each row sums to 1
            out = F.dropout(probs, p_drop, self.training) @ v  # [B, h, T, d]
        else:
            probs = None
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p_drop)  # [B, h, T, d]
        out = out.transpose(1, 2).reshape(B, T, self.num_heads * self.head_dim)  # [B, T, h·d]
        return self.proj(out), probs  # [B, T, D]


class MLP(nn.Module):
    """Position-wise feed-forward network ``Linear(D, D_mlp) → GELU → Linear(D_mlp, D)``.

    Shapes: ``(B, T, D) -> (B, T, D)``.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str = "gelu",
                 dropout: float = 0.0) -> None:
        super().__init__()
        approximate = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}.get(hidden_act)
        if approximate is None:
            raise ValueError(f"hidden_act {hidden_act!r} is not supported; allowed: "
                             "'gelu', 'gelu_new', 'gelu_pytorch_tanh'")
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.act = nn.GELU(approximate=approximate)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D) -> (B, T, D)``."""
        return self.dropout(self.fc2(self.act(self.fc1(x))))


class EncoderBlock(nn.Module):
    """One pre-norm transformer encoder block::

        x = x + Dropout(MHSA(LayerNorm(x)))
        x = x + MLP(LayerNorm(x))

    The residual stream ``x`` is never normalised in place, which keeps deep stacks
    trainable. Shapes: ``forward((B, T, D)) -> ((B, T, D), (B, h, T, T) or None)``.
    """

    def __init__(self, hidden_size: int = 768, num_attention_heads: int = 12,
                 intermediate_size: int = 3072, qkv_bias: bool = True, layer_norm_eps: float = 1e-12,
                 hidden_act: str = "gelu", hidden_dropout_prob: float = 0.0,
                 attention_probs_dropout_prob: float = 0.0, head_dim: int | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.attn = MultiHeadSelfAttention(hidden_size, num_attention_heads, qkv_bias,
                                           attention_probs_dropout_prob, head_dim)
        self.dropout = nn.Dropout(hidden_dropout_prob)
        self.norm2 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.mlp = MLP(hidden_size, intermediate_size, hidden_act, hidden_dropout_prob)

    def forward(self, x: torch.Tensor, output_attentions: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, T, D) -> (B, T, D)``, plus attention probabilities ``(B, h, T, T)`` on request."""
        attn_out, probs = self.attn(self.norm1(x), output_attentions)
        x = x + self.dropout(attn_out)  # residual 1
        x = x + self.mlp(self.norm2(x))  # residual 2
        return x, probs


# ─────────────────────────────────────────────────────────────────────────────
# 3. The whole model
# ─────────────────────────────────────────────────────────────────────────────
def encoder_layers(vit: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a ``transformers.ViTModel``: ``vit.layers`` in transformers ≥ 5,
    ``vit.encoder.layer`` before (the one place that knows both layouts)."""
    layers = getattr(vit, "layers", None)
    return vit.encoder.layer if layers is None else layers


POOLINGS = ("cls", "mean")


def pool_tokens(last_hidden_state: torch.Tensor, pooling: str = "cls") -> torch.Tensor:
    """One vector per image from a ViT's tokens: ``[B, 1+N, D] -> [B, D]``.

    ``"cls"``: the [CLS] token (position 0), which attention filled with what the head needs;
    ``"mean"``: the average of the N patch tokens (the [CLS] token left out).
    """
    if pooling == "cls":
        return last_hidden_state[:, 0]
    if pooling == "mean":
        return last_hidden_state[:, 1:].mean(dim=1)
    raise ValueError(f"pooling {pooling!r} is not supported; allowed: {', '.join(map(repr, POOLINGS))}")


@dataclass
class ViTOutput:
    """What :class:`VisionTransformer` returns.

    Attributes:
        last_hidden_state: ``(B, 1+N, D)`` after the final LayerNorm; token 0 is [CLS]
            (the same tensor as ``transformers.ViTModel(...).last_hidden_state``).
        pooled: ``(B, D)``: the [CLS] token (``pooling="cls"``) or the mean patch token
            (``pooling="mean"``).
        logits: ``(B, num_classes)`` when the model has a classification head, else ``None``.
        attentions: with ``output_attentions=True``, a tuple of one ``(B, h, 1+N, 1+N)``
            tensor per layer (rows sum to 1), else ``None``.
    """

    last_hidden_state: torch.Tensor
    pooled: torch.Tensor
    logits: torch.Tensor | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class VisionTransformer(nn.Module):
    """Vision Transformer (Dosovitskiy et al., 2021), encoder-only, from scratch.

    Arguments are named as in ``transformers.ViTConfig``; the defaults are ViT-B/16 at 224.

    Args:
        image_size: ``H`` or ``(H, W)`` in pixels.
        patch_size: square patch side ``p``.
        num_channels: ``C``.
        hidden_size: token width ``D``.
        num_hidden_layers: number of encoder blocks.
        num_attention_heads: ``h`` (``D`` must be divisible by ``h``).
        intermediate_size: hidden width of the MLP (usually ``4·D``).
        hidden_act: ``"gelu"`` (exact, as in ViT) or a tanh-approximated GELU.
        layer_norm_eps: epsilon of every LayerNorm (1e-12 in HF's ViT, 1e-6 in timm's).
        qkv_bias: whether the q/k/v projections have a bias.
        hidden_dropout_prob, attention_probs_dropout_prob: dropout rates (0 = off).
        num_classes: if > 0, adds ``head = Linear(D, num_classes)`` on the pooled token.
        pooling: ``"cls"`` (the [CLS] token) or ``"mean"`` (average of the patch tokens).

    Shapes: ``forward((B, C, H, W)) -> ViTOutput`` with ``last_hidden_state (B, 1+N, D)``,
    ``pooled (B, D)``, ``logits (B, num_classes)`` and optionally ``attentions``
    (``num_hidden_layers`` × ``(B, h, 1+N, 1+N)``).

    >>> model = VisionTransformer(image_size=32, patch_size=8, hidden_size=64,
    ...                           num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    >>> model(torch.zeros(2, 3, 32, 32)).last_hidden_state.shape
    torch.Size([2, 17, 64])
    """

    def __init__(self, image_size: int | Sequence[int] = 224, patch_size: int = 16,
                 num_channels: int = 3, hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072,
                 hidden_act: str = "gelu", layer_norm_eps: float = 1e-12, qkv_bias: bool = True,
                 hidden_dropout_prob: float = 0.0, attention_probs_dropout_prob: float = 0.0,
                 num_classes: int = 0, pooling: str = "cls", head_dim: int | None = None) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not supported; allowed: 'cls', 'mean'")
        self.config = SimpleNamespace(
            image_size=_pair(image_size), patch_size=int(patch_size), num_channels=int(num_channels),
            hidden_size=int(hidden_size), num_hidden_layers=int(num_hidden_layers),
            num_attention_heads=int(num_attention_heads), intermediate_size=int(intermediate_size),
            hidden_act=hidden_act, layer_norm_eps=float(layer_norm_eps), qkv_bias=bool(qkv_bias),
            hidden_dropout_prob=float(hidden_dropout_prob),
            attention_probs_dropout_prob=float(attention_probs_dropout_prob),
            num_classes=int(num_classes), pooling=pooling, head_dim=head_dim,
        )
        D = hidden_size
        # Embeddings: patches -> tokens, a learned [CLS] token, learned positions.
        self.patch_embed = PatchEmbedding(image_size, patch_size, num_channels, D)
        self.num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))  # [1, 1, D]
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, D))  # [1, 1+N, D]
        self.dropout = nn.Dropout(hidden_dropout_prob)
        # Encoder: a stack of identical pre-norm blocks, then one final LayerNorm.
        self.blocks = nn.ModuleList([
            EncoderBlock(D, num_attention_heads, intermediate_size, qkv_bias, layer_norm_eps,
                         hidden_act, hidden_dropout_prob, attention_probs_dropout_prob, head_dim)
            for _ in range(num_hidden_layers)
        ])
        self.norm = nn.LayerNorm(D, eps=layer_norm_eps)
        # Optional classification head on the pooled token.
        self.head = nn.Linear(D, num_classes) if num_classes > 0 else None
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Truncated-normal(0.02) weights and zero biases, as in HF's ViT."""
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # -- embeddings ---------------------------------------------------------------
    def interpolate_pos_encoding(self, height: int, width: int) -> torch.Tensor:
        """Position embeddings for an image of ``height × width`` pixels: ``(1, 1+N', D)``.

        At the training size this returns ``pos_embed`` unchanged. For another size the
        grid of patch position vectors is resized bicubically (as ``transformers.ViTModel``
        does with ``interpolate_pos_encoding=True``); the [CLS] position is kept.
        """
        p = self.config.patch_size
        gh, gw = self.patch_embed.grid_size
        new_h, new_w = height // p, width // p
        if (new_h, new_w) == (gh, gw):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]  # [1,1,D], [1,N,D]
        D = patch_pos.shape[-1]
        grid = patch_pos.reshape(1, gh, gw, D).permute(0, 3, 1, 2)  # [1, D, gh, gw]
        grid = F.interpolate(grid, size=(new_h, new_w), mode="bicubic", align_corners=False)
        patch_pos = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, D)  # [1, N', D]
        return torch.cat([cls_pos, patch_pos], dim=1)

    def embed(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """Patch embedding + [CLS] + positions: ``(B, C, H, W) -> (B, 1+N, D)``."""
        B, _, H, W = pixel_values.shape
        if not interpolate_pos_encoding and (H, W) != self.config.image_size:
            h, w = self.config.image_size
            raise ValueError(
                f"input images are {H}×{W} but the model was built for {h}×{w}: resize them to "
                f"{h}×{w}, or pass interpolate_pos_encoding=True to resize the position embeddings"
            )
        x = self.patch_embed(pixel_values)  # [B, N, D]
        cls = self.cls_token.expand(B, -1, -1)  # [B, 1, D]
        x = torch.cat([cls, x], dim=1)  # [B, 1+N, D]
        pos = self.interpolate_pos_encoding(H, W) if interpolate_pos_encoding else self.pos_embed
        return self.dropout(x + pos)  # [B, 1+N, D]

    # -- forward ------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor, output_attentions: bool = False,
                interpolate_pos_encoding: bool = False) -> ViTOutput:
        """``(B, C, H, W) -> ViTOutput`` (see the class docstring for the shapes)."""
        x = self.embed(pixel_values, interpolate_pos_encoding)  # [B, 1+N, D]
        attentions = []
        for block in self.blocks:
            x, probs = block(x, output_attentions)  # [B, 1+N, D], [B, h, 1+N, 1+N] | None
            attentions.append(probs)
        x = self.norm(x)  # [B, 1+N, D]
        pooled = pool_tokens(x, self.config.pooling)  # [B, D]
        logits = self.head(pooled) if self.head is not None else None  # [B, K]
        return ViTOutput(last_hidden_state=x, pooled=pooled, logits=logits,
                         attentions=tuple(attentions) if output_attentions else None)

    # -- construction from transformers ------------------------------------------
    @classmethod
    def from_config(cls, vit_config: Any, **overrides: Any) -> "VisionTransformer":
        """Build a randomly initialised model with the sizes of a ``transformers.ViTConfig``.

        ``overrides`` (e.g. ``num_classes=7, pooling="mean"``) are passed to ``__init__``.
        """
        patch = _pair(vit_config.patch_size)
        if patch[0] != patch[1]:
            raise ValueError(f"only square patches are supported, got patch_size={vit_config.patch_size}")
        kwargs = dict(
            image_size=_pair(vit_config.image_size), patch_size=patch[0],
            num_channels=vit_config.num_channels, hidden_size=vit_config.hidden_size,
            num_hidden_layers=vit_config.num_hidden_layers,
            num_attention_heads=vit_config.num_attention_heads,
            intermediate_size=vit_config.intermediate_size, hidden_act=vit_config.hidden_act,
            layer_norm_eps=vit_config.layer_norm_eps, qkv_bias=getattr(vit_config, "qkv_bias", True),
            hidden_dropout_prob=getattr(vit_config, "hidden_dropout_prob", 0.0),
            attention_probs_dropout_prob=getattr(vit_config, "attention_probs_dropout_prob", 0.0),
            head_dim=getattr(vit_config, "head_dim", None),
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_huggingface(cls, vit_model: nn.Module, **overrides: Any) -> "VisionTransformer":
        """Build a matching model from a ``transformers.ViTModel`` and copy its weights.

        Accepts a ``ViTModel`` or a model holding one as ``.vit`` (e.g.
        ``ViTForImageClassification``; only the backbone is copied). Works with the module
        layouts of transformers 4.x (``encoder.layer[i].attention.attention.query``) and 5.x
        (``layers[i].attention.q_proj``). The separate q/k/v weights are stacked into our
        fused ``qkv`` projection; HF's pooler (dense + tanh) is not part of this model.

        Returns a model in eval mode on the source's device and dtype whose
        ``last_hidden_state`` equals ``vit_model(pixel_values).last_hidden_state``
        (max abs difference ~1e-6 in float32). ``overrides`` go to ``__init__``
        (e.g. ``num_classes=7`` adds a fresh head).
        """
        hf = getattr(vit_model, "vit", vit_model)
        model = cls.from_config(hf.config, **overrides)
        ref = next(hf.parameters())
        model.to(device=ref.device, dtype=ref.dtype)
        emb = hf.embeddings
        layers = encoder_layers(hf)
        with torch.no_grad():
            model.cls_token.copy_(emb.cls_token)
            model.pos_embed.copy_(emb.position_embeddings)
            _copy_linear(model.patch_embed.projection, emb.patch_embeddings.projection)
            for block, layer in zip(model.blocks, layers, strict=True):
                _copy_linear(block.norm1, layer.layernorm_before)
                _copy_linear(block.norm2, layer.layernorm_after)
                att = layer.attention
                if hasattr(att, "q_proj"):  # transformers >= 5
                    q, k, v, o = att.q_proj, att.k_proj, att.v_proj, att.o_proj
                    fc1, fc2 = layer.mlp.fc1, layer.mlp.fc2
                else:  # transformers 4.x
                    q, k, v = att.attention.query, att.attention.key, att.attention.value
                    o, fc1, fc2 = att.output.dense, layer.intermediate.dense, layer.output.dense
                block.attn.qkv.weight.copy_(torch.cat([q.weight, k.weight, v.weight], dim=0))
                if block.attn.qkv.bias is not None:
                    block.attn.qkv.bias.copy_(torch.cat([q.bias, k.bias, v.bias], dim=0))
                _copy_linear(block.attn.proj, o)
                _copy_linear(block.mlp.fc1, fc1)
                _copy_linear(block.mlp.fc2, fc2)
            _copy_linear(model.norm, hf.layernorm)
        return model.eval()


def _copy_linear(dst: nn.Module, src: nn.Module) -> None:
    """Copy ``weight`` and ``bias`` (Linear, Conv2d or LayerNorm), checking shapes."""
    for name in ("weight", "bias"):
        d, s = getattr(dst, name), getattr(src, name)
        if d is None or s is None:
            if (d is None) != (s is None):
                raise ValueError(f"{name} present in only one of {type(dst).__name__} / {type(src).__name__}")
            continue
        if d.shape != s.shape:
            raise ValueError(f"cannot copy {name}: shape {tuple(s.shape)} into {tuple(d.shape)}")
        d.copy_(s)


# ─────────────────────────────────────────────────────────────────────────────
# 4. Reading the attention
# ─────────────────────────────────────────────────────────────────────────────
def attention_rollout(attentions: Sequence[torch.Tensor], residual_weight: float = 0.5) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each token feeds each output token.

    Per layer the heads are averaged and the residual connection is modelled by mixing in
    the identity, ``A' = w·I + (1-w)·mean_h(A)`` (rows renormalised); the layers are then
    multiplied from the first to the last, ``R = A'_L ⋯ A'_1``.

    Args:
        attentions: one ``(B, h, T, T)`` tensor per layer (``ViTOutput.attentions``).
        residual_weight: ``w``, the weight of the skip connection (0.5 in the paper).

    Returns:
        ``(B, T, T)``; row ``i`` is a distribution over input tokens. ``R[:, 0, 1:]``
        is the [CLS] token's map over the ``N`` patches.
    """
    if not attentions:
        raise ValueError("attention_rollout needs at least one layer; run the model with output_attentions=True")
    rollout = None
    for a in attentions:
        a = a.mean(dim=1)  # [B, T, T]
        eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = residual_weight * eye + (1 - residual_weight) * a
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout  # [B, T, T]
    return rollout
