"""Caption data for CLIP (notebook 02): images with several captions each, and the frozen
text features of those captions, computed once.

The text transformer of a CLIP model here is frozen, so a caption's features never change:
``TextEmbeddingCache`` encodes every distinct caption once and training reuses the rows.

* ``TextEmbeddingCache``, ``encode_captions`` — captions → frozen features → embeddings;
* ``CaptionData`` (images as bytes + captions + their cache rows), ``CaptionPairs`` (a
  training pair per image, a new caption drawn every epoch);
* ``prepare_clip_data`` — the synthetic face captions (quick profile) or Flickr8k / COCO
  from ``data/`` (full: ``find_real_captions``, ``load_real_caption_data``);
  ``caption_data_for`` — the same data for a second model's text encoder;
* ``zero_shot_faces`` — faces with emotion labels (``LabelledFaces``) for zero-shot tests;
* ``GroupShuffleSampler`` — batches made of whole groups (one person's faces).

The models are in ``lab_utils.models.clip``, the training recipe in ``lab_utils.recipes.clip``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..paths import data_dir, rel
from .captions import SynthFaceCaptions
from .loaders import CAPTIONS_HELP, fer2013_test_split, load_captions, load_fer2013
from .synthetic import SynthFER, render_size
from .transforms import get_transforms

if TYPE_CHECKING:
    from ..models.clip import CLIP, CLIPTextEncoder

__all__ = [
    "TextEmbeddingCache", "encode_captions", "CaptionData", "CaptionPairs", "REAL_CAPTION_SETS",
    "find_real_captions", "load_real_caption_data", "prepare_clip_data", "caption_data_for",
    "LabelledFaces", "zero_shot_faces", "GroupShuffleSampler",
]


# ─────────────────────────────────────────────────────────────────────────────
# 1. Encode every distinct caption once
# ─────────────────────────────────────────────────────────────────────────────
class TextEmbeddingCache:
    """Frozen text features, computed once per distinct caption and reused.

    The text transformer is frozen, so a caption's features never change during training.
    The cache keeps those *features* (before any trainable projection), so the projection
    still learns. ``add(captions)`` returns each caption's row in ``features``.
    """

    def __init__(self, text_encoder: CLIPTextEncoder, batch_size: int = 256):
        self.text_encoder, self.batch_size = text_encoder, batch_size
        self.index: dict[str, int] = {}
        self.features = torch.empty(0, text_encoder.feature_dim)
        self.seconds = 0.0      # time spent in the text transformer
        self.lookups = 0

    def __len__(self) -> int:
        return len(self.index)

    def add(self, captions: Sequence[str]) -> torch.Tensor:
        """Encode the captions not seen before; returns the rows ``(N,)`` of all ``captions``."""
        captions = list(captions)
        if not captions:
            raise ValueError("Got an empty list of captions: give at least one caption to encode.")
        new = list(dict.fromkeys(c for c in captions if c not in self.index))
        if new:
            start = time.perf_counter()
            feats = self.text_encoder.features_from_captions(new, self.batch_size)
            self.seconds += time.perf_counter() - start
            base = len(self.index)
            self.index.update({c: base + i for i, c in enumerate(new)})
            self.features = torch.cat([self.features, feats])
        self.lookups += len(captions)
        return torch.tensor([self.index[c] for c in captions], dtype=torch.long)

    def get(self, captions: Sequence[str]) -> torch.Tensor:
        """Frozen features ``(N, feature_dim)`` of ``captions`` (encoding any new ones)."""
        rows = self.add(captions)                          # may grow self.features: call it first
        return self.features[rows]

    def serves(self, text_encoder: CLIPTextEncoder) -> bool:
        """Whether these features are also ``text_encoder``'s: the same frozen transformer
        (model and kind) pooled the same way (``TextEncoderSpec.key``). Then two CLIP models can
        share the cache."""
        return self.text_encoder is text_encoder or self.text_encoder.spec.key == text_encoder.spec.key


def encode_captions(model: CLIP, captions: Sequence[str], cache: TextEmbeddingCache | None = None) -> torch.Tensor:
    """Captions → ``(N, 512)`` L2-normalised text embeddings, through ``cache`` if given."""
    cache = cache or TextEmbeddingCache(model.text_encoder)
    device = model.logit_scale.device
    return model.text_encoder.project(cache.get(captions).to(device))


# ─────────────────────────────────────────────────────────────────────────────
# 2. Images + caption features
# ─────────────────────────────────────────────────────────────────────────────
@dataclass
class CaptionData:
    """Images with several captions each, their caption rows in a shared cache.

    ``images`` (N, 3, h, w) uint8 (0–255), as stored: the image encoder turns a batch into
    [0, 1] floats at its own resolution on its device (``to_pixels``); ``captions[i]`` the
    captions of image i; ``caption_ids[i]`` their rows in ``cache.features`` (training data
    only: held-out captions are encoded when first used); ``labels`` (N,) emotion ids, -1
    where the images have none (photos of a caption data set); ``source`` in words;
    ``subjects`` (N,) the person each synthetic face shows, for intervals that resample test
    people (``metrics.paired_difference(groups=...)``), ``None`` for photos (resample images).
    """

    images: torch.Tensor
    captions: list[list[str]]
    caption_ids: list[torch.Tensor]
    labels: torch.Tensor
    cache: TextEmbeddingCache
    source: str = "synthetic face captions"
    subjects: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def synthetic(self) -> bool:
        """True for the synthetic face captions, False for a real caption data set."""
        return self.source.startswith("synthetic")

    def one_caption_each(self, which: int = 0) -> tuple[list[str], torch.Tensor]:
        """The ``which``-th caption of every image (wrapping around) and ``text_to_image`` (N,)."""
        caps = [c[which % len(c)] for c in self.captions]
        return caps, torch.arange(len(caps))

    def all_captions(self) -> tuple[list[str], torch.Tensor]:
        """Every caption of every image (flattened) and ``text_to_image``: each one's image."""
        caps = [c for cs in self.captions for c in cs]
        owner = torch.tensor([i for i, cs in enumerate(self.captions) for _ in cs])
        return caps, owner


class CaptionPairs(torch.utils.data.Dataset):
    """Training pairs: item ``i`` = ``{"image", "text_features", "label"}`` where the
    caption is drawn at random among image i's captions (a new draw every epoch)."""

    def __init__(self, data: CaptionData):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.data.caption_ids[i]
        j = ids[torch.randint(len(ids), ()).item()]
        return {"image": self.data.images[i], "text_features": self.data.cache.features[j],
                "label": self.data.labels[i]}


REAL_CAPTION_SETS = (
    ("flickr8k/captions.txt", None),
    ("coco/annotations/captions_train2017.json", "coco/train2017"),
    ("coco/annotations/captions_val2017.json", "coco/val2017"),
)
"""Where the full profile looks for real captions, under ``data/`` (see data/README.md)."""


def find_real_captions(root: str | os.PathLike | None = None) -> tuple[Path, Path | None] | None:
    """The first of :data:`REAL_CAPTION_SETS` present under ``root`` (default ``data/``):
    ``(captions_file, images_dir or None)``, or ``None`` when there is none."""
    root = Path(root) if root is not None else data_dir()
    for captions, images in REAL_CAPTION_SETS:
        if (root / captions).is_file() and (images is None or (root / images).is_dir()):
            return root / captions, (root / images if images else None)
    return None


def load_real_caption_data(text_encoder: CLIPTextEncoder, num_train: int, num_test: int, image_size: int,
                           root: str | os.PathLike | None = None,
                           cache: TextEmbeddingCache | None = None) -> tuple[CaptionData, CaptionData] | None:
    """Flickr8k or COCO captions (``lab_utils.data.load_captions``) as ``(train, test)``
    ``CaptionData``, images resized to ``image_size`` (``get_transforms``; the image encoder
    applies the ImageNet normalisation itself, so the transform only resizes) and stored as
    bytes (8,091 Flickr8k photos at 224 px: 1.2 GB; as floats they would take 4.9 GB). The
    first ``num_train`` images train, the next ``num_test`` (at most) are held out; fewer if
    the set is smaller. ``labels`` are -1 (no emotions). ``None`` when no set is found."""
    found = find_real_captions(root)
    if found is None:
        return None
    ds = load_captions(found[0], found[1], transform=get_transforms("none", image_size))
    if isinstance(ds, dict):                               # a Karpathy split file
        ds = ds["train"]
    n = len(ds)
    if n < 4:
        raise ValueError(f"{found[0]} has only {n} images with their files present; CLIP training needs more.")
    n_test = min(num_test, max(2, n // 5))
    n_train = min(num_train, n - n_test)
    cache = cache or TextEmbeddingCache(text_encoder)
    name = "Flickr8k" if found[0].suffix == ".txt" else "COCO"
    out = []
    for idx, encode in ((range(n_train), True), (range(n_train, n_train + n_test), False)):
        images = torch.empty(len(idx), 3, image_size, image_size, dtype=torch.uint8)   # filled one by one
        for row, i in enumerate(idx):
            images[row] = ds[i]["image"].mul(255).round_().clamp_(0, 255).to(torch.uint8)
        captions = [list(ds.captions[i]) for i in idx]
        ids = []
        if encode:
            ids = list(cache.add([c for cs in captions for c in cs]).split([len(cs) for cs in captions]))
        out.append(CaptionData(images, captions, ids, torch.full((len(captions),), -1, dtype=torch.long), cache,
                               source=f"{name} captions ({rel(found[0])})"))
    return out[0], out[1]


def prepare_clip_data(text_encoder: CLIPTextEncoder, num_train: int, num_test: int, image_size: int,
                      seed: int = 0, captions_per_image: int = 3,
                      cache: TextEmbeddingCache | None = None, *, profile: str = "quick",
                      data_root: str | os.PathLike | None = None,
                      verbose: bool = True) -> tuple[CaptionData, CaptionData]:
    """Captions for training and a held-out test set.

    Full profile: Flickr8k or COCO captions from ``data/`` (:func:`load_real_caption_data`)
    when present; otherwise one message says how to get them and the synthetic captions
    are used. Quick profile: the synthetic face captions (the test set uses another seed).

    The synthetic faces are rendered at ``render_size(image_size)`` (at most 64 px; the
    encoder resizes each batch to ``image_size`` on its device), and every image is kept as
    bytes: 20,000 + 1,000 faces take 0.26 GB instead of 13 GB as floats at 224 px.

    Returns ``(train, test)`` ``CaptionData`` sharing one ``TextEmbeddingCache``. The
    training captions are encoded now (each distinct one once, by the frozen text
    transformer); the test captions only when they are first used."""
    cache = cache or TextEmbeddingCache(text_encoder)
    if profile == "full":
        real = load_real_caption_data(text_encoder, num_train, num_test, image_size, data_root, cache)
        if real is not None:
            if verbose:
                print(f"Real captions: {len(real[0])} training and {len(real[1])} held-out images "
                      f"at {image_size} px.")
            return real
        if verbose:
            drawn = render_size(image_size)
            how = f" (drawn at {drawn} px, resized by the encoder)" if drawn != image_size else ""
            print(f"No Flickr8k or COCO captions under data/: using the synthetic face captions "
                  f"at {image_size} px{how}. To train on real captions: {CAPTIONS_HELP}")
    out = []
    for n, s, encode in ((num_train, seed, True), (num_test, seed + 10_007, False)):
        ds = SynthFaceCaptions(n, image_size=render_size(image_size), seed=s, captions_per_image=captions_per_image)
        t = ds.tensors(torch.uint8)                                 # bytes (N, 3, S, S)
        captions = [list(c) for c in ds.captions]
        ids = []
        if encode:
            rows = cache.add([c for cs in captions for c in cs])
            ids = list(rows.split([len(cs) for cs in captions]))
        out.append(CaptionData(t["image"], captions, ids, t["label"].long(), cache,
                               subjects=np.asarray(ds.subjects, dtype=np.int64)))
    return out[0], out[1]


def caption_data_for(text_encoder: CLIPTextEncoder, train: CaptionData,
                     test: CaptionData) -> tuple[CaptionData, CaptionData]:
    """The same images and captions for a second CLIP model with ``text_encoder``.

    When the existing cache's features are also this encoder's (``TextEmbeddingCache.serves``)
    the data is returned as it is: nothing is encoded twice. Otherwise the training captions
    are encoded once more, by this encoder, into a new cache that both returned sets share."""
    if train.cache.serves(text_encoder):
        return train, test
    cache = TextEmbeddingCache(text_encoder)
    rows = cache.add([c for cs in train.captions for c in cs])
    ids = list(rows.split([len(cs) for cs in train.captions]))
    return (CaptionData(train.images, train.captions, ids, train.labels, cache, train.source, train.subjects),
            CaptionData(test.images, test.captions, [], test.labels, cache, test.source, test.subjects))


# ─────────────────────────────────────────────────────────────────────────────
# 3. Labelled faces for zero-shot emotion recognition
# ─────────────────────────────────────────────────────────────────────────────
@dataclass
class LabelledFaces:
    """Faces with emotion labels, for zero-shot emotion recognition: ``images`` (N, 3, h, w)
    uint8, ``labels`` (N,) in ``EMOTIONS`` order, ``source`` says which faces in words,
    ``synthetic`` whether they are the synthetic faces (else photos: FER2013), ``subjects``
    (N,) each face's person where known (synthetic faces), else ``None`` (FER2013 keeps none)."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    synthetic: bool
    subjects: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def zero_shot_faces(test: CaptionData, image_size: int, num_faces: int | None = None, *, seed: int = 0,
                    profile: str = "quick", data_root: str | os.PathLike | None = None) -> LabelledFaces:
    """Faces to recognise emotions on zero-shot. Photos of a caption data set (Flickr8k,
    COCO) have no emotion labels, so they are never used:

    * full profile with FER2013 under ``data/fer2013`` (``load_fer2013``): its test faces
      (the CSV's ``PrivateTest`` or the folder release's ``test/``), 48 px gray → 3 channels;
    * else the held-out set ``test`` itself when it has labels (the synthetic face captions);
    * else ``num_faces`` (default ``len(test)``) synthetic faces drawn at
      ``render_size(image_size)``.

    The image encoder resizes every batch to its own resolution, so any of them fits."""
    if profile == "full":
        folder = (Path(data_root) if data_root is not None else data_dir()) / "fer2013"
        try:
            split, fer = fer2013_test_split(load_fer2013(folder))
        except FileNotFoundError:
            pass
        else:
            gray = torch.from_numpy(fer.images)                                  # (N, 48, 48) bytes
            return LabelledFaces(gray[:, None].repeat(1, 3, 1, 1), torch.from_numpy(fer.labels),
                                 f"FER2013's test faces ({rel(folder)}, {split}, 48 px gray)", synthetic=False)
    if len(test) and bool((test.labels >= 0).all()):
        return LabelledFaces(test.images, test.labels, "the held-out synthetic faces", synthetic=True,
                             subjects=test.subjects)
    n = num_faces or len(test)
    faces = SynthFER(n, render_size(image_size), seed=seed + 20_011).tensors(torch.uint8)
    return LabelledFaces(faces["rgb"], faces["label"],
                         "synthetic faces (no FER2013 under data/fer2013; see data/README.md)", synthetic=True,
                         subjects=faces["subject"].numpy())


# ─────────────────────────────────────────────────────────────────────────────
# 4. Batches of whole groups
# ─────────────────────────────────────────────────────────────────────────────
class GroupShuffleSampler(torch.utils.data.Sampler):
    """Shuffles blocks of ``group_size`` consecutive items (and the items inside each block),
    so a batch holds whole groups. With the synthetic faces (items ``14 s … 14 s + 13`` show
    person ``s``) and ``group_size=14``, a batch holds several faces of each person, which
    differ only in expression, glasses and background: hard negatives that the contrastive
    loss can only tell apart by looking at the expression."""

    def __init__(self, n: int, group_size: int, generator: torch.Generator | None = None):
        self.n, self.group_size, self.generator = n, int(group_size), generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        starts = torch.arange(0, self.n, self.group_size)
        for s in starts[torch.randperm(len(starts), generator=self.generator)].tolist():
            block = torch.arange(s, min(s + self.group_size, self.n))
            yield from block[torch.randperm(len(block), generator=self.generator)].tolist()
