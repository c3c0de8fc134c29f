"""Plots of notebook 01 (ViT patching): patch grids, the token sequence, learned position
embeddings and [CLS] attention maps. Each function returns its ``Figure`` and saves it as
``outputs/<notebook>/<name>.png`` (pass ``name=None`` to skip saving, e.g. in a widget).
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ..models.vit import attention_rollout, patchify
from .core import _to_image, save_figure

__all__ = ["plot_patch_grid", "plot_patch_sequence", "plot_position_similarity", "plot_cls_attention"]


def _maybe_save(fig: plt.Figure, name: str | None) -> None:
    if name:
        save_figure(fig, name)


def plot_patch_grid(image: torch.Tensor, patch_size: int, title: str | None = None,
                    name: str | None = "patch_grid", gap: int | None = None) -> plt.Figure:
    """The image cut into ``patch_size`` × ``patch_size`` patches, drawn apart with white gaps.

    Args:
        image: ``(C, H, W)`` in [0, 1]; ``H`` and ``W`` multiples of ``patch_size``.
        gap: white pixels between patches (default: about 1/8 of a patch, at least 1).
    """
    C, H, W = image.shape
    p = int(patch_size)
    gh, gw = H // p, W // p
    patches = patchify(image[None].float(), p)[0].reshape(gh, gw, C, p, p)  # [gh, gw, C, p, p]
    g = max(1, p // 8) if gap is None else gap
    canvas = torch.ones(C, gh * (p + g) - g, gw * (p + g) - g)
    for i in range(gh):
        for j in range(gw):
            canvas[:, i * (p + g):i * (p + g) + p, j * (p + g):j * (p + g) + p] = patches[i, j]
    fig, ax = plt.subplots(figsize=(4.6, 4.6 * canvas.shape[1] / canvas.shape[2] + 0.3))
    ax.imshow(_to_image(canvas.clamp(0, 1)), cmap="gray" if C == 1 else None)
    step = max(1, gw // 7)
    ax.set_xticks([j * (p + g) + p / 2 for j in range(0, gw, step)], [str(j) for j in range(0, gw, step)])
    step = max(1, gh // 7)
    ax.set_yticks([i * (p + g) + p / 2 for i in range(0, gh, step)], [str(i) for i in range(0, gh, step)])
    ax.set_xlabel("patch column")
    ax.set_ylabel("patch row")
    ax.set_title(title or f"{H}×{W} image → {gh}×{gw} = {gh * gw} patches of {p}×{p} px")
    fig.tight_layout()
    _maybe_save(fig, name)
    return fig


def plot_patch_sequence(image: torch.Tensor, patch_size: int, n_show: int = 16,
                        name: str | None = "patch_sequence") -> plt.Figure:
    """The token sequence a ViT reads: the first ``n_show`` patches in row-major order, and
    the whole ``(N, C·p·p)`` matrix ``patchify`` returns (one row per patch)."""
    C, H, W = image.shape
    p = int(patch_size)
    seq = patchify(image[None].float(), p)[0]  # [N, C·p·p]
    N = seq.shape[0]
    n_show = min(n_show, N)
    fig = plt.figure(figsize=(11, 5.2))
    grid = fig.add_gridspec(2, n_show, height_ratios=[1, 3.2], hspace=0.45)
    for k in range(n_show):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(_to_image(seq[k].reshape(C, p, p).clamp(0, 1)), cmap="gray" if C == 1 else None)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(k), fontsize=8)
    fig.text(0.5, 0.93, f"first {n_show} of {N} patches (row-major: left → right, then top → bottom)",
             ha="center", fontsize=10)
    ax = fig.add_subplot(grid[1, :])
    im = ax.imshow(seq.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel(f"position in the flattened patch (C·p·p = {C}·{p}·{p} = {C * p * p}; channel-major)")
    ax.set_ylabel("patch index (token)")
    ax.set_title(f"patchify(image) → sequence of {N} tokens × {C * p * p} values")
    fig.colorbar(im, ax=ax, fraction=0.03, label="pixel value (0–1)")
    _maybe_save(fig, name)
    return fig


def plot_position_similarity(pos_embed: torch.Tensor, grid_size: Sequence[int],
                             title: str = "Cosine similarity of learned position embeddings",
                             name: str | None = "position_similarity") -> plt.Figure:
    """For each patch position (panel at its place in the grid), the cosine similarity of
    its position embedding with those of all positions (as a ``gh × gw`` map).

    Args:
        pos_embed: ``(1, 1+N, D)`` or ``(1+N, D)``, [CLS] first (it is left out), or ``(N, D)``.
        grid_size: ``(gh, gw)`` with ``gh·gw = N``.
    """
    gh, gw = int(grid_size[0]), int(grid_size[1])
    pe = pos_embed.detach().float().cpu().reshape(-1, pos_embed.shape[-1])
    if pe.shape[0] == gh * gw + 1:
        pe = pe[1:]  # drop the [CLS] position
    if pe.shape[0] != gh * gw:
        raise ValueError(f"pos_embed has {pe.shape[0]} patch positions, grid {gh}×{gw} needs {gh * gw}")
    pe = F.normalize(pe, dim=-1)
    sim = (pe @ pe.T).reshape(gh, gw, gh, gw).numpy()  # [row, col] -> map over [row', col']
    size = min(1.1, 9.0 / max(gh, gw))
    fig, axes = plt.subplots(gh, gw, figsize=(size * gw + 1.2, size * gh + 0.8), squeeze=False)
    for i in range(gh):
        for j in range(gw):
            ax = axes[i, j]
            im = ax.imshow(sim[i, j], cmap="viridis", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == gh - 1:
                ax.set_xlabel(str(j), fontsize=7)
            if j == 0:
                ax.set_ylabel(str(i), fontsize=7)
    fig.supxlabel("input patch column")
    fig.supylabel("input patch row")
    fig.suptitle(title)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, label="cosine similarity")
    _maybe_save(fig, name)
    return fig


def _cls_map(attn: torch.Tensor, grid_size: Sequence[int]) -> np.ndarray:
    """``(T, T)`` attention → the [CLS] row over the patches as a ``gh × gw`` array."""
    return attn[0, 1:].reshape(int(grid_size[0]), int(grid_size[1])).float().cpu().numpy()


def plot_cls_attention(image: torch.Tensor, attentions: Sequence[torch.Tensor], grid_size: Sequence[int],
                       layer: int = -1, title: str = "[CLS] attention over the patches",
                       name: str | None = "cls_attention", ncols: int = 8,
                       alpha: float = 0.6) -> plt.Figure:
    """What the [CLS] token looks at: per head and averaged over heads (in one ``layer``),
    and the attention rollout through all layers, each overlaid on the input image.

    Maps are drawn as ``N × attention`` on one shared colour scale, so 1 means "as much
    as if attention were spread uniformly over the N patches" and a bright patch gets
    several times its fair share.

    Args:
        image: ``(C, H, W)`` in [0, 1], the input the attentions come from.
        attentions: one ``(1, h, 1+N, 1+N)`` (or ``(h, 1+N, 1+N)``) tensor per layer,
            as in ``ViTOutput.attentions``.
        grid_size: ``(gh, gw)`` patch grid, ``gh·gw = N``.
        layer: the layer whose heads are drawn (rollout always uses all layers).
    """
    atts = [a.detach().float().cpu()[None] if a.dim() == 3 else a.detach().float().cpu()[:1]
            for a in attentions]  # [1, h, T, T] each
    last = atts[layer][0]  # [h, T, T]
    h = last.shape[0]
    n = int(grid_size[0]) * int(grid_size[1])
    layer_no = layer % len(atts) + 1
    maps = [(f"head {k + 1}", _cls_map(last[k], grid_size)) for k in range(h)]
    maps.append((f"mean of {h} heads", _cls_map(last.mean(0), grid_size)))
    maps.append((f"rollout, {len(atts)} layers", _cls_map(attention_rollout(atts)[0], grid_size)))
    vmax = max(float(m.max()) * n for _, m in maps)
    img = _to_image(image.detach().cpu().clamp(0, 1))
    H, W = img.shape[:2]
    panels = [("input", None)] + maps
    ncols = min(ncols, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols + 0.8, 2.0 * nrows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, m) in zip(axes.flat, panels):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        if m is not None:
            im = ax.imshow(m * n, cmap="inferno", alpha=alpha, vmin=0, vmax=vmax,
                           extent=(0, W, H, 0), interpolation="nearest")
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"{title} (heads: layer {layer_no} of {len(atts)})")
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02,
                 label=f"attention × N (N = {n}; 1 = uniform)")
    _maybe_save(fig, name)
    return fig
