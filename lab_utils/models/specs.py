"""Every model family as a spec: a small frozen dataclass settled once from the validated
config and the notebook's profile, then built (architecture only) or loaded (with weights,
never trained):

* ViT backbone — ``ViTSpec`` (``vit_spec``) → ``build_vit`` / ``load_vit``;
* notebook 02's image encoder — ``ImageEncoderSpec`` (``image_encoder_spec``, or a checkpoint's
  header: ``image_encoder_spec_from_file``) → ``build_image_encoder`` / ``load_image_encoder``;
* notebook 02's frozen text tower — ``TextEncoderSpec`` (``text_encoder_spec``) →
  ``build_text_transformer`` (the bare transformer) / ``CLIPTextEncoder`` (with its weights);
* notebook 03's frozen CLIP branch — ``CLIPBranchSpec`` (``clip_branch_spec``) →
  ``build_clip_branch`` / ``load_clip_branch``;
* notebook 03's hybrid — ``HybridSpec`` (``hybrid_spec``) → ``build_hybrid`` /
  ``HybridViTCLIP.from_config``;
* notebooks 04-05's FER and fusion models — ``FERSpec`` (``fer_spec``) → ``build_fer`` /
  ``create_multimodal_vit_model``.

``build(spec, device)`` creates the architecture of any of them with random weights on
``device`` (``"meta"``: shapes only, no memory, no download): what the cost estimate counts.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .clip import ImageEncoderSpec, TextEncoderSpec, build_image_encoder, build_text_transformer
from .fer import FERSpec, build_fer
from .hybrid import CLIPBranchSpec, HybridSpec, build_clip_branch, build_hybrid
from .pretrained import ViTSpec, build_vit

BUILDERS: dict[type, Callable[..., nn.Module]] = {
    ViTSpec: build_vit, ImageEncoderSpec: build_image_encoder, TextEncoderSpec: build_text_transformer,
    CLIPBranchSpec: build_clip_branch, HybridSpec: build_hybrid, FERSpec: build_fer,
}


def build(spec: Any, device: str | torch.device | None = None) -> nn.Module:
    """The architecture ``spec`` describes, random init, on ``device`` (``None``: the current
    default device). Never downloads, never loads weights, never trains."""
    builder = BUILDERS.get(type(spec))
    if builder is None:
        raise TypeError(f"build() got a {type(spec).__name__}; it builds "
                        f"{', '.join(t.__name__ for t in BUILDERS)}. Make one with vit_spec, image_encoder_spec, "
                        "text_encoder_spec, clip_branch_spec, hybrid_spec or fer_spec.")
    return builder(spec, device)
