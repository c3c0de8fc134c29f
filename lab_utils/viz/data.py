"""Figures of the data world: a sample grid (every class, both modalities) and class balance."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.splits import get_labels
from ..data.synthetic import EMOTIONS, THERMAL_RANGE_C

try:  # the lead's save_figure (outputs/<notebook>/<name>.png); without it the caller saves
    from .core import save_figure
except ImportError:  # pragma: no cover
    save_figure = None


def _first_per_class(labels: np.ndarray, per_class: int, num_classes: int) -> list[list[int]]:
    return [np.flatnonzero(labels == c)[:per_class].tolist() for c in range(num_classes)]


def plot_sample_grid(dataset: Dataset, per_class: int = 2, classes: Sequence[str] = EMOTIONS,
                     title: str = "Synthetic faces: RGB and thermal, every class",
                     name: str | None = "sample_grid", size: float = 1.5) -> plt.Figure:
    """One column per class; for each of ``per_class`` examples an RGB row and a thermal row
    (°C colour bar). ``dataset`` items carry ``"rgb"`` (3,H,W) and optionally ``"thermal"``
    (1 or 3,H,W, [0, 1] scale of :data:`~lab_utils.data.THERMAL_RANGE_C`), or ``"image"``.
    Only the shown items are read (labels come from ``.labels`` when present)."""
    labels = get_labels(dataset)
    picks = _first_per_class(np.asarray(labels), per_class, len(classes))
    first = dataset[next(i for p in picks for i in p)]
    has_th = "thermal" in first
    rows_per = 2 if has_th else 1
    nrows, ncols = per_class * rows_per, len(classes)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + (1.0 if has_th else 0), size * nrows),
                             squeeze=False)
    lo, hi = THERMAL_RANGE_C
    im_th = None
    for c, idx in enumerate(picks):
        for k in range(per_class):
            ax_rgb = axes[k * rows_per, c]
            ax_th = axes[k * rows_per + 1, c] if has_th else None
            for ax in (ax_rgb, ax_th):
                if ax is not None:
                    ax.set_xticks([])
                    ax.set_yticks([])
            if k >= len(idx):
                continue
            item = dataset[idx[k]]
            img = item.get("rgb", item.get("image"))
            ax_rgb.imshow(img.detach().float().clamp(0, 1).permute(1, 2, 0).numpy())
            if k == 0:
                ax_rgb.set_title(classes[c], fontsize=9)
            if c == 0:
                ax_rgb.set_ylabel("RGB", fontsize=8)
            if has_th:
                th = item["thermal"][0].detach().float().numpy() * (hi - lo) + lo
                im_th = ax_th.imshow(th, cmap="inferno", vmin=lo + 6, vmax=hi - 2)
                if c == 0:
                    ax_th.set_ylabel("thermal", fontsize=8)
    if im_th is not None:
        cbar = fig.colorbar(im_th, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
        cbar.set_label("temperature (°C)")
    fig.suptitle(title)
    fig.supxlabel("expression class")
    if name and save_figure is not None:
        save_figure(fig, name)
    return fig


def plot_class_balance(splits: dict[str, Dataset] | Dataset, classes: Sequence[str] = EMOTIONS,
                       title: str = "Class balance", name: str | None = "class_balance") -> plt.Figure:
    """Grouped bars: number of items per class, one bar colour per split (``{name: dataset}``).
    Uses ``.labels`` when present, so nothing is rendered."""
    splits = splits if isinstance(splits, dict) else {"all": splits}
    fig, ax = plt.subplots(figsize=(1.0 * len(classes) + 2.5, 3.4))
    width = 0.8 / len(splits)
    x = np.arange(len(classes))
    for j, (split, ds) in enumerate(splits.items()):
        counts = np.bincount(np.asarray(get_labels(ds), dtype=np.int64), minlength=len(classes))
        ax.bar(x + (j - (len(splits) - 1) / 2) * width, counts, width, label=f"{split} (n={counts.sum()})")
    ax.set_xticks(x, classes, rotation=30)
    ax.set_xlabel("expression class")
    ax.set_ylabel("number of images")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    if name and save_figure is not None:
        save_figure(fig, name)
    return fig


def plot_thermal_profile(dataset: Dataset, classes: Sequence[str] = EMOTIONS,
                         title: str = "Mean thermal map per class (°C)",
                         name: str | None = "thermal_means", max_items: int = 700) -> plt.Figure:
    """Mean thermal map per class (first ``max_items`` items): shows where each expression
    warms or cools the face. Needs items with ``"thermal"``."""
    labels = np.asarray(get_labels(dataset))[:max_items]
    ths = torch.stack([dataset[i]["thermal"][0] for i in range(len(labels))]).numpy()
    lo, hi = THERMAL_RANGE_C
    ths = ths * (hi - lo) + lo
    fig, axes = plt.subplots(1, len(classes), figsize=(1.6 * len(classes) + 1, 2.0), squeeze=False)
    im = None
    for c, ax in enumerate(axes[0]):
        m = labels == c
        if m.any():
            im = ax.imshow(ths[m].mean(0), cmap="inferno", vmin=lo + 6, vmax=hi - 2)
        ax.set_title(classes[c], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01).set_label("temperature (°C)")
    fig.suptitle(title)
    if name and save_figure is not None:
        save_figure(fig, name)
    return fig
