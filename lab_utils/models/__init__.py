"""The lab's models, one file per family, each readable on its own:

* ``vit.py``       — ``patchify``, ``PatchEmbedding``, ``VisionTransformer`` (notebook 01)
* ``clip.py``      — ``CLIPImageEncoder``, ``CLIPTextEncoder``, ``CLIP``, ``create_clip_model`` (02)
* ``hybrid.py``    — ``HybridViTCLIP`` (03)
* ``fer.py``       — ``ViTForFER``, ``EarlyFusionViT``, ``LateFusionViT``,
  ``create_multimodal_vit_model`` (04, 05)
* ``pretrained.py``— loading pretrained weights offline-safely, the quick profile's small configs
* ``specs.py``     — ``build(spec, device)``: any family's architecture from its spec

Names are imported lazily (PEP 562), so importing one family never pulls in the others.
Data plumbing lives in ``lab_utils.data``, training recipes in ``lab_utils.recipes``.
"""
from __future__ import annotations

import importlib

_LAZY: dict[str, str] = {
    "patchify": "vit", "PatchEmbedding": "vit", "VisionTransformer": "vit",
    "EncoderBlock": "vit", "MultiHeadSelfAttention": "vit", "attention_rollout": "vit",
    "CLIPImageEncoder": "clip", "CLIPTextEncoder": "clip", "CLIP": "clip",
    "create_clip_model": "clip",
    "HybridViTCLIP": "hybrid",
    "ViTForFER": "fer", "EarlyFusionViT": "fer", "LateFusionViT": "fer",
    "create_multimodal_vit_model": "fer",
    "build": "specs",
    "load_pretrained": "pretrained", "quick_vit_config": "pretrained",
    "PretrainedUnavailable": "pretrained", "count_parameters": "pretrained",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'lab_utils.models' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
