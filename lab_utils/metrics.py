"""Classification and retrieval metrics (scikit-learn underneath where it has them).

Inputs are array-likes or tensors of integer labels ``(N,)``; ``recall_at_k`` takes
embeddings, ``calibration_table`` class probabilities ``(N, C)`` (its ``attrs["ece"]`` is the
expected calibration error).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the labels."""
    return float(skm.accuracy_score(_np(y_true), _np(y_pred)))


def macro_f1(y_true, y_pred, num_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 (a class never predicted nor present scores 0 only
    when listed through ``num_classes``)."""
    labels = list(range(num_classes)) if num_classes else None
    return float(skm.f1_score(_np(y_true), _np(y_pred), average="macro", labels=labels, zero_division=0))


def per_class_f1(y_true, y_pred, num_classes: int) -> np.ndarray:
    """F1 of each class ``0..num_classes-1`` → array ``(num_classes,)``."""
    return skm.f1_score(_np(y_true), _np(y_pred), average=None, labels=list(range(num_classes)), zero_division=0)


def confusion(y_true, y_pred, num_classes: int, normalize: str | None = None) -> np.ndarray:
    """Confusion matrix ``(num_classes, num_classes)``; rows = true class, columns = predicted.
    ``normalize="true"`` gives per-row fractions."""
    return skm.confusion_matrix(_np(y_true), _np(y_pred), labels=list(range(num_classes)), normalize=normalize)


def recall_at_k(image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                text_to_image: Sequence[int] | torch.Tensor,
                ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[int, float]]:
    """Retrieval Recall@K in both directions.

    Args:
        image_embeds: (N_img, D) L2-normalised image embeddings.
        text_embeds: (N_txt, D) L2-normalised caption embeddings.
        text_to_image: (N_txt,) index of each caption's image.
        ks: the K values.

    Returns:
        ``{"image_to_text": {k: r}, "text_to_image": {k: r}}`` with r in [0, 1]. An image
        query is correct at K when any of its captions is among its K most similar
        captions; a caption query when its image is among its K most similar images.
    """
    t2i = torch.as_tensor(text_to_image, dtype=torch.long, device=text_embeds.device)
    if t2i.shape[0] != text_embeds.shape[0]:
        raise ValueError(f"text_to_image has {t2i.shape[0]} entries for {text_embeds.shape[0]} captions")
    if image_embeds.shape[1] != text_embeds.shape[1]:
        raise ValueError(f"embedding sizes differ: images {image_embeds.shape[1]}, texts {text_embeds.shape[1]}")
    sims = image_embeds.float() @ text_embeds.float().t()   # (N_img, N_txt)
    n_img, n_txt = sims.shape
    out: dict[str, dict[int, float]] = {"image_to_text": {}, "text_to_image": {}}
    # rank of the best-ranked correct caption for each image (0 = top)
    order_i2t = sims.argsort(dim=1, descending=True)                     # (N_img, N_txt)
    correct = t2i[order_i2t] == torch.arange(n_img, device=sims.device)[:, None]
    first_hit = torch.where(correct.any(1), correct.float().argmax(1), torch.full((n_img,), n_txt, device=sims.device))
    # rank of each caption's image among all images
    order_t2i = sims.t().argsort(dim=1, descending=True)                 # (N_txt, N_img)
    rank_t2i = (order_t2i == t2i[:, None]).float().argmax(1)
    for k in ks:
        out["image_to_text"][k] = float((first_hit < k).float().mean())
        out["text_to_image"][k] = float((rank_t2i < k).float().mean())
    return out


def calibration_table(probs, labels, n_bins: int = 10) -> pd.DataFrame:
    """Reliability bins of the top-class confidence: per bin ``count``, mean ``confidence``
    and ``accuracy``; ``.attrs["ece"]`` = expected calibration error (count-weighted mean
    of |accuracy − confidence|)."""
    probs, labels = _np(probs), _np(labels)
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        sel = which == b
        rows.append({"low": edges[b], "high": edges[b + 1], "count": int(sel.sum()),
                     "confidence": float(conf[sel].mean()) if sel.any() else np.nan,
                     "accuracy": float((pred[sel] == labels[sel]).mean()) if sel.any() else np.nan})
    table = pd.DataFrame(rows)
    used = table["count"] > 0
    gaps = (table.loc[used, "accuracy"] - table.loc[used, "confidence"]).abs()
    table.attrs["ece"] = float((gaps * table.loc[used, "count"]).sum() / max(len(labels), 1))
    return table


def pinned_share(weights, level: float = 0.9) -> float:
    """Share of the rows of a ``(N, M)`` weight matrix (each row sums to 1: an attention
    fusion's weights over ``M`` modalities or branches, one row per example) whose largest
    weight is ≥ ``level``: how many examples the fusion hands to one input alone. Near 1, the
    fusion has collapsed onto one modality; a weight can only get there through a softmax
    whose slope ``w · (1 − w)`` is then nearly 0, so it rarely comes back."""
    w = _np(weights)
    if w.ndim != 2 or not np.allclose(w.sum(1), 1.0, atol=1e-4):
        raise ValueError(f"pinned_share expects (N, M) weights whose rows sum to 1, got shape {w.shape}")
    return float((w.max(1) >= level).mean()) if len(w) else 0.0


def top_confusions(cm, names: Sequence[str], k: int = 3) -> list[str]:
    """The ``k`` largest off-diagonal rates of a confusion matrix ``cm`` (rows = true class),
    each row normalised: ``["fear → surprise (0.38)", …]``, largest first. A class with no
    example (an empty row) contributes nothing."""
    cm = _np(cm).astype(float)
    totals = cm.sum(1, keepdims=True)
    rates = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    pairs = [(rates[i, j], f"{names[i]} → {names[j]}") for i in range(len(cm)) for j in range(len(cm)) if i != j]
    return [f"{name} ({rate:.2f})" for rate, name in sorted(pairs, key=lambda p: -p[0])[:k]]


def neighbour_agreement(features, groups, k: int = 10) -> float:
    """Share of each example's ``k`` nearest neighbours (Euclidean, in ``features`` ``(N, D)``,
    itself left out) that belong to its own group (``groups`` ``(N,)``: a class, a person),
    averaged over the examples. What a t-SNE map suggests by eye, measured in the features
    themselves; a random arrangement gives about the share of the group in the data."""
    from sklearn.neighbors import NearestNeighbors

    x, g = _np(features).astype(np.float64), _np(groups)
    if len(x) != len(g) or len(x) <= k:
        raise ValueError(f"neighbour_agreement needs more than k={k} examples and one group per example; "
                         f"got {len(x)} feature rows and {len(g)} groups")
    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    return float((g[idx] == g[:, None]).mean())


def bootstrap_ci(y_true, y_pred, metric: str = "f1_macro", num_classes: int | None = None,
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a test metric over the test examples: ``n_boot``
    resamples of the ``N`` (label, prediction) pairs, drawn with replacement, and the metric
    (``"accuracy"`` or ``"f1_macro"``, as ``accuracy`` / ``macro_f1`` with ``num_classes``) of
    each; returns the ``(1 − level) / 2`` and ``(1 + level) / 2`` quantiles.

    It says how much the number would move with other test images of the same kind — not with
    another seed or machine. Uses its own NumPy generator (``seed``): torch's random stream is
    left alone."""
    if metric not in ("accuracy", "f1_macro"):
        raise ValueError(f"bootstrap_ci: metric {metric!r} is not supported. Allowed: 'accuracy', 'f1_macro'")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_ci: level {level} must be between 0 and 1 (e.g. 0.95)")
    t, p = _np(y_true).astype(np.int64).ravel(), _np(y_pred).astype(np.int64).ravel()
    if len(t) != len(p) or not len(t):
        raise ValueError(f"bootstrap_ci needs as many predictions as labels, at least one: got {len(t)} and {len(p)}")
    c = int(num_classes or max(t.max(), p.max()) + 1)
    idx = np.random.default_rng(seed).integers(0, len(t), size=(n_boot, len(t)))
    if metric == "accuracy":
        values = (t[idx] == p[idx]).mean(1)
    else:   # one confusion matrix per resample, from a single bincount
        keys = (np.arange(n_boot)[:, None] * c * c + t[idx] * c + p[idx]).ravel()
        cm = np.bincount(keys, minlength=n_boot * c * c).reshape(n_boot, c, c)
        tp = np.diagonal(cm, axis1=1, axis2=2)
        denom = cm.sum(1) + cm.sum(2)                     # 2·tp + fp + fn
        values = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean(1)
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def score_intervals(y_true, y_pred, num_classes: int, level: float = 0.95, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, float]:
    """``{"accuracy_low", "accuracy_high", "f1_macro_low", "f1_macro_high"}``: the
    ``bootstrap_ci`` of both test metrics, as columns for a results table (the lab's bar charts
    draw them as error bars)."""
    out = {}
    for metric in ("accuracy", "f1_macro"):
        out[f"{metric}_low"], out[f"{metric}_high"] = bootstrap_ci(y_true, y_pred, metric, num_classes, n_boot,
                                                                   level, seed)
    return out


def fit_temperature(logits, labels, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature scaling (Guo et al. 2017): the ``T`` in ``bounds`` that minimises the
    cross-entropy of ``softmax(logits / T)`` against ``labels`` — fit it on *validation*
    predictions, then divide the test logits by it. ``T > 1``: the model was over-confident.
    One number for all classes, so the predicted class (the argmax) never changes, only how
    sure the model says it is. Deterministic (a bounded 1-D search, SciPy)."""
    from scipy.optimize import minimize_scalar

    z = torch.as_tensor(_np(logits), dtype=torch.float64)
    y = torch.as_tensor(_np(labels), dtype=torch.int64)
    if z.ndim != 2 or len(z) != len(y) or not len(y):
        raise ValueError(f"fit_temperature expects (N, C) logits and N labels, N ≥ 1: got {tuple(z.shape)} and {len(y)}")

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / np.exp(log_t), y))

    found = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                            options={"xatol": 1e-6})
    return float(np.exp(found.x))
