"""Plots shared by every notebook: training curves, image grids, confusion matrices,
grouped bar charts, and ``save_figure``.

Each plotting function returns its ``Figure``, saves it as
``outputs/<notebook>/<name>.png`` (the notebook is the one given to ``setup_notebook``)
and leaves the display to the notebook (a figure left open is shown at the cell's end).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..paths import current_notebook, outputs_dir


def save_figure(fig: plt.Figure, name: str, notebook: str | None = None, dpi: int = 110) -> Path:
    """Save ``fig`` to ``outputs/<notebook>/<name>.png`` (stable names let an instructor
    compare students' figures); the notebook defaults to the one being run."""
    notebook = notebook or current_notebook() or "misc"
    path = outputs_dir(notebook) / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _to_image(img) -> np.ndarray:
    """(C,H,W) or (H,W,C) or (H,W) tensor/array → (H,W,C) / (H,W) float array for imshow
    (uint8 tensors, as the synthetic faces are stored, are scaled to [0, 1])."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu()
        img = (img.float() / 255.0 if img.dtype == torch.uint8 else img.float()).numpy()
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return img


def plot_history(history: pd.DataFrame | dict[str, pd.DataFrame],
                 metrics: Sequence[str] = ("train_loss", "val_loss"), title: str = "Training curves",
                 name: str = "training_curves", ylabels: dict[str, str] | None = None,
                 mark_best: bool = True) -> plt.Figure:
    """One panel per metric, x = epoch. ``history`` is ``fit``'s DataFrame, or a dict
    ``{run name: DataFrame}`` to compare runs. The best epoch (early stopping's choice) is
    marked with a dashed line and the stopping epoch with a cross."""
    runs = history if isinstance(history, dict) else {"": history}
    metrics = [m for m in metrics if any(m in h.columns for h in runs.values())]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, h in runs.items():
            if metric not in h.columns:
                continue
            line, = ax.plot(h["epoch"], h[metric], marker="o", ms=3, label=label or metric)
            best = h.attrs.get("best_epoch")
            if mark_best and best is not None and metric == h.attrs.get("metric"):
                ax.axvline(best, ls="--", lw=1, color=line.get_color(), alpha=0.7)
            stopped = h.attrs.get("stopped_epoch")
            if stopped is not None:
                ax.plot([stopped], [h.loc[h["epoch"] == stopped, metric].iloc[0]], "x",
                        color=line.get_color(), ms=9, mew=2)
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel((ylabels or {}).get(metric, metric.replace("_", " ")))
        ax.grid(alpha=0.3)
        if len(runs) > 1 or metric == metrics[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title + ("  (dashed: best epoch, ×: early stop)" if mark_best else ""))
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 8,
               title: str = "", name: str | None = None, cmap: str | None = None,
               size: float = 1.6, vmin: float | None = None, vmax: float | None = None) -> plt.Figure:
    """Show images (tensors (C,H,W) in [0,1], arrays, or PIL images) in a grid with
    optional per-image titles; saved when ``name`` is given."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = _to_image(images[i])
        ax.imshow(np.clip(img, 0, 1) if img.ndim == 3 and vmin is None else img,
                  cmap=cmap or ("gray" if img.ndim == 2 else None), vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if name:
        save_figure(fig, name)
    return fig


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], title: str = "Confusion matrix",
                          name: str = "confusion_matrix", normalize: bool = True,
                          ax: plt.Axes | None = None) -> plt.Figure:
    """Heatmap of a confusion matrix (rows true, columns predicted), row-normalised by
    default, with the value in each cell."""
    cm = np.asarray(cm, dtype=float)
    if normalize:
        cm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(0.65 * len(class_names) + 2.2, 0.6 * len(class_names) + 1.6))
    else:
        fig = ax.figure
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=7,
                color="white" if v > (0.5 if normalize else cm.max() / 2) else "black")
    if own:
        fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class" if normalize else "count")
        fig.tight_layout()
        save_figure(fig, name)
    return fig


def interval_errors(table: pd.DataFrame, metric: str) -> np.ndarray | None:
    """``(2, N)`` distances from each value of ``table[metric]`` down to ``<metric>_low`` and up
    to ``<metric>_high`` (matplotlib's ``yerr``), or ``None`` when the table has no interval."""
    low, high = f"{metric}_low", f"{metric}_high"
    if low not in table or high not in table:
        return None
    values = table[metric].to_numpy(float)
    return np.clip(np.stack([values - table[low].to_numpy(float), table[high].to_numpy(float) - values]), 0, None)


def grouped_bars(table: pd.DataFrame, metrics: Sequence[str], title: str, name: str,
                 ylabel: str = "score", errors: pd.DataFrame | None = None,
                 reference: dict[str, float] | None = None, ylim: tuple[float, float] | None = (0, 1)) -> plt.Figure:
    """Grouped bar chart: one group per row of ``table`` (its index = model names), one
    bar per metric column; ``errors`` (same shape) draws ± error bars, else a metric's
    ``<metric>_low`` / ``<metric>_high`` columns, when ``table`` has them, draw its interval
    (``metrics.score_intervals``); ``reference`` draws horizontal lines named in the legend,
    which sits outside the axes so that nothing covers a bar (e.g. ``{"chance": 1/7}``)."""
    x = np.arange(len(table))
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(table) + 2), 3.8))
    for i, metric in enumerate(metrics):
        err = errors[metric].values if errors is not None else interval_errors(table, metric)
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * width, table[metric].values, width,
                      yerr=err, capsize=3, label=metric.replace("_", " "))
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    for (label, value), style in zip((reference or {}).items(), ("--", ":", "-.")):
        ax.axhline(value, ls=style, color="gray", lw=1, label=label)   # named in the legend: no text over the bars
    ax.set_xticks(x, [str(i) for i in table.index], rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, name)
    return fig


def plot_shares_per_class(per_class: pd.DataFrame, title: str, name: str, xlabel: str,
                          legend_suffix: str = "") -> plt.Figure:
    """Stacked horizontal bars: for each class (rows of ``per_class``) the mean share of
    each source (columns, e.g. ``RGB``/``thermal`` or ``ViT``/``CLIP``; rows sum to 1).
    Used for the attention that a fusion layer pays to each input, per class."""
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(per_class) + 1.5))
    left = np.zeros(len(per_class))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, col in enumerate(per_class.columns):
        vals = per_class[col].values
        bars = ax.barh(np.arange(len(per_class)), vals, left=left, color=colors[i % len(colors)],
                       label=f"{col}{legend_suffix}")
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], label_type="center", fontsize=7, color="white")
        left = left + vals
    ax.axvline(0.5, ls="--", color="gray", lw=1)
    ax.set_yticks(np.arange(len(per_class)), [str(i) for i in per_class.index])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.08), ncol=len(per_class.columns))
    fig.tight_layout()
    save_figure(fig, name)
    return fig
