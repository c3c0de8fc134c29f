"""Notebook 03's training step for ``HybridViTCLIP``: what one batch of cached CLIP
embeddings and stored images costs, for ``lab_utils.training.fit``."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn


def hybrid_step(label_key: str = "label"):
    """A ``step_fn`` for ``lab_utils.training.fit``: dict batches with ``label`` and the
    inputs: ``image`` (stored images, preprocessed here for the ViT branch, on the batch's
    device) or ``pixel_values_vit``; ``clip_embeds`` (cached) or ``pixel_values_clip``.
    Cross-entropy loss; in training, plus ``model.aux_weight`` × the auxiliary ViT-only
    classifier's cross-entropy when the model has one."""
    def step(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pixel_values_vit = batch.get("pixel_values_vit")
        if "image" in batch and getattr(model, "vit", None) is not None:
            pixel_values_vit = model.preprocess_vit(batch["image"])                    # (B, 3, S, S)
        f = model.features(pixel_values_vit, batch.get("pixel_values_clip"), clip_embeds=batch.get("clip_embeds"))
        logits = model.classifier(f["fused"])                                          # (B, C)
        labels = batch[label_key]
        loss = F.cross_entropy(logits.float(), labels)
        if model.training and getattr(model, "aux_head", None) is not None:
            loss = loss + model.aux_weight * F.cross_entropy(model.aux_head(f["vit"]).float(), labels)
        return {"loss": loss, "logits": logits.detach(), "labels": labels}
    return step
