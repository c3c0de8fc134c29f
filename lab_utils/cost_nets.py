"""The notebooks' models as ``lab_utils.cost`` counts them: each settled by the spec function
the notebooks' loaders use (``vit_spec``, ``fer_spec``, ``recipe_clip_branch_spec``, notebook 02's
``image_encoder_spec``), built at full size on the ``meta`` device by the matching
``build_*`` (shapes only: no weights, no arithmetic, no download), and ``FlopCounterMode``
counting one forward or forward + backward pass. Notebook 02's frozen text tower likewise:
``text_encoder_spec`` (what ``CLIPTextEncoder`` loads) built by ``build_text_transformer``.

``Net(name, build, inputs)`` is one model and its input; the ``*_net`` functions build the
nets each notebook's plan uses (``lab_utils.cost.plan_01`` … ``plan_05``), read from the
configs' model names.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .models.clip import (ImageEncoderSpec, TextEncoderSpec, build_image_encoder, build_text_transformer,
                          image_encoder_spec, text_encoder_spec)
from .models.fer import build_fer, fer_spec, make_fer_head
from .models.hybrid import HybridSpec, build_clip_branch, build_hybrid
from .models.pretrained import DEFAULT_VIT, vit_spec
from .models.vit import VisionTransformer
from .recipes.clip import recipe_clip_branch_spec

CAPTION_TOKENS = 40         # tokens per caption batch after padding to the longest (Flickr8k: 10–30 words)


# --------------------------------------------------------------------------- counting
def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of everything ``fn()`` runs (``torch.utils.flop_counter``: 2 per multiply-add of
    matmuls, convolutions and attention; element-wise ops are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


class _OpCounter(TorchDispatchMode):
    """Counts the PyTorch operations a step launches (each one kernel on a GPU; views launch
    nothing and are not counted): a dispatch mode sees every aten call."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns):
            self.ops += 1
        return func(*args, **(kwargs or {}))


class Net:
    """A model as a notebook runs it: ``build()`` makes it (called on the meta device, or on
    ``device``) and
    ``inputs(B)`` gives one batch of its forward's arguments (a tuple, or a dict of keywords).
    ``flops(kind)``: FLOPs per item of a ``"forward"`` pass or a ``"train"`` step (forward +
    backward through the weights that require grad); ``ops(kind)``: the operations one such step
    launches, whatever the batch (what sets a big GPU's pace when the batch is small). Both from
    one counted step, remembered."""

    BATCH = 4   # any batch gives the same FLOPs per item and the same operations per step

    def __init__(self, name: str, build: Callable[[], nn.Module], inputs: Callable[[int], tuple | dict],
                 device: str = "meta"):
        self.name, self.build, self.inputs, self.device = name, build, inputs, device
        self._counts: dict[str, float] | None = None

    def _count(self) -> dict[str, float]:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.device(self.device):
            model = self.build()
            args = self.inputs(self.BATCH)
        model.train()    # dropout and batch norm count no FLOPs: train and eval forwards cost the same
        with FlopCounterMode(display=False) as counter, _OpCounter() as ops:   # (not torch.no_grad: it
            out = model(**args) if isinstance(args, dict) else model(*args)    # trips the module tracker)
            forward, forward_ops = counter.get_total_flops(), ops.ops
            out = getattr(out, "logits", getattr(out, "last_hidden_state", out))
            out = out[0] if isinstance(out, tuple) else out
            if out.requires_grad:                          # a frozen model has no backward
                out.float().sum().backward()
            train = counter.get_total_flops()
        return {"forward": forward / self.BATCH, "train": train / self.BATCH,
                "forward_ops": forward_ops, "train_ops": ops.ops}

    def _counted(self, kind: str) -> dict[str, float]:
        if kind not in ("forward", "train"):
            raise ValueError(f"kind={kind!r}: use 'forward' (inference) or 'train' (forward + backward)")
        if self._counts is None:
            self._counts = self._count()
        return self._counts

    def flops(self, kind: str) -> float:
        return self._counted(kind)[kind]

    def ops(self, kind: str) -> int:
        return int(self._counted(kind)[kind + "_ops"])


def _images(b: int, size: int, channels: int = 3) -> torch.Tensor:
    return torch.empty(b, channels, size, size)


# --------------------------------------------------------------------------- the notebooks' models
def vit_config(profile: str):
    """The ``ViTConfig`` of the notebooks' default ViT in ``profile`` (``vit_spec``): ViT-B/16 at
    224 px in the full profile, the quick profile's small ViT otherwise."""
    return vit_spec(DEFAULT_VIT, profile).config


@lru_cache(maxsize=None)
def fer_net(profile: str, image_size: int, spec: tuple = (("mode", "rgb"),),
            trainable: int | str = "all") -> Net:
    """Notebooks 04-05: ``create_multimodal_vit_model(**dict(spec))`` on the default ViT of
    ``profile`` (``fer_spec``, built by ``build_fer``) at ``image_size``. ``trainable``:
    ``"all"``, ``"head"`` (frozen backbone) or ``k`` (the top k blocks open)."""
    kwargs = dict(spec)
    settled = fer_spec(DEFAULT_VIT, profile, **kwargs)

    def build():
        m = build_fer(settled)
        if trainable != "all":
            m.freeze()
            if trainable != "head":
                m.unfreeze_backbone(int(trainable))
        return m

    two = kwargs.get("mode") == "combined"
    return Net(f"{kwargs} {image_size} px {trainable}", build,
               lambda b: (_images(b, image_size), _images(b, image_size)) if two else (_images(b, image_size),))


@lru_cache(maxsize=None)
def fer_head_net(profile: str) -> Net:
    """The FER head alone, on cached backbone features ``(B, h)``."""
    h = vit_config(profile).hidden_size
    return Net(f"FER head h={h}", lambda: make_fer_head(h), lambda b: (torch.empty(b, h),))


@lru_cache(maxsize=None)
def small_vit_net(image_size: int, patch_size: int, hidden_size: int, layers: int, heads: int,
                  intermediate: int, num_classes: int) -> Net:
    """Notebook 01's from-scratch ``VisionTransformer``."""
    return Net("small ViT", lambda: VisionTransformer(
        image_size=image_size, patch_size=patch_size, hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=intermediate, num_classes=num_classes),
        lambda b: (_images(b, image_size),))


@lru_cache(maxsize=None)
def clip_image_net(backbone: str, image_size: int, embed_dim: int) -> Net:
    """Notebook 02's ResNet image encoder: a torchvision ResNet (``weights=None``) + projection head."""
    return image_encoder_net(image_encoder_spec(backbone, embed_dim, image_size, pretrained=False))


@lru_cache(maxsize=None)
def vit_image_net(vit_model_name: str | None, image_size: int, embed_dim: int) -> Net:
    """Notebook 02's ``ViTImageEncoder`` (the ViT + BERT recipe) at ``image_size``: the ViT of
    ``vit_model_name`` (pretrained: ``vit_spec``), or the lab's small ViT when ``None``."""
    return image_encoder_net(image_encoder_spec("vit", embed_dim, image_size, vit_model_name is not None,
                                                vit_model_name))


def image_encoder_net(spec: ImageEncoderSpec) -> Net:
    """An image encoder of notebook 02 (``build_image_encoder``) on images at its ``image_size``."""
    return Net(f"{spec.backbone} {spec.image_size} px", lambda: build_image_encoder(spec),
               lambda b: (_images(b, spec.image_size),))


def clip_encoder_net(settings: Mapping[str, Any], profile: str) -> Net:
    """The image encoder ``create_clip_model(**settings)`` trains (``settings``: one model of
    ``lab_utils.recipes.clip.clip_settings``), as ``image_encoder_spec`` settles it for both."""
    spec = image_encoder_spec(settings["image_backbone"], settings["embed_dim"], settings["image_size"],
                              settings.get("pretrained"), settings.get("vit_model_name"), profile)
    if spec.backbone != "vit":
        return clip_image_net(spec.backbone, spec.image_size, spec.embed_dim)
    return image_encoder_net(spec)


def text_spec(settings: Mapping[str, Any], profile: str) -> TextEncoderSpec:
    """The frozen text tower of one model of ``lab_utils.recipes.clip.clip_settings``, as
    ``CLIPTextEncoder`` settles it (``text_encoder_spec``). Its ``key`` is what
    ``TextEmbeddingCache.serves`` compares: two models with the same key share one cache."""
    return text_encoder_spec(settings["text_model_name"], profile, settings.get("pooling") or "auto")


@lru_cache(maxsize=None)
def text_tower_net(model_name: str, profile: str, tokens: int = CAPTION_TOKENS) -> Net:
    """Notebook 02's frozen text transformer for ``text.model_name`` in ``profile``
    (``build_text_transformer`` of ``text_encoder_spec``), on ``tokens`` tokens per caption."""
    spec = text_encoder_spec(model_name, profile)
    # Counted on the CPU: BERT-like models inspect their mask and ids with .item() calls the
    # meta device cannot answer (same count, a second or two of real work).
    return Net(f"text tower ({spec.model_name})", lambda: build_text_transformer(spec),
               lambda b: {"input_ids": torch.zeros(b, tokens, dtype=torch.long),
                          "attention_mask": torch.ones(b, tokens, dtype=torch.long)}, device="cpu")


@lru_cache(maxsize=None)
def clip_branch_spec(profile: str, model_name: str = "ViT-B/32") -> tuple[Callable[[], nn.Module], int, int]:
    """Notebook 03's frozen CLIP branch for ``clip.model_name``, settled by the function the
    lab loads it with (``recipe_clip_branch_spec``: a notebook 02 encoder not saved yet is
    the one notebook 02 saves there): ``(build, image_size, embed_dim)``, ``build()`` giving a
    random-init ``FrozenCLIPBranch`` (``build_clip_branch``) on the current default device.

    Raises ``ValueError`` for a name ``resolve_clip_name`` refuses (the message lists the known ones)."""
    spec = recipe_clip_branch_spec(model_name, profile)
    branch = build_clip_branch(spec, "meta")
    return (lambda: build_clip_branch(spec)), int(branch.image_size), int(branch.embed_dim)


@lru_cache(maxsize=None)
def clip_branch_net(profile: str, model_name: str = "ViT-B/32") -> Net:
    """Notebook 03's frozen CLIP branch (``clip_branch_spec``) on images at its own input size."""
    build, size, _ = clip_branch_spec(profile, model_name)
    return Net(f"CLIP branch {model_name} ({profile}, {size} px)", build, lambda b: (_images(b, size),))


@lru_cache(maxsize=None)
def hybrid_net(profile: str, fusion: str, image_size: int, clip_name: str = "ViT-B/32") -> Net:
    """Notebook 03's ``HybridViTCLIP`` (``build_hybrid``: the default ViT of ``profile`` and the
    branch ``clip_name`` names) on (ViT pixels, cached CLIP embeddings: their width is the
    branch's ``embed_dim``, e.g. 512 for ViT-B/32, 1024 for RN50)."""
    _, _, embed = clip_branch_spec(profile, clip_name)
    spec = HybridSpec(vit_spec(DEFAULT_VIT, profile) if fusion != "clip_only" else None,
                      recipe_clip_branch_spec(clip_name, profile) if fusion != "vit_only" else None, 7, fusion)
    return Net(f"hybrid {fusion}", lambda: build_hybrid(spec), lambda b: {
        "pixel_values_vit": _images(b, image_size) if fusion != "clip_only" else None,
        "clip_embeds": torch.empty(b, embed)})
