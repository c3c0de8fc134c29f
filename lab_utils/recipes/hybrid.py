"""Notebook 03's training step for ``HybridViTCLIP``: what one batch of cached CLIP
embeddings and stored images costs, for ``lab_utils.training.fit``; what the step can measure
on the way (``BranchMonitor``); the name a model's row gets (``describe``); and the CLIP probe
tuned on validation (``tuned_probe``)."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn


class BranchMonitor:
    """What modality imbalance predicts, measured on every training step (it only reads: the
    training itself is unchanged, bit for bit).

    * ``vit_grad``: the gradient that reaches the ViT's [CLS] feature, per image — the mean over
      the batch of ``‖∂ loss_i / ∂ vit_cls_i‖`` (the batch-mean loss's gradient × B). A ViT that
      "gets little gradient" shows it here.
    * ``clip_over_vit`` (concat only): OGM-GE's imbalance ratio (Peng et al. 2022). The
      classifier's logits split into a ViT part and a CLIP part, ``W_vit·vit + b/2`` and
      ``W_clip·clip + b/2``; each part's softmax probability of the true class, summed over the
      batch, is that branch's contribution, and the ratio CLIP / ViT above 1 says CLIP carries
      the prediction.
    """

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def observe(self, model: nn.Module, f: Mapping[str, torch.Tensor], labels: torch.Tensor) -> None:
        """Called by ``hybrid_step`` on a training batch (``f`` = ``model.features``' output)."""
        row = {"step": len(self.rows), "vit_grad": float("nan"), "clip_over_vit": float("nan")}
        self.rows.append(row)
        vit = f.get("vit")
        if vit is not None and vit.requires_grad:
            batch = len(vit)
            vit.register_hook(lambda g: row.__setitem__("vit_grad", float(batch * g.detach().norm(dim=1).mean())))
        if model.fusion == "concat":
            with torch.no_grad():
                h, W, b = model.vit_dim, model.classifier.weight, model.classifier.bias
                parts = (f["fused"][:, :h] @ W[:, :h].T + b / 2, f["fused"][:, h:] @ W[:, h:].T + b / 2)
                s_vit, s_clip = (p.float().softmax(-1).gather(1, labels[:, None]).sum() for p in parts)
                row["clip_over_vit"] = float(s_clip / s_vit)

    def per_epoch(self, steps_per_epoch: int) -> pd.DataFrame:
        """The step rows averaged per epoch: index ``epoch`` (1-based), columns ``vit_grad``,
        ``clip_over_vit``."""
        rows = pd.DataFrame(self.rows)
        rows["epoch"] = rows["step"] // steps_per_epoch + 1
        return rows.groupby("epoch")[["vit_grad", "clip_over_vit"]].mean()


def hybrid_step(label_key: str = "label", monitor: BranchMonitor | None = None):
    """A ``step_fn`` for ``lab_utils.training.fit``: dict batches with ``label`` and the
    inputs: ``image`` (stored images, preprocessed here for the ViT branch, on the batch's
    device) or ``pixel_values_vit``; ``clip_embeds`` (cached) or ``pixel_values_clip``.
    Cross-entropy loss; in training, plus ``model.aux_weight`` × the auxiliary ViT-only
    classifier's cross-entropy when the model has one. ``monitor`` (a ``BranchMonitor``)
    observes every training batch."""
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
        if monitor is not None and model.training and torch.is_grad_enabled():
            monitor.observe(model, f, labels)
        return {"loss": loss, "logits": logits.detach(), "labels": labels}
    return step


def describe(model: nn.Module) -> str:
    """A model's row name from what it was built with, so that a config edit cannot mislabel a
    row: ``"concat"``, ``"concat + auxiliary ViT loss 0.5"``, ``"ViT only"``, …"""
    name = {"vit_only": "ViT only", "clip_only": "CLIP only"}.get(model.fusion, model.fusion)
    if getattr(model, "modality_dropout", 0):
        name += f" + modality dropout {model.modality_dropout:g}"
    if getattr(model, "aux_weight", 0):
        name += f" + auxiliary ViT loss {model.aux_weight:g}"
    return name


def tuned_probe(train_x, train_y, val_x, val_y, Cs=(1e-3, 1e-2, 1e-1, 1.0, 10.0)):
    """A linear probe done the usual way (CLIP's paper): scikit-learn's multinomial logistic
    regression on frozen features ``(N, D)``, its inverse regularisation ``C`` chosen by
    validation macro-F1 among ``Cs``. Returns ``(classifier, {C: validation macro-F1})``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    x, xv = np.asarray(train_x, dtype=np.float64), np.asarray(val_x, dtype=np.float64)
    fitted, val_f1 = {}, {}
    for C in Cs:
        fitted[C] = LogisticRegression(C=C, max_iter=3000).fit(x, np.asarray(train_y))
        val_f1[C] = float(f1_score(np.asarray(val_y), fitted[C].predict(xv), average="macro"))
    best = max(Cs, key=lambda C: (val_f1[C], -C))          # ties: the stronger regularisation
    return fitted[best], val_f1
