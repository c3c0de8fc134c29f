"""Notebook 03's training items: stored images beside the frozen CLIP branch's cached
embeddings, with a flip that keeps the two branches consistent."""
from __future__ import annotations

import torch


class CachedHybridDataset(torch.utils.data.Dataset):
    """Training items for ``HybridViTCLIP`` with the frozen CLIP branch already applied.

    Args:
        images: ``(N, 3, h, w)`` the images as stored (bytes or [0, 1] floats, any size):
            ``hybrid_step`` preprocesses each batch for the ViT branch on the device.
        clip_embeds: ``(N, D)`` CLIP embeddings of the same images (``encode_clip``).
        labels: ``(N,)`` class indices.
        clip_embeds_flipped: ``(N, D)`` CLIP embeddings of the mirrored images; with
            ``flip=True`` each item is mirrored with probability 1/2 — the image flipped on
            the fly and the matching cached CLIP embedding picked — so the augmentation
            stays consistent across the two branches.
        subjects: ``(N,)`` the person of each item, or ``None``: kept as ``.subjects`` so that a
            test set's intervals and paired comparisons resample people
            (``data.splits.people_of``); not part of the items.

    Items: ``{"image", "clip_embeds", "label"}`` (for ``hybrid_step``).
    """

    def __init__(self, images: torch.Tensor, clip_embeds: torch.Tensor, labels: torch.Tensor,
                 clip_embeds_flipped: torch.Tensor | None = None, flip: bool = False,
                 subjects: torch.Tensor | None = None):
        n = len(labels)
        for name, t in (("images", images), ("clip_embeds", clip_embeds),
                        ("clip_embeds_flipped", clip_embeds_flipped), ("subjects", subjects)):
            if t is not None and len(t) != n:
                raise ValueError(f"{name} has {len(t)} rows for {n} labels")
        if flip and clip_embeds_flipped is None:
            raise ValueError("flip=True needs clip_embeds_flipped (the embeddings of the mirrored images)")
        self.images, self.emb, self.emb_flip = images, clip_embeds, clip_embeds_flipped
        self.labels, self.flip = torch.as_tensor(labels), flip
        self.subjects = None if subjects is None else torch.as_tensor(subjects).numpy()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        flip = self.flip and torch.rand(()) < 0.5
        return {"image": self.images[i].flip(-1) if flip else self.images[i],
                "clip_embeds": self.emb_flip[i] if flip else self.emb[i], "label": self.labels[i]}
