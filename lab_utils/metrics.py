"""Classification and retrieval metrics (scikit-learn underneath where it has them).

Inputs are array-likes or tensors of integer labels ``(N,)``; ``recall_at_k`` takes
embeddings, ``calibration_table`` class probabilities ``(N, C)`` (its ``attrs["ece"]`` is the
expected calibration error).
"""
from __future__ import annotations

from dataclasses import dataclass
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


METRICS = ("accuracy", "f1_macro", "mean")


def resample_people(groups, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``(n_boot, N)`` bootstrap weights that resample *people*, not items: each resample draws
    as many people as the test set has, with replacement, and every item of a person drawn
    ``k`` times counts ``k`` times (its weight). ``groups`` ``(N,)`` is each item's person (the
    split's subject ids); ``None`` makes every item its own person (the ordinary bootstrap).

    Faces of one person are not independent (the same face shape, skin, temperature), so an
    interval from resampled faces is too narrow; resampling people keeps each person's faces
    together, as a new test set of other people would. Draws with its own NumPy generator."""
    if groups is None:
        raise ValueError("resample_people needs one group per item; use np.arange(N) for independent items")
    _, person = np.unique(_np(groups), return_inverse=True)
    person = person.ravel()
    n_people = int(person.max()) + 1 if len(person) else 0
    if n_people < 2:
        raise ValueError(f"resample_people needs at least 2 people to resample; got {n_people}. An interval "
                         "over one person says nothing about other people: test on more subjects")
    draws = np.random.default_rng(seed).integers(0, n_people, size=(n_boot, n_people))
    counts = np.bincount((np.arange(n_boot)[:, None] * n_people + draws).ravel(),
                         minlength=n_boot * n_people).reshape(n_boot, n_people)   # times each person was drawn
    return counts[:, person].astype(np.float64)


def _weighted_scores(t, p, w: np.ndarray, metric: str, num_classes: int | None) -> np.ndarray:
    """The metric of each row of weights ``w`` ``(B, N)`` over the items (``t`` labels, ``p``
    predictions; for ``"mean"``, ``p`` holds one value per item and ``t`` is ignored)."""
    if metric == "mean":
        return (w * p).sum(1) / w.sum(1)
    if metric == "accuracy":
        return (w * (t == p)).sum(1) / w.sum(1)
    c = int(num_classes or max(t.max(), p.max()) + 1)          # one weighted confusion matrix per row
    keys = (np.arange(len(w))[:, None] * c * c + t * c + p).ravel()
    cm = np.bincount(keys, weights=w.ravel(), minlength=len(w) * c * c).reshape(len(w), c, c)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    denom = cm.sum(1) + cm.sum(2)                              # 2·tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0).mean(1)


def _resampling_inputs(name: str, y_true, preds: Sequence, metric: str, groups, level: float):
    if metric not in METRICS:
        raise ValueError(f"{name}: metric {metric!r} is not supported. Allowed: {', '.join(map(repr, METRICS))} "
                         "('mean' averages one value per item, e.g. a retrieval hit)")
    if not 0 < level < 1:
        raise ValueError(f"{name}: level {level} must be between 0 and 1 (e.g. 0.95)")
    kind = np.float64 if metric == "mean" else np.int64
    ps = [_np(p).astype(kind).ravel() for p in preds]
    t = ps[0] if metric == "mean" else _np(y_true).astype(np.int64).ravel()
    n = len(ps[0])
    if not n or any(len(p) != len(t) for p in ps):
        raise ValueError(f"{name} needs one prediction per label for every model, at least one: got "
                         f"{len(t)} labels and {[len(p) for p in ps]} predictions")
    g = np.arange(n) if groups is None else _np(groups).ravel()
    if len(g) != n:
        raise ValueError(f"{name}: groups must give one person per item: got {len(g)} for {n} items")
    return t, ps, g


def bootstrap_ci(y_true, y_pred, metric: str = "f1_macro", num_classes: int | None = None,
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0, groups=None) -> tuple[float, float]:
    """Percentile bootstrap interval of a test metric: ``n_boot`` resamples of the test set and
    the metric (``"accuracy"`` or ``"f1_macro"``, as ``accuracy`` / ``macro_f1`` with
    ``num_classes``; ``"mean"`` of per-item values in ``y_pred``) of each; returns the
    ``(1 − level) / 2`` and ``(1 + level) / 2`` quantiles.

    With ``groups`` (each item's person) the resamples draw people (``resample_people``);
    without, items. It says how much the number would move with another test set of the same
    kind — not with another seed or machine. Uses its own NumPy generator: torch's stream is
    left alone."""
    t, (p,), g = _resampling_inputs("bootstrap_ci", y_true, [y_pred], metric, groups, level)
    values = _weighted_scores(t, p, resample_people(g, n_boot, seed), metric, num_classes)
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def score_intervals(y_true, y_pred, num_classes: int, level: float = 0.95, n_boot: int = 1000,
                    seed: int = 0, groups=None) -> dict[str, float]:
    """``{"accuracy_low", "accuracy_high", "f1_macro_low", "f1_macro_high"}``: the
    ``bootstrap_ci`` of both test metrics (over the people in ``groups`` when given), as
    columns for a results table (the lab's bar charts draw them as error bars)."""
    out = {}
    for metric in ("accuracy", "f1_macro"):
        out[f"{metric}_low"], out[f"{metric}_high"] = bootstrap_ci(y_true, y_pred, metric, num_classes, n_boot,
                                                                   level, seed, groups)
    return out


@dataclass(frozen=True)
class PairedDifference:
    """``a`` − ``b`` on one test set: the ``difference`` of the metric and its ``level`` interval
    ``(low, high)`` from the same resamples for both models, over ``n_people`` resampled units
    (``unit``: "people" or "images"). ``verdict``: ``"a"`` or ``"b"`` when the interval
    excludes 0 (that model is ahead), ``"tie"`` when it does not."""

    a: str
    b: str
    metric: str
    difference: float
    low: float
    high: float
    n_people: int
    unit: str = "people"
    level: float = 0.95

    @property
    def verdict(self) -> str:
        return "a" if self.low > 0 else "b" if self.high < 0 else "tie"

    @property
    def apart(self) -> bool:
        """The interval excludes 0: this test set tells the two apart."""
        return self.verdict != "tie"

    def sentence(self, scale: float = 100.0, units: str = "points") -> str:
        """``a − b: +5.2 points (95 % CI +1.1 to +9.0 over 37 test people): this test set tells
        them apart, a ahead`` — the words follow the interval."""
        d, lo, hi = (scale * v for v in (self.difference, self.low, self.high))
        words = (f"this test set tells them apart, {self.a if self.verdict == 'a' else self.b} ahead"
                 if self.apart else "this test set cannot tell them apart")
        return (f"{self.a} − {self.b}, {METRIC_NAMES.get(self.metric, self.metric)}: {d:+.1f} {units} "
                f"({self.level:.0%} CI {lo:+.1f} to {hi:+.1f} over {self.n_people} test {self.unit}): {words}")


METRIC_NAMES = {"accuracy": "test accuracy", "f1_macro": "test macro-F1", "mean": "mean per item"}


def paired_difference(y_true, pred_a, pred_b, groups=None, metric: str = "f1_macro", num_classes: int | None = None,
                      names: tuple[str, str] = ("A", "B"), n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> PairedDifference:
    """Model A against model B on the same test set, *paired*: the metric of A minus that of B
    on each resample of the test set — the same resample for both — and the percentile interval
    of that difference. ``groups`` (each item's person) resamples people (``resample_people``);
    ``None``, items (a data set with no subject ids).

    Paired, because both models meet the same hard and easy faces: most of the spread of either
    score is shared, and only the difference's own spread matters. Two intervals that overlap
    can still belong to a difference whose interval excludes 0.

    Args:
        y_true: ``(N,)`` labels (ignored for ``metric="mean"``).
        pred_a, pred_b: ``(N,)`` predicted classes, or per-item values for ``"mean"``.
        names: what to call A and B in the sentence.
    """
    t, (pa, pb), g = _resampling_inputs("paired_difference", y_true, [pred_a, pred_b], metric, groups, level)
    everyone = np.ones((1, len(t)))
    w = resample_people(g, n_boot, seed)
    diffs = _weighted_scores(t, pa, w, metric, num_classes) - _weighted_scores(t, pb, w, metric, num_classes)
    point = float((_weighted_scores(t, pa, everyone, metric, num_classes)
                   - _weighted_scores(t, pb, everyone, metric, num_classes))[0])
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return PairedDifference(names[0], names[1], metric, point, float(low), float(high),
                            int(len(np.unique(g))), "images" if groups is None else "people", level)


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
