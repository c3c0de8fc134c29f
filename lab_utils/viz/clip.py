"""Plots of notebook 02 (CLIP): similarity heatmaps with thumbnails, training curves with
the temperature, Recall@K bars, retrieval grids. Each figure is saved under
``outputs/<notebook>/``."""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.offsetbox import AnnotationBbox, OffsetImage

from .core import _to_image, save_figure

__all__ = ["plot_similarity_matrix", "plot_clip_training", "plot_recall_bars",
           "plot_text_to_image", "plot_image_to_text", "plot_loss_bugs"]


def _picture(img) -> np.ndarray:
    """One stored image (bytes 0–255 or floats in [0, 1], (3, H, W)) → an (H, W, 3) array in [0, 1]."""
    if isinstance(img, torch.Tensor) and img.dtype == torch.uint8:
        img = img.float() / 255.0
    return np.clip(_to_image(img), 0, 1)


def _wrap(text: str, width: int = 28) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def plot_similarity_matrix(sims: torch.Tensor, images: Sequence, captions: Sequence[str],
                           title: str = "Cosine similarity: images × captions",
                           name: str = "similarity_matrix", ax: plt.Axes | None = None,
                           vmin: float | None = None, vmax: float | None = None) -> plt.Figure:
    """Heatmap of an ``(N, N)`` image × caption similarity matrix, a thumbnail next to each
    row (``images``: bytes or [0, 1] floats) and the (wrapped) caption under each column; the true pairs are on the diagonal."""
    sims = torch.as_tensor(sims).detach().cpu().float().numpy()
    n_img, n_txt = sims.shape
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(0.9 * n_txt + 2.5, 0.9 * n_img + 2.2))
    fig = ax.figure
    im = ax.imshow(sims, cmap="viridis", vmin=vmin, vmax=vmax)
    for (i, j), v in np.ndenumerate(sims):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                color="white" if v < (sims.max() + sims.min()) / 2 else "black")
    for i in range(n_img):
        ax.add_artist(AnnotationBbox(OffsetImage(_picture(images[i]), zoom=0.9),
                                     (-0.5, i), xybox=(-22, 0), xycoords="data", boxcoords="offset points",
                                     frameon=False, annotation_clip=False))
    ax.set_xticks(range(n_txt), [_wrap(c, 22) for c in captions], rotation=90, fontsize=6)
    ax.set_yticks(range(n_img), [""] * n_img)
    ax.set_xlabel("caption j")
    ax.set_ylabel("image i (thumbnail)", labelpad=34)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="cosine similarity")
    if own:
        fig.tight_layout()
        save_figure(fig, name)
    return fig


def plot_clip_training(trace: pd.DataFrame, history: pd.DataFrame | None = None,
                       chance_loss: float | None = None, name: str = "training_curves") -> plt.Figure:
    """Per-step contrastive loss (with its running mean) and learned temperature; with
    ``history``, held-out Recall@1 per epoch."""
    panels = 3 if history is not None and "test_i2t_r1" in history else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.4))
    ax = axes[0]
    ax.plot(trace["step"], trace["loss"], lw=0.6, alpha=0.4, label="per step")
    ax.plot(trace["step"], trace["loss"].rolling(20, min_periods=1).mean(), lw=1.5, label="running mean (20)")
    if chance_loss is not None:
        ax.axhline(chance_loss, ls="--", color="gray", lw=1, label="log(batch): random guessing")
    ax.set(title="Symmetric contrastive loss", xlabel="optimizer step", ylabel="loss (nats)")
    ax.legend(fontsize=8)
    ax = axes[1]
    tau = trace["temperature"]
    ax.plot(trace["step"], tau, color="C3")
    ax.set_ylim(0, tau.max() * 1.25)        # from 0: a 6 % drift looks like 6 %, not like a plunge
    first, last = float(tau.iloc[0]), float(tau.iloc[-1])
    ax.annotate(f"τ {first:.4f} → {last:.4f} ({100 * (last / first - 1):+.0f} %)", xy=(0.98, 0.06),
                xycoords="axes fraction", ha="right", fontsize=8)
    ax.set(title="Learned temperature τ = 1 / exp(logit_scale)", xlabel="optimizer step", ylabel="τ")
    if panels == 3:
        ax = axes[2]
        ax.plot(history["epoch"], history["test_i2t_r1"], marker="o", label="image → text")
        ax.plot(history["epoch"], history["test_t2i_r1"], marker="o", label="text → image")
        ax.set(title="Held-out Recall@1", xlabel="epoch", ylabel="Recall@1 (fraction)")
        ax.legend(fontsize=8)
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_recall_bars(results: Mapping[str, Mapping[str, Mapping[int, float]]], chance: Mapping[int, float],
                     title: str = "Retrieval Recall@K on held-out faces", name: str = "recall_at_k") -> plt.Figure:
    """Bars of Recall@K per model (``results[model][direction][k]``), both directions, with
    chance level per K as dashes."""
    directions = ("image_to_text", "text_to_image")
    ks = sorted(next(iter(results.values()))["image_to_text"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    width = 0.8 / len(results)
    x = np.arange(len(ks))
    for ax, d in zip(axes, directions):
        for i, (model, r) in enumerate(results.items()):
            bars = ax.bar(x + (i - (len(results) - 1) / 2) * width, [r[d][k] for k in ks], width, label=model)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.scatter(x, [chance[k] for k in ks], marker="_", s=600, color="black", zorder=3, label="chance")
        ax.set_xticks(x, [f"R@{k}" for k in ks])
        ax.set(title=d.replace("_", " → ").replace("→ to →", "→"), xlabel="K", ylim=(0, 1.05))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("recall (fraction of queries)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_text_to_image(queries: Sequence[str], images: torch.Tensor, top_idx: torch.Tensor,
                       top_scores: torch.Tensor, correct: Sequence[int] | None = None,
                       name: str = "text_to_image_top5") -> plt.Figure:
    """One row per text query: its top-k images with their cosine similarity; the query's
    own image (``correct[q]``) framed in green."""
    nq, k = top_idx.shape
    fig, axes = plt.subplots(nq, k + 1, figsize=(1.5 * (k + 1) + 1.5, 1.6 * nq), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2] + [1] * k})
    for q in range(nq):
        axes[q, 0].axis("off")
        axes[q, 0].text(0, 0.5, _wrap(f'"{queries[q]}"', 26), fontsize=8, va="center")
        for j in range(k):
            ax = axes[q, j + 1]
            idx = int(top_idx[q, j])
            ax.imshow(_picture(images[idx]))
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"#{j + 1}  {float(top_scores[q, j]):.2f}", fontsize=7)
            hit = correct is not None and idx == correct[q]
            for s in ax.spines.values():
                s.set_edgecolor("green" if hit else "lightgray")
                s.set_linewidth(3 if hit else 0.5)
    fig.suptitle("Text → image: top-5 images per query (cosine similarity; green = the query's own image)")
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_image_to_text(images: Sequence, top_captions: Sequence[Sequence[str]], top_scores,
                       correct: Sequence[Sequence[bool]] | None = None,
                       name: str = "image_to_text_top3") -> plt.Figure:
    """One panel per query image with its top captions and similarities (✓ = its own caption)."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(_picture(images[i]))
        ax.set_xticks([]), ax.set_yticks([])
        lines = []
        for r, (cap, s) in enumerate(zip(top_captions[i], top_scores[i])):
            mark = "✓ " if correct is not None and correct[i][r] else ""
            lines.append(f"{r + 1}. {mark}{_wrap(cap, 34)} ({float(s):.2f})")
        ax.set_xlabel("\n".join(lines), fontsize=7, loc="left")
    fig.suptitle("Image → text: top captions per image (cosine similarity; ✓ = its own caption)")
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_loss_bugs(table: pd.DataFrame, name: str = "loss_bugs") -> plt.Figure:
    """Bars per loss variant (notebook 02, section 8): held-out Recall@1 and the mean cosine
    similarity between different images' embeddings (1.0 would mean every image maps to the
    same point; near 0, the images are spread apart)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for ax, col, label in zip(axes, ("R@1 image→text", "mean cos(image, other image)"),
                              ("Recall@1 (fraction)", "cosine similarity")):
        bars = ax.bar(range(len(table)), table[col], color=["C2", "C1", "C3"][:len(table)])
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
        ax.set_xticks(range(len(table)), [_wrap(str(i), 16) for i in table.index], fontsize=8)
        ax.set(title=col, ylabel=label, ylim=(min(0, table[col].min() - 0.05), 1.05))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Same heads, same data, different losses")
    fig.tight_layout()
    save_figure(fig, name)
    return fig
