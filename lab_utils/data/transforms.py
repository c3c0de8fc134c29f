"""Transforms (torchvision.transforms.v2) for both profiles, and the paired flip for RGB + thermal.

* :func:`get_transforms` — for one image tensor (C, H, W) in [0, 1]: grayscale → 3 channels,
  resize to the model's size, (train) a random horizontal flip, normalise with the
  backbone's constants (:data:`NORMALIZATION`).
* :func:`get_paired_transforms` — the same for an item dict with ``"rgb"`` and ``"thermal"``:
  one coin decides the flip for *both* (a face flipped in RGB but not in thermal would put
  the warm cheek on the wrong side).
* :class:`PairedRandomHorizontalFlip` and :func:`paired_hflip_batch` — the flip alone, per
  item or for a whole batch of tensors.
* :func:`to_pixels` — a batch of stored bytes → floats in [0, 1] at the model's size, on the
  batch's own device (data sets stay small bytes; a GPU resizes its own batches).
* :func:`normalize` — pixels in [0, 1] → a backbone's input, ``(x − mean) / std`` per channel.

The lab's models all take pixels in [0, 1] and normalise them themselves with
:func:`normalize` (each with its backbone's statistics: the hybrid feeds one image to two
branches that want different ones), so data for a lab model stays in [0, 1]. The per-item
pipelines below normalise (``v2.Normalize``) only for a model that does not: pass
``backbone="none"`` for the lab's own.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "vit": (HALF, HALF),            # google/vit-base-patch16-224-in21k's image processor
    "clip": (CLIP_MEAN, CLIP_STD),  # openai/clip-vit-base-patch32
    "resnet": (IMAGENET_MEAN, IMAGENET_STD),  # torchvision ImageNet weights
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "none": None,                   # keep [0, 1] (models trained from scratch on synthetic data)
}
"""Per-backbone ``(mean, std)`` per channel, or ``None`` for no normalisation."""

THERMAL_NORMALIZATION = (HALF, HALF)
"""Thermal maps in [0, 1] are normalised to [-1, 1] whatever the RGB backbone (when the pipeline
normalises at all)."""

Stats = Union[float, Sequence[float], torch.Tensor]


def normalize(pixels: torch.Tensor, mean: Stats, std: Stats) -> torch.Tensor:
    """Pixels in [0, 1] ``(…, C, H, W)`` → ``(pixels − mean) / std``, per channel (a tensor or
    a sequence of C values, e.g. ``NORMALIZATION["clip"]``), on the pixels' device and dtype.
    Statistics that are the same for every channel (the ViT's 0.5, 0.5) are applied as one
    number, so they fit any channel count (a one-channel thermal map, six fused channels)."""
    return (pixels - _per_channel(mean, pixels)) / _per_channel(std, pixels)


def _per_channel(values: Stats, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(values, torch.Tensor):
        return values.to(like.dtype).reshape(-1, 1, 1)
    values = tuple(float(v) for v in values) if isinstance(values, Sequence) else (float(values),)
    if len(set(values)) == 1:
        return values[0]
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1, 1)


class ToThreeChannels(nn.Module):
    """(1, H, W) → (3, H, W) by repeating the gray channel; 3-channel input passes unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-3] == 1:
            return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).clone()
        if x.shape[-3] != 3:
            raise ValueError(f"expected 1 or 3 channels, got shape {tuple(x.shape)}")
        return x


def _normalization(backbone: str):
    key = backbone.lower()
    if key not in NORMALIZATION:
        raise ValueError(f"unknown backbone {backbone!r} for normalisation; known: {sorted(NORMALIZATION)} "
                         f"(use 'none' for models trained from scratch)")
    return NORMALIZATION[key]


def get_transforms(backbone: str = "vit", image_size: int = 224, train: bool = False,
                   to_rgb: bool = True) -> v2.Compose:
    """v2 pipeline for one float image tensor (C, H, W) in [0, 1] → (3, S, S) normalised.

    ``backbone`` picks the normalisation (:data:`NORMALIZATION`: ``vit``, ``clip``,
    ``resnet``/``imagenet``, ``none``); ``to_rgb`` repeats a gray channel (FER2013);
    ``train`` adds a random horizontal flip.
    """
    steps: list[nn.Module] = [ToThreeChannels()] if to_rgb else []
    steps.append(v2.Resize((image_size, image_size), antialias=True))
    if train:
        steps.append(v2.RandomHorizontalFlip())
    norm = _normalization(backbone)
    if norm is not None:
        steps.append(v2.Normalize(mean=list(norm[0]), std=list(norm[1])))
    return v2.Compose(steps)


class PairedRandomHorizontalFlip(nn.Module):
    """Flip every image in an item dict (``keys``) together, with probability ``p``.

    ``item = {"rgb": (3,H,W), "thermal": (C,H,W), ...}`` → the same dict, both flipped or
    neither. Uses torch's global RNG (seeded by ``seed_everything``)."""

    def __init__(self, p: float = 0.5, keys: Sequence[str] = ("rgb", "thermal")):
        super().__init__()
        self.p, self.keys = float(p), tuple(keys)

    def forward(self, item: dict) -> dict:
        if torch.rand(()) < self.p:
            item = dict(item)
            for k in self.keys:
                if k in item:
                    item[k] = item[k].flip(-1)
        return item


def paired_hflip_batch(rgb: torch.Tensor, thermal: torch.Tensor, p: float = 0.5,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip a random subset of a batch, the same items in both modalities.

    rgb (B, 3, H, W), thermal (B, C, H, W) → the same shapes (new tensors)."""
    flip = torch.rand(rgb.shape[0], generator=generator) < p
    flip = flip.to(rgb.device)[:, None, None, None]
    return torch.where(flip, rgb.flip(-1), rgb), torch.where(flip, thermal.flip(-1), thermal)


class PairedTransform(nn.Module):
    """Resize both modalities, flip them together (train), normalise RGB per backbone and
    thermal to [-1, 1] (neither with ``backbone="none"``, as the lab's models want them);
    thermal gets ``thermal_channels`` channels. Item dict in, item dict out."""

    def __init__(self, backbone: str = "vit", image_size: int = 224, train: bool = False,
                 thermal_channels: int = 3):
        super().__init__()
        self.resize = v2.Resize((image_size, image_size), antialias=True)
        self.flip = PairedRandomHorizontalFlip() if train else None
        norm = _normalization(backbone)
        self.rgb_norm = v2.Normalize(list(norm[0]), list(norm[1])) if norm else None
        self.thermal_channels = thermal_channels
        self.to3 = ToThreeChannels()

    def forward(self, item: dict) -> dict:
        item = dict(item)
        rgb = self.to3(self.resize(item["rgb"]))
        th = self.resize(item["thermal"])[:1]
        if self.thermal_channels == 3:
            th = self.to3(th)
        item["rgb"], item["thermal"] = rgb, th
        if self.flip is not None:
            item = self.flip(item)
        if self.rgb_norm is not None:
            item["rgb"] = self.rgb_norm(item["rgb"])
            item["thermal"] = normalize(item["thermal"], *THERMAL_NORMALIZATION)
        return item


def get_paired_transforms(backbone: str = "vit", image_size: int = 224, train: bool = False,
                          thermal_channels: int = 3) -> PairedTransform:
    """:class:`PairedTransform` for RGB + thermal item dicts (see :func:`get_transforms`)."""
    return PairedTransform(backbone, image_size, train, thermal_channels)


def to_pixels(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Stored images → what an encoder computes on: ``(B, 3, h, w)`` bytes (uint8, 0–255)
    or floats in [0, 1] → floats ``(B, 3, size, size)`` in [0, 1], resized (bilinear,
    antialiased) when ``size`` is given and differs.

    It runs where the images are. Move a batch to the GPU first: data sets then stay small
    bytes in host memory (21,000 faces at 64 px: 0.26 GB; as floats at 224 px: 13 GB) and
    grow to the model's resolution only on the device, one batch at a time."""
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    elif not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0–255) or floats in [0, 1], got {images.dtype}")
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False)
    return images
