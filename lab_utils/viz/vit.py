"""Plots of notebook 01 (ViT patching): patch grids, the token sequence, learned position
embeddings, [CLS] attention maps, and what task heads read from the backbone. Each function returns its ``Figure`` and saves it as
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

__all__ = ["plot_patch_grid", "plot_patch_sequence", "plot_position_similarity", "plot_cls_attention",
           "patch_token_pca", "plot_task_readouts"]


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
    its position embedding with those of all other positions (as a ``gh × gw`` map; its own
    position, cos = 1, is marked × and left out of the colour scale, which is symmetric around 0
    and set by the largest |cos| between two different positions, so neighbour structure shows).

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
    others = sim.copy()
    for i in range(gh):
        for j in range(gw):
            others[i, j, i, j] = np.nan                  # cos = 1 with itself: left out of the colour scale
    limit = (float(np.nanmax(np.abs(others))) if gh * gw > 1 else 0.0) or 1.0
    size = min(1.1, 9.0 / max(gh, gw))
    fig, axes = plt.subplots(gh, gw, figsize=(size * gw + 1.2, size * gh + 0.8), squeeze=False)
    for i in range(gh):
        for j in range(gw):
            ax = axes[i, j]
            im = ax.imshow(others[i, j], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.plot(j, i, marker="x", color="black", ms=4, mew=1)   # the panel's own position (cos 1, not coloured)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == gh - 1:
                ax.set_xlabel(str(j), fontsize=7)
            if j == 0:
                ax.set_ylabel(str(i), fontsize=7)
    fig.supxlabel("input patch column")
    fig.supylabel("input patch row")
    fig.suptitle(title)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, label="cosine similarity (× = itself)")
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


def patch_token_pca(token_grid: torch.Tensor, n_components: int = 3) -> np.ndarray:
    """Patch tokens on their grid → their first ``n_components`` principal components, each
    scaled to [0, 1]: a ``(gh, gw, n_components)`` array (with 3, an RGB image).

    Each component's sign is fixed so that its largest value (in absolute terms) is positive,
    which makes the colours the same from run to run for the same tokens.

    Args:
        token_grid: ``(gh, gw, D)`` patch tokens (``last_hidden_state[0, 1:].reshape(gh, gw, D)``).
    """
    gh, gw, d = token_grid.shape
    k = int(n_components)
    if k > min(gh * gw, d):
        raise ValueError(f"{k} components need at least {k} tokens and {k} dimensions, got {gh * gw}×{d}")
    x = token_grid.detach().double().cpu().reshape(gh * gw, d)
    x = x - x.mean(dim=0, keepdim=True)
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    proj = u[:, :k] * s[:k]                                           # [N, k] PCA scores
    flip = torch.sign(proj.gather(0, proj.abs().argmax(dim=0, keepdim=True)))
    proj = proj * torch.where(flip == 0, torch.ones_like(flip), flip)
    lo, hi = proj.min(dim=0).values, proj.max(dim=0).values
    proj = (proj - lo) / (hi - lo).clamp_min(1e-12)
    return proj.reshape(gh, gw, k).float().numpy()


def plot_task_readouts(image: torch.Tensor, last_hidden_state: torch.Tensor, grid_size: Sequence[int],
                       title: str = "One ViT backbone, two kinds of readout",
                       name: str | None = "task_readouts") -> plt.Figure:
    """What task heads read from one ViT output: the input with its patch grid; the patch
    tokens reshaped to their ``gh × gw × D`` grid and drawn as the first 3 principal components
    (RGB) — what a detection or segmentation head reads; and the ``[CLS]`` token and the mean
    patch token as ``D``-long strips — what a classification head reads.

    Args:
        image: ``(C, H, W)`` in [0, 1], the input the tokens come from.
        last_hidden_state: ``(1+N, D)`` or ``(1, 1+N, D)``, ``[CLS]`` first.
        grid_size: ``(gh, gw)`` patch grid, ``gh·gw = N``.
    """
    gh, gw = int(grid_size[0]), int(grid_size[1])
    hs = last_hidden_state.detach().float().cpu()
    hs = hs[0] if hs.dim() == 3 else hs                                 # [1+N, D]
    if hs.shape[0] != gh * gw + 1:
        raise ValueError(f"last_hidden_state has {hs.shape[0]} tokens, [CLS] + grid {gh}×{gw} needs {gh * gw + 1}")
    d = hs.shape[1]
    cls, grid = hs[0], hs[1:].reshape(gh, gw, d)                        # [D], [gh, gw, D]
    rgb = patch_token_pca(grid)
    centred = hs[1:] - hs[1:].mean(dim=0)
    var = torch.linalg.svdvals(centred.double()) ** 2
    share = float(var[:3].sum() / var.sum().clamp_min(1e-12))
    img = _to_image(image.detach().cpu().clamp(0, 1))
    H, W = img.shape[:2]

    fig = plt.figure(figsize=(9.0, 6.2))
    gs = fig.add_gridspec(2, 2, height_ratios=[4, 1.1], hspace=0.55, wspace=0.15)
    ax = fig.add_subplot(gs[0, 0])
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    for i in range(1, gh):
        ax.axhline(i * H / gh, color="white", lw=0.4, alpha=0.6)
    for j in range(1, gw):
        ax.axvline(j * W / gw, color="white", lw=0.4, alpha=0.6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"input: {H}×{W} px → {gh}×{gw} patches", fontsize=10)
    ax = fig.add_subplot(gs[0, 1])
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"what a detection / segmentation head reads:\npatch tokens as a {gh}×{gw}×{d} grid",
                 fontsize=10)
    ax.set_xlabel(f"colour = first 3 PCA components of the {gh * gw} tokens\n"
                  f"({share:.0%} of their variance)", fontsize=8)
    ax = fig.add_subplot(gs[1, :])
    strips = torch.stack([cls, grid.reshape(-1, d).mean(dim=0)]).numpy()   # [2, D]
    vmax = float(np.abs(strips).max()) or 1.0
    im = ax.imshow(strips, aspect="auto", cmap="coolwarm", vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_yticks([0, 1], ["[CLS]", "mean patch"])
    ax.set_xlabel(f"dimension (D = {d})")
    ax.set_title("what a classification head reads: one D-vector per image "
                 "([CLS], or the mean of the patch tokens)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="value")
    fig.suptitle(title)
    _maybe_save(fig, name)
    return fig
