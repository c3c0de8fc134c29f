"""Plots of notebook 03 (hybrid ViT + frozen CLIP fusion).

* ``plot_branch_inputs``    — the same faces as each branch receives them, side by side
* ``plot_results``          — accuracy / macro-F1, trainable parameters and time per model
* ``plot_tsne``             — t-SNE maps of several feature sets, coloured by class
* ``plot_branch_attention`` — attention fusion: weight on each branch, per class
* ``plot_branch_gradients`` — modality imbalance over training: the ViT's gradient, CLIP / ViT share

Each returns its ``Figure`` and saves it under ``outputs/<notebook>/``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .core import _to_image, interval_errors, plot_shares_per_class, save_figure


def _np(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)


def plot_branch_inputs(images: torch.Tensor, inputs: Mapping[str, torch.Tensor],
                       titles: Sequence[str] | None = None, name: str = "branch_inputs",
                       title: str = "One face, two preprocessings") -> plt.Figure:
    """Rows: the original images ``(n, 3, h, w)`` (bytes or [0, 1] floats), then each branch's input
    ``{label: (n, 3, S, S)}`` (normalised, so shown rescaled to the row's min–max), and a
    last column with the histogram of each branch's input values.
    """
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        images = images.float() / 255.0                                  # stored bytes → [0, 1]
    n = len(images)
    rows = {"original": images, **inputs}
    fig, axes = plt.subplots(len(rows), n + 1, figsize=(1.55 * n + 3.2, 1.6 * len(rows) + 0.5),
                             gridspec_kw={"width_ratios": [1] * n + [2.2]}, squeeze=False)
    for r, (label, batch) in enumerate(rows.items()):
        arr = _np(batch)
        lo, hi = arr.min(), arr.max()
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(_to_image((arr[c] - lo) / max(hi - lo, 1e-8)), 0, 1))
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                side = arr.shape[-1]
                ax.set_ylabel(f"{label}\n{side}×{side} px", fontsize=8)
            if r == 0 and titles is not None:
                ax.set_title(titles[c], fontsize=8)
        hist = axes[r, n]
        if r == 0:
            hist.axis("off")
            hist.text(0.0, 0.5, "pixel values in [0, 1]\n(the data set's images)", fontsize=8, va="center")
            continue
        for ch, color in enumerate(("tab:red", "tab:green", "tab:blue")):
            hist.hist(arr[:, ch].ravel(), bins=40, histtype="step", color=color, label="RGB"[ch])
        hist.set_xlabel("input value (after normalisation)", fontsize=8)
        hist.set_ylabel("count (pixels)", fontsize=8)
        hist.tick_params(labelsize=7)
        hist.legend(fontsize=7, title="channel", title_fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_results(table: pd.DataFrame, name: str = "results",
                 title: str = "Baselines and fusions: same data, same budget",
                 chance: float | None = None) -> plt.Figure:
    """Three panels for a results table indexed by model: ``accuracy`` and ``f1_macro``
    (grouped bars, with their 95 % intervals as error bars when the table has
    ``<metric>_low`` / ``<metric>_high`` columns), ``trainable_params`` (log scale) and
    ``train_s`` (seconds)."""
    models = [str(i) for i in table.index]
    x = np.arange(len(models))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(4.2 * 3, 3.8), gridspec_kw={"width_ratios": [1.6, 1, 1]})
    ax = axes[0]
    for i, (col, label) in enumerate((("accuracy", "accuracy"), ("f1_macro", "macro-F1"))):
        bars = ax.bar(x + (i - 0.5) * 0.38, table[col].values, 0.38, label=label, color=colors[i],
                      yerr=interval_errors(table, col), capsize=3)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    if chance is not None:
        ax.axhline(chance, ls="--", color="gray", lw=1, label=f"chance ({chance:.2f})")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test score (fraction)")
    ax.set_title("test accuracy and macro-F1")
    ax.legend(fontsize=8, loc="upper left")
    for ax, col, label, color in ((axes[1], "trainable_params", "trainable parameters (count, log scale)", colors[2]),
                                  (axes[2], "train_s", "training time (s)", colors[3])):
        bars = ax.bar(x, table[col].values, 0.6, color=color)
        ax.bar_label(bars, labels=[f"{v:,.0f}" if col == "trainable_params" else f"{v:.1f}"
                                   for v in table[col].values], fontsize=7, padding=1)
        if col == "trainable_params":
            ax.set_yscale("log")
            ax.set_ylim(top=table[col].max() * 8)
        else:
            ax.set_ylim(0, table[col].max() * 1.2)
        ax.set_ylabel(label)
        ax.set_title(label.split(" (")[0])
    for ax in axes:
        ax.set_xticks(x, models, rotation=20, ha="right")
        ax.set_xlabel("model")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_tsne(features: Mapping[str, torch.Tensor | np.ndarray], labels, class_names: Sequence[str],
              name: str = "tsne", title: str = "t-SNE of the features, coloured by true class",
              perplexity: float = 30.0, seed: int = 0) -> plt.Figure:
    """One t-SNE map (scikit-learn, PCA initialisation, fixed seed) per feature set
    ``{label: (N, D)}``, the points coloured by ``labels`` ``(N,)``."""
    from sklearn.manifold import TSNE

    y = _np(labels).astype(int)
    fig, axes = plt.subplots(1, len(features), figsize=(4.0 * len(features), 4.2), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (label, feats) in zip(axes[0], features.items()):
        f = _np(feats)
        xy = TSNE(n_components=2, perplexity=min(perplexity, (len(f) - 1) / 3), init="pca",
                  random_state=seed).fit_transform(f)
        for k, cls in enumerate(class_names):
            sel = y == k
            ax.scatter(xy[sel, 0], xy[sel, 1], s=8, color=cmap(k), label=cls, alpha=0.8)
        ax.set_title(f"{label} ({f.shape[1]}-d)")
        ax.set_xlabel("t-SNE 1 (a.u.)")
        ax.set_ylabel("t-SNE 2 (a.u.)")
        ax.set_xticks([]), ax.set_yticks([])
    axes[0, -1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), title="class")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_branch_attention(per_class: pd.DataFrame, name: str = "attention_per_class",
                          title: str = "Attention fusion: attention paid to each branch, per class") -> plt.Figure:
    """Stacked horizontal bars: for each class (rows of ``per_class``), the mean attention
    weight on each branch (columns, e.g. ``ViT`` and ``CLIP``; each row sums to 1)."""
    return plot_shares_per_class(per_class, title, name,
                                 xlabel="mean attention weight (fraction; heads and both query tokens averaged)",
                                 legend_suffix=" token")


def plot_branch_gradients(per_epoch: Mapping[str, pd.DataFrame], name: str = "branch_gradients",
                          title: str = "Modality imbalance, measured while training") -> plt.Figure:
    """Two panels over the epochs, one line per model (``per_epoch``: model name →
    ``BranchMonitor.per_epoch()``): left, the gradient reaching the ViT's [CLS] feature per image
    (``vit_grad``, log scale); right, OGM-GE's ratio of the CLIP branch's contribution to the
    ViT's (``clip_over_vit``, concat models only; 1 = balanced)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, table in per_epoch.items():
        if table["vit_grad"].notna().any():
            axes[0].plot(table.index, table["vit_grad"], marker="o", ms=3, label=label)
        if table["clip_over_vit"].notna().any():
            axes[1].plot(table.index, table["clip_over_vit"], marker="o", ms=3, label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("‖∂ loss / ∂ ViT [CLS]‖ per image (log scale)")
    axes[0].set_title("gradient reaching the ViT branch")
    axes[1].axhline(1.0, ls="--", color="gray", lw=1, label="balanced (1)")
    axes[1].set_ylabel("CLIP contribution / ViT contribution")
    axes[1].set_title("imbalance ratio (OGM-GE), concat fusion")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, name)
    return fig
