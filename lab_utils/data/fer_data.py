"""Data for notebooks 04-05: FER2013 or the paired RGB-thermal folders when they are there,
the synthetic faces otherwise, split and batched for ``lab_utils.training.fit``.

* ``load_fer_splits`` / ``load_fusion_splits`` — ``{"train", "val", "test"}`` datasets and a
  description of what was loaded;
* ``make_loaders`` — batches: whole tensors (``TensorBatches``) for small synthetic data or
  data read once into memory, ``DataLoader`` otherwise;
* ``ItemImages`` — a dataset's images back in [0, 1] for display.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from .loaders import load_fer2013, load_paired_rgbt
from .splits import LabeledSubset, subject_split
from .synthetic import SynthFER
from .transforms import NORMALIZATION, get_paired_transforms, get_transforms

class TensorBatches:
    """Mini-batches of dict-of-tensors data without a DataLoader's per-item overhead.

    ``TensorBatches({"rgb": (N, 3, S, S), "label": (N,)}, batch_size=64, shuffle=True)``
    yields dicts of slices; the order of epoch e comes from torch's global RNG, which
    ``fit`` reseeds per epoch (exact resumes). Tensors stored as float16 (half the host
    memory) come out as float32.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor], batch_size: int = 64, shuffle: bool = False):
        sizes = {k: len(v) for k, v in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all tensors need the same first dimension, got {sizes}")
        self.tensors, self.batch_size, self.shuffle = dict(tensors), int(batch_size), shuffle
        self.n = next(iter(sizes.values()))

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = torch.randperm(self.n) if self.shuffle else torch.arange(self.n)
        for a in range(0, self.n, self.batch_size):
            idx = order[a:a + self.batch_size]
            yield {k: v[idx].float() if v.dtype == torch.float16 else v[idx]      # stored half: float32 out
                   for k, v in self.tensors.items()}


VIT_MEAN, VIT_STD = NORMALIZATION["vit"][0][0], NORMALIZATION["vit"][1][0]   # 0.5, 0.5: (x - 0.5) / 0.5
_TENSOR_MAX_SIZE = 64          # synthetic data up to this size is held as whole tensors


def normalize_item(item: dict) -> dict:
    """ViT normalisation of an item's ``rgb`` / ``thermal`` images in [0, 1] → [-1, 1]."""
    item = dict(item)
    for key in ("rgb", "thermal"):
        if key in item:
            item[key] = (item[key] - VIT_MEAN) / VIT_STD
    return item


def load_fer_splits(source: str, path: str, image_size: int, num_samples: int, seed: int = 0,
                    data_seed: int = 0) -> tuple[dict, str]:
    """``({"train", "val", "test"}: datasets, description)`` for notebook 04.

    ``source="fer2013"``: ``load_fer2013(path)`` resized to ``image_size``, gray → 3 channels,
    ViT-normalised; the CSV's PublicTest is the validation set and PrivateTest the test set
    (the folder release has no validation split: 10 % of train, seeded). If FER2013 is not
    there, the message says how to get it and the synthetic faces at ``image_size`` are used.
    ``source="synthetic"``: ``SynthFER(num_samples, image_size, seed=data_seed)`` split by subject.
    """
    if source == "fer2013":
        try:
            data = load_fer2013(path, transform=get_transforms("vit", image_size))
        except FileNotFoundError as err:
            print(f"{err}\n→ Using the synthetic faces at {image_size} px instead, so the notebook still runs.")
        else:
            if "Training" in data:
                return ({"train": data["Training"], "val": data["PublicTest"], "test": data["PrivateTest"]},
                        "FER2013 (CSV): Training / PublicTest (validation) / PrivateTest (test)")
            order = np.random.default_rng(seed).permutation(len(data["train"]))
            k = len(order) // 10
            return ({"train": LabeledSubset(data["train"], sorted(order[k:].tolist())),
                     "val": LabeledSubset(data["train"], sorted(order[:k].tolist())), "test": data["test"]},
                    "FER2013 (folders): train minus 10 % / 10 % of train (validation) / test")
    faces = SynthFER(num_samples, image_size, seed=data_seed,
                     transform=normalize_item if image_size > _TENSOR_MAX_SIZE else None)
    return (dict(zip(("train", "val", "test"), subject_split(faces, seed=seed))),
            f"synthetic faces ({image_size} px), split by subject")


def load_fusion_splits(source: str, path: str, image_size: int, num_samples: int, seed: int = 0,
                       data_seed: int = 0) -> tuple[dict, str]:
    """``({"train", "val", "test"}: datasets, description)`` for notebook 05: paired RGB +
    thermal items (thermal repeated to 3 channels). ``source="paired"``: ``load_paired_rgbt(path)``
    (subject-disjoint when file names carry subject ids), ViT-normalised; if the folders are
    missing, the message says what to do and the synthetic pairs at ``image_size`` are used."""
    if source == "paired":
        try:
            tf = get_paired_transforms("vit", image_size, train=False, thermal_channels=3)
            splits = load_paired_rgbt(path, image_size=image_size, seed=seed, thermal_channels=3,
                                      transforms={"train": tf, "val": tf, "test": tf})
        except FileNotFoundError as err:
            print(f"{err}\n→ Using the synthetic RGB + thermal faces at {image_size} px instead.")
        else:
            return splits, "paired RGB-thermal folders"
    faces = SynthFER(num_samples, image_size, seed=data_seed, thermal_channels=3,
                     transform=normalize_item if image_size > _TENSOR_MAX_SIZE else None)
    return (dict(zip(("train", "val", "test"), subject_split(faces, seed=seed))),
            f"synthetic RGB + thermal faces ({image_size} px), split by subject")


def read_into_memory(dataset: Any, num_workers: int = 0, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Every item of ``dataset`` read once: ``{key: (N, …) tensor}`` for its tensor / number
    keys (``rgb``, ``thermal``, ``label`` …); float images stored as float16 (half the host
    memory: 5,000 RGB-thermal pairs at 112 px take 0.75 GB)."""
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                parts.setdefault(key, []).append(value.half() if value.is_floating_point() else value)
    return {key: torch.cat(values) for key, values in parts.items()}


def make_loaders(splits: Mapping[str, Any], batch_size: int, eval_batch_size: int = 256,
                 num_workers: int = 0, in_memory: bool = False, shuffle: bool = True) -> dict[str, Any]:
    """Batches for ``fit``: small synthetic data as whole normalised tensors
    (``TensorBatches``, no per-item work); anything else through a ``DataLoader`` or, with
    ``in_memory=True``, read once (``read_into_memory``) and served as ``TensorBatches`` —
    for data that is read many times (notebook 05 trains seven models on the same pairs)
    instead of decoding every image file again in every epoch. The ``"train"`` split is
    shuffled each epoch unless ``shuffle=False`` (every item once, in order)."""
    def sizes(name: str) -> dict[str, Any]:
        return {"batch_size": batch_size if name == "train" else eval_batch_size, "shuffle": shuffle and name == "train"}

    base = splits["train"].dataset if isinstance(splits["train"], Subset) else None
    if isinstance(base, SynthFER) and base.image_size <= _TENSOR_MAX_SIZE and all(
            isinstance(s, Subset) and s.dataset is base for s in splits.values()):
        t = base.tensors()
        out = {}
        for name, sub in splits.items():
            idx = torch.as_tensor(sub.indices, dtype=torch.long)
            data = normalize_item({"rgb": t["rgb"][idx], "thermal": t["thermal"][idx]})
            data["label"] = t["label"][idx]
            out[name] = TensorBatches(data, **sizes(name))
        return out
    if in_memory:
        return {name: TensorBatches(read_into_memory(ds, num_workers), **sizes(name)) for name, ds in splits.items()}
    return {name: DataLoader(ds, **sizes(name), num_workers=num_workers, persistent_workers=num_workers > 0)
            for name, ds in splits.items()}


class ItemImages:
    """``images[i]`` = item ``i``'s ``key`` image of a dataset, back in [0, 1] for display
    (reads only the items asked for)."""

    def __init__(self, dataset: Any, key: str = "rgb", normalized: bool | None = None):
        self.dataset, self.key = dataset, key
        self.normalized = normalized

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.dataset[int(i)][self.key]
        normalized = self.normalized if self.normalized is not None else bool(x.min() < 0)
        return (x * VIT_STD + VIT_MEAN).clamp(0, 1) if normalized else x
