"""Plots of notebooks 04 (ViT fine-tuning for FER) and 05 (RGB + thermal fusion).

Each function returns its ``Figure`` and saves it as ``outputs/<notebook>/<name>.png``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..metrics import calibration_table  # noqa: F401  (re-exported: lab_utils.viz.calibration_table)
from .core import _to_image, plot_shares_per_class, plot_confusion_matrix, save_figure


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_lr_schedule(table: pd.DataFrame, name: str = "lr_schedule", warmup_steps: int | None = None,
                     title: str = "Learning rate per parameter group: warm-up, then cosine") -> plt.Figure:
    """One line per parameter group (columns of ``table``, index = optimizer step), on a
    linear and a log axis; the end of the warm-up is marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, log in zip(axes, (False, True)):
        for col in table.columns:
            ax.plot(table.index, table[col], label=f"{col} group")
        if warmup_steps:
            ax.axvline(warmup_steps, ls="--", color="gray", lw=1, label="end of warm-up")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("learning rate" + (" (log scale)" if log else ""))
        if log:
            ax.set_yscale("log")
        ax.set_title("log scale: the two groups stay 10× apart" if log else "linear scale")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_per_class_f1(scores: Mapping[str, Sequence[float]], class_names: Sequence[str],
                      name: str = "per_class_f1", title: str = "F1 per class on the test set") -> plt.Figure:
    """Grouped bars: x = class, one bar per model (``{model: (C,) F1 scores}``)."""
    x = np.arange(len(class_names))
    width = 0.8 / len(scores)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(class_names) + 0.5 * len(scores)), 3.6))
    for i, (model, vals) in enumerate(scores.items()):
        ax.bar(x + (i - (len(scores) - 1) / 2) * width, _np(vals), width, label=model)
    ax.set_xticks(x, class_names, rotation=20, ha="right")
    ax.set_xlabel("true class")
    ax.set_ylabel("F1 (fraction)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(scores), 4), loc="upper left")
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_misclassified(images: torch.Tensor, labels, preds, probs, class_names: Sequence[str],
                       n: int = 16, ncols: int = 8, name: str = "misclassified",
                       title: str = "Misclassified test faces (true → predicted, confidence)") -> plt.Figure:
    """Up to ``n`` misclassified images, most confident mistakes first, titled
    ``true → predicted (p)``. ``images`` (N, C, H, W) in [0, 1]; ``probs`` (N, num_classes)."""
    labels, preds, probs = _np(labels), _np(preds), _np(probs)
    wrong = np.flatnonzero(labels != preds)
    conf = probs[wrong, preds[wrong]]
    pick = wrong[np.argsort(-conf, kind="stable")][:n]
    ncols = max(1, min(ncols, len(pick)))
    nrows = max(1, int(np.ceil(len(pick) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 1.65 * nrows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, pick):
        img = _to_image(images[i])
        ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None)
        ax.set_title(f"{class_names[labels[i]]} → {class_names[preds[i]]}\n({probs[i, preds[i]]:.2f})", fontsize=7)
    fig.suptitle(title if len(pick) else "No misclassified test faces")
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_reliability(probs: Mapping[str, object] | object, labels, n_bins: int = 10,
                     name: str = "reliability", title: str = "Reliability diagram (calibration)") -> plt.Figure:
    """Accuracy vs confidence per bin (diagonal = perfectly calibrated), one line per model
    (``{model: (N, C) probabilities}`` or one array), with the ECE in the legend, and a
    histogram of the confidences underneath."""
    runs = probs if isinstance(probs, Mapping) else {"model": probs}
    fig, (ax, hx) = plt.subplots(2, 1, figsize=(5.2, 5.6), gridspec_kw={"height_ratios": [3, 1.2]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
    for label, p in runs.items():
        table = calibration_table(p, labels, n_bins)
        used = table["count"] > 0
        ax.plot(table.loc[used, "confidence"], table.loc[used, "accuracy"], marker="o", ms=4,
                label=f"{label} (ECE {table.attrs['ece']:.3f})")
        hx.hist(_np(p).max(1), bins=np.linspace(0, 1, n_bins + 1), alpha=0.5, label=label)
    ax.set_ylabel("accuracy in bin (fraction)")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    hx.set_xlabel("confidence of the predicted class (probability)")
    hx.set_ylabel("images (count)")
    hx.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_confusion_grid(cms: Mapping[str, np.ndarray], class_names: Sequence[str], ncols: int = 4,
                        name: str = "confusion_matrices",
                        title: str = "Confusion matrices on held-out subjects (rows: true, row-normalised)") -> plt.Figure:
    """Row-normalised confusion matrices side by side, one panel per model."""
    n = len(cms)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    side = 0.42 * len(class_names) + 1.2
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols, side * nrows + 0.5), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (label, cm) in zip(axes.flat, cms.items()):
        plot_confusion_matrix(cm, class_names, title=label, ax=ax)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_modality_weights(per_class: pd.DataFrame, name: str = "modality_attention",
                          title: str = "Attention fusion: weight given to each modality, per class") -> plt.Figure:
    """Stacked horizontal bars: per class (rows), the mean weight of each modality
    (columns, e.g. ``RGB`` and ``thermal``; each row sums to 1)."""
    return plot_shares_per_class(per_class, title, name,
                                 xlabel="mean attention weight (fraction, averaged over heads and test images)",
                                 legend_suffix="")


def plot_checkpointing(table: pd.DataFrame, name: str = "gradient_checkpointing",
                       title: str = "Gradient checkpointing: memory vs time per training step") -> plt.Figure:
    """Two panels from a table indexed by setting (e.g. ``off`` / ``on``) with columns
    ``activations_MB`` and ``step_ms``."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, col, label in ((axes[0], "activations_MB", "activations kept for backward (MiB)"),
                           (axes[1], "step_ms", "forward + backward time (ms)")):
        bars = ax.bar([str(i) for i in table.index], table[col].values, color=["tab:gray", "tab:green"][: len(table)])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_ylabel(label)
        ax.set_xlabel("gradient checkpointing")
        ax.set_ylim(0, table[col].max() * 1.2)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, name)
    return fig
