"""Data for notebooks 04-05: FER2013 or the paired RGB-thermal folders when they are there,
the synthetic faces otherwise, split and batched for ``lab_utils.training.fit``.

* ``load_fer_splits`` / ``load_fusion_splits`` — ``{"train", "val", "test"}`` datasets and a
  description of what was loaded;
* ``make_loaders`` — batches: whole tensors (``TensorBatches``) for small synthetic data, or
  each split's bytes read once (``stored_bytes``) and kept on the model's device, decoded
  batch by batch there (``decode_images``); a ``DataLoader`` otherwise;
* ``ItemImages`` — a dataset's images, one at a time, for display.

Images are pixels in [0, 1] everywhere here: the FER models normalise their input themselves
(``FERModel.preprocess``), as every model of the lab does.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from .loaders import FER2013, load_fer2013, load_paired_rgbt
from .splits import LabeledSubset, subject_split
from .synthetic import SynthFER
from .transforms import get_paired_transforms, get_transforms, to_pixels

class TensorBatches:
    """Mini-batches of dict-of-tensors data without a DataLoader's per-item overhead.

    ``TensorBatches({"rgb": (N, 3, S, S), "label": (N,)}, batch_size=64, shuffle=True)``
    yields dicts of slices; the order of epoch e comes from torch's global CPU RNG, which
    ``fit`` reseeds per epoch (exact resumes; the same order on any device).

    ``device``: the tensors move there once, and every batch is indexed there (on a GPU,
    nothing crosses the bus during an epoch). Images stored as bytes (uint8, ``(N, C, h, w)``,
    ``C`` = 1 for gray) are decoded batch by batch where they live (:func:`decode_images`:
    resized to ``image_size``, gray → 3 channels); images stored as float16
    come out as float32.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor], batch_size: int = 64, shuffle: bool = False,
                 image_size: int | None = None, device: torch.device | str | None = None):
        sizes = {k: len(v) for k, v in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all tensors need the same first dimension, got {sizes}")
        self.device = torch.device(device) if device is not None else None
        self.tensors = {k: v.to(self.device) if self.device is not None else v for k, v in tensors.items()}
        self.batch_size, self.shuffle, self.image_size = int(batch_size), shuffle, image_size
        self.n = next(iter(sizes.values()))

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def _serve(self, value: torch.Tensor) -> torch.Tensor:
        if value.dtype == torch.uint8 and value.ndim == 4:
            return decode_images(value, self.image_size)
        return value.float() if value.dtype == torch.float16 else value

    def __iter__(self):
        order = torch.randperm(self.n) if self.shuffle else torch.arange(self.n)
        if self.device is not None:
            order = order.to(self.device)
        for a in range(0, self.n, self.batch_size):
            idx = order[a:a + self.batch_size]
            yield {k: self._serve(v[idx]) for k, v in self.tensors.items()}


_TENSOR_MAX_SIZE = 64          # synthetic data up to this size is held as whole tensors


def decode_images(images: torch.Tensor, image_size: int | None = None) -> torch.Tensor:
    """A batch of stored bytes ``(B, 1 or 3, h, w)`` → what the FER models read: pixels in
    [0, 1], ``(B, 3, image_size, image_size)`` (``to_pixels``, a gray channel repeated),
    computed on the batch's device."""
    x = to_pixels(images, image_size)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def load_fer_splits(source: str, path: str, image_size: int, num_samples: int, seed: int = 0,
                    data_seed: int = 0) -> tuple[dict, str]:
    """``({"train", "val", "test"}: datasets, description)`` for notebook 04.

    ``source="fer2013"``: ``load_fer2013(path)`` resized to ``image_size``, gray → 3 channels;
    the CSV's PublicTest is the validation set and PrivateTest the test set
    (the folder release has no validation split: 10 % of train, seeded). If FER2013 is not
    there, the message says how to get it and the synthetic faces at ``image_size`` are used.
    ``source="synthetic"``: ``SynthFER(num_samples, image_size, seed=data_seed)`` split by subject.
    """
    if source == "fer2013":
        try:
            data = load_fer2013(path, transform=get_transforms("none", image_size))
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
    faces = SynthFER(num_samples, image_size, seed=data_seed)
    return (dict(zip(("train", "val", "test"), subject_split(faces, seed=seed))),
            f"synthetic faces ({image_size} px), split by subject")


def load_fusion_splits(source: str, path: str, image_size: int, num_samples: int, seed: int = 0,
                       data_seed: int = 0) -> tuple[dict, str]:
    """``({"train", "val", "test"}: datasets, description)`` for notebook 05: paired RGB +
    thermal items (thermal repeated to 3 channels). ``source="paired"``: ``load_paired_rgbt(path)``
    (subject-disjoint when file names carry subject ids); if the folders are
    missing, the message says what to do and the synthetic pairs at ``image_size`` are used."""
    if source == "paired":
        try:
            tf = get_paired_transforms("none", image_size, train=False, thermal_channels=3)
            splits = load_paired_rgbt(path, image_size=image_size, seed=seed, thermal_channels=3,
                                      transforms={"train": tf, "val": tf, "test": tf})
        except FileNotFoundError as err:
            print(f"{err}\n→ Using the synthetic RGB + thermal faces at {image_size} px instead.")
        else:
            return splits, "paired RGB-thermal folders"
    faces = SynthFER(num_samples, image_size, seed=data_seed, thermal_channels=3)
    return (dict(zip(("train", "val", "test"), subject_split(faces, seed=seed))),
            f"synthetic RGB + thermal faces ({image_size} px), split by subject")


def stored_bytes(dataset: Any, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Every item of one split as the data holds it: images as bytes, ``(N, C, h, w)`` uint8
    (``C`` = 1 where the image is gray), and its number keys (``label`` …) as ``(N,)`` tensors.

    * FER2013 (or a subset of it): its 48×48 gray bytes as they are (28,709 faces: 66 MB);
    * synthetic faces: the rendered bytes (``SynthFER.tensors(torch.uint8)``);
    * anything else (image files, read through their transforms as ``load_fer_splits`` /
      ``load_fusion_splits`` make them: pixels in [0, 1]): each item read once at its
      transformed size and stored back as bytes (within 1/255 of the float it was).

    :func:`decode_images` turns a batch back into the model's input."""
    base, idx = (dataset.dataset, np.asarray(dataset.indices)) if isinstance(dataset, Subset) else (dataset, None)
    if isinstance(base, FER2013):
        images, labels = (base.images, base.labels) if idx is None else (base.images[idx], base.labels[idx])
        return {base.image_key: torch.from_numpy(np.ascontiguousarray(images))[:, None],
                "label": torch.from_numpy(np.ascontiguousarray(labels))}
    if isinstance(base, SynthFER):
        t = base.tensors(torch.uint8)
        keep = slice(None) if idx is None else torch.as_tensor(idx, dtype=torch.long)
        return {"rgb": t["rgb"][keep], "thermal": t["thermal"][keep][:, :1], "label": t["label"][keep]}
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in DataLoader(dataset, batch_size=batch_size):
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim == 4:
                lo, hi = float(value.min()), float(value.max())
                if lo < -1e-3 or hi > 1 + 1e-3:
                    raise ValueError(f"{key!r} images of this data set range from {lo:.3g} to {hi:.3g}; stored as "
                                     "bytes they must be pixels in [0, 1], as load_fer_splits and load_fusion_splits "
                                     "make them (the FER models normalise their input themselves). Leave "
                                     "normalisation out of the items' transform (backbone='none').")
                value = (value * 255).round_().clamp_(0, 255).to(torch.uint8)
                if value.shape[1] == 3 and torch.equal(value[:, :1].expand_as(value), value):
                    value = value[:, :1]                     # gray (a thermal map repeated): one channel
                parts.setdefault(key, []).append(value)
            elif isinstance(value, torch.Tensor):
                parts.setdefault(key, []).append(value)
    out = {}
    for key, values in parts.items():
        if values[0].dtype == torch.uint8 and len({v.shape[1] for v in values}) > 1:
            values = [v.expand(-1, 3, -1, -1) for v in values]      # gray in some batches only
        out[key] = torch.cat(values)
    return out


def make_loaders(splits: Mapping[str, Any], batch_size: int, eval_batch_size: int = 256,
                 num_workers: int = 0, in_memory: bool = False, shuffle: bool = True,
                 device: torch.device | str | None = None, image_size: int | None = None) -> dict[str, Any]:
    """Batches for ``fit``: ``{"train", "val", "test"}`` → ``TensorBatches`` or ``DataLoader``.

    * small synthetic data (≤ 64 px, the quick profile): whole float tensors, no per-item work;
    * ``device`` given (the notebooks pass theirs), or ``in_memory=True``: each split read once
      as bytes (:func:`stored_bytes`) and kept on ``device`` (host memory when ``None``); each
      batch is indexed and resized to ``image_size`` (default: the size of the split's items)
      where the bytes are — on a GPU the data never waits on the host, and data read
      many times (notebook 05 trains seven models on the same pairs) is decoded from files once;
    * otherwise a ``DataLoader`` (``num_workers`` processes) over the items.

    The ``"train"`` split is shuffled each epoch unless ``shuffle=False`` (every item once, in order)."""
    def sizes(name: str) -> dict[str, Any]:
        return {"batch_size": batch_size if name == "train" else eval_batch_size, "shuffle": shuffle and name == "train"}

    base = splits["train"].dataset if isinstance(splits["train"], Subset) else None
    if isinstance(base, SynthFER) and base.image_size <= _TENSOR_MAX_SIZE and all(
            isinstance(s, Subset) and s.dataset is base for s in splits.values()):
        t = base.tensors()
        out = {}
        for name, sub in splits.items():
            idx = torch.as_tensor(sub.indices, dtype=torch.long)
            data = {"rgb": t["rgb"][idx], "thermal": t["thermal"][idx], "label": t["label"][idx]}
            out[name] = TensorBatches(data, **sizes(name), device=device)
        return out
    if device is not None or in_memory:
        out = {}
        for name, ds in splits.items():
            size = image_size or next(v.shape[-1] for v in ds[0].values() if isinstance(v, torch.Tensor) and v.ndim == 3)
            out[name] = TensorBatches(stored_bytes(ds), **sizes(name), image_size=size, device=device)
        return out
    return {name: DataLoader(ds, **sizes(name), num_workers=num_workers, persistent_workers=num_workers > 0)
            for name, ds in splits.items()}


class ItemImages:
    """``images[i]`` = item ``i``'s ``key`` image of a dataset, pixels in [0, 1] for display
    (reads only the items asked for)."""

    def __init__(self, dataset: Any, key: str = "rgb"):
        self.dataset, self.key = dataset, key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.dataset[int(i)][self.key]
