"""Subject-disjoint splits: no person appears in two of train / val / test.

A model that has seen a subject's face in training recognises the *person* on the test
set, not the expression; splitting by subject measures what we care about.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from torch.utils.data import Dataset, Subset


class LabeledSubset(Subset):
    """A ``torch.utils.data.Subset`` that also exposes ``.labels`` and ``.subjects`` of its
    items (numpy arrays, cheap: nothing is rendered or read)."""

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(get_labels(self.dataset))[np.asarray(self.indices, dtype=np.int64)]

    @property
    def subjects(self) -> np.ndarray:
        return np.asarray(get_subjects(self.dataset))[np.asarray(self.indices, dtype=np.int64)]

    @property
    def classes(self):
        return getattr(self.dataset, "classes", None)


def _per_item(dataset: Dataset, attr: str, key: str) -> np.ndarray:
    if isinstance(dataset, Subset):
        return _per_item(dataset.dataset, attr, key)[np.asarray(dataset.indices, dtype=np.int64)]
    values = getattr(dataset, attr, None)
    if values is not None:
        return np.asarray(values)
    # slow fallback: read every item (renders / loads images)
    out = []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, dict) or key not in item:
            raise TypeError(f"{type(dataset).__name__} has no `.{attr}` array and its items have no "
                            f"{key!r} key; give the dataset a `.{attr}` attribute (one value per item)")
        out.append(item[key])
    return np.asarray(out)


def get_subjects(dataset: Dataset) -> np.ndarray:
    """Subject id of every item: ``dataset.subjects`` if present (Subsets are followed), else
    each item's ``"subject"`` (slow: reads every item)."""
    return _per_item(dataset, "subjects", "subject")


def people_of(dataset: Dataset) -> np.ndarray | None:
    """The person of every item, for resampling test people (``metrics.resample_people``): the
    ``.subjects`` array (Subsets followed; nothing is read or rendered), an item with an unknown
    subject (``-1``) counted as a person of its own; ``None`` when the data set keeps no subject
    ids at all (FER2013) — then its items are resampled one by one."""
    if isinstance(dataset, Subset):
        inner = people_of(dataset.dataset)
        return None if inner is None else inner[np.asarray(dataset.indices, dtype=np.int64)]
    subjects = getattr(dataset, "subjects", None)
    if subjects is None:
        return None
    subjects = np.asarray(subjects, dtype=np.int64).copy()
    unknown = subjects < 0
    if unknown.all():
        return None
    subjects[unknown] = subjects.max() + 1 + np.arange(int(unknown.sum()))
    return subjects


def get_labels(dataset: Dataset) -> np.ndarray:
    """Label of every item: ``dataset.labels`` if present, else each item's ``"label"``."""
    return _per_item(dataset, "labels", "label")


def subject_split(dataset: Dataset, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> tuple[LabeledSubset, ...]:
    """Split ``dataset`` into ``(train, val, test)`` subsets with no subject in two of them.

    Subjects are shuffled (``seed``) and dealt out until each split holds about its fraction
    of the *items*; every item lands in exactly one split (indices sorted). Works on any
    dataset with a ``.subjects`` array or items carrying ``"subject"``. Any number of
    fractions (summing to 1) gives that many subsets.
    """
    fr = np.asarray(fractions, dtype=float)
    if fr.ndim != 1 or len(fr) < 2 or (fr < 0).any() or abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must be ≥ 2 non-negative numbers summing to 1, got {tuple(fractions)}; "
                         f"e.g. (0.7, 0.15, 0.15) for train/val/test")
    subjects = get_subjects(dataset)
    uniq, inverse, counts = np.unique(subjects, return_inverse=True, return_counts=True)
    if len(uniq) < int((fr > 0).sum()):
        raise ValueError(f"only {len(uniq)} distinct subject(s) for {int((fr > 0).sum())} non-empty splits: "
                         f"use more data or fewer splits")
    order = np.random.default_rng(seed).permutation(len(uniq))
    cum_items = np.cumsum(counts[order])
    bounds = np.cumsum(fr)[:-1] * len(subjects)
    # split k gets the subjects whose cumulative item count ends in its share
    which = np.searchsorted(bounds, cum_items - counts[order] / 2.0)
    # make sure every split with a positive fraction owns at least one subject
    for k in np.flatnonzero(fr > 0):
        if not (which == k).any():
            donor = np.bincount(which, minlength=len(fr)).argmax()
            pos = np.flatnonzero(which == donor)
            which[pos[0] if k < donor else pos[-1]] = k
    split_of_subject = np.empty(len(uniq), dtype=np.int64)
    split_of_subject[order] = which
    item_split = split_of_subject[inverse]
    return tuple(LabeledSubset(dataset, np.flatnonzero(item_split == k).tolist()) for k in range(len(fr)))


def check_subject_leakage(splits: dict[str, Dataset] | Sequence[Dataset]) -> dict[int | str, list[str]]:
    """Subjects that appear in more than one split: ``{subject: [split names]}`` (empty = no leak).

    ``splits`` is a dict ``{name: dataset}`` or a sequence (named ``"0"``, ``"1"``, …).
    Items whose subject is ``-1`` / ``None`` (unknown) are ignored.
    """
    named = splits if isinstance(splits, dict) else {str(i): d for i, d in enumerate(splits)}
    seen: dict = {}
    for name, ds in named.items():
        for s in set(get_subjects(ds).tolist()):
            if s is None or s == -1:
                continue
            seen.setdefault(s, []).append(name)
    return {s: names for s, names in seen.items() if len(names) > 1}


def assert_no_subject_leakage(splits: dict[str, Dataset] | Sequence[Dataset]) -> None:
    """Raise ``ValueError`` naming the subjects found in two splits (see :func:`check_subject_leakage`)."""
    leaks = check_subject_leakage(splits)
    if leaks:
        shown = ", ".join(f"{s} in {'+'.join(v)}" for s, v in list(leaks.items())[:10])
        raise ValueError(f"subject leakage: {len(leaks)} subject(s) appear in more than one split ({shown}). "
                         f"Split with lab_utils.data.subject_split so that a person is in one split only.")


