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


def classification_summary(y_true, y_pred, num_classes: int) -> dict[str, float]:
    """``{"accuracy": …, "f1_macro": …}`` in one call."""
    return {"accuracy": accuracy(y_true, y_pred), "f1_macro": macro_f1(y_true, y_pred, num_classes)}


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
