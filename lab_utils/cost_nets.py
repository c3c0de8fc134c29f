"""The notebooks' models as ``lab_utils.cost`` counts them: each built at full size on the
``meta`` device (shapes only: no weights, no arithmetic, no download) through the lab's own
classes, and ``FlopCounterMode`` counting one forward or forward + backward pass.

``Net(name, build, inputs)`` is one model and its input; the ``*_net`` functions build the
nets each notebook's plan uses (``lab_utils.cost.plan_01`` … ``plan_05``), read from the
configs' model names.
"""
from __future__ import annotations

import contextlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

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
    """ViT-B/16 (``ViTConfig()`` defaults: 224 px, patch 16, hidden 768, 12 layers) in the full
    profile; the quick profile's small ViT otherwise (``quick_vit_config``)."""
    from transformers import ViTConfig

    from .models.pretrained import quick_vit_config

    return ViTConfig() if profile == "full" else quick_vit_config()


@lru_cache(maxsize=None)
def fer_net(profile: str, image_size: int, spec: tuple = (("mode", "rgb"),),
            trainable: int | str = "all") -> Net:
    """Notebooks 04-05: ``create_multimodal_vit_model(**dict(spec))`` at ``image_size``.
    ``trainable``: ``"all"``, ``"head"`` (frozen backbone) or ``k`` (the top k blocks open)."""
    from .models.fer import create_multimodal_vit_model
    from .models.pretrained import DEFAULT_VIT

    kwargs = dict(spec)

    def build():
        m = create_multimodal_vit_model(**kwargs, model_name=DEFAULT_VIT, quick_config=vit_config(profile),
                                        profile="quick", verbose=False)   # a config, not a download
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
    from .models.fer import make_fer_head

    h = vit_config(profile).hidden_size
    return Net(f"FER head h={h}", lambda: make_fer_head(h), lambda b: (torch.empty(b, h),))


@lru_cache(maxsize=None)
def small_vit_net(image_size: int, patch_size: int, hidden_size: int, layers: int, heads: int,
                  intermediate: int, num_classes: int) -> Net:
    """Notebook 01's from-scratch ``VisionTransformer``."""
    from .models.vit import VisionTransformer

    return Net("small ViT", lambda: VisionTransformer(
        image_size=image_size, patch_size=patch_size, hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=intermediate, num_classes=num_classes),
        lambda b: (_images(b, image_size),))


@lru_cache(maxsize=None)
def clip_image_net(backbone: str, image_size: int, embed_dim: int) -> Net:
    """Notebook 02's ResNet image encoder: a torchvision ResNet (``weights=None``) + projection head."""
    from .models.clip import CLIPImageEncoder

    return Net(f"{backbone} {image_size} px", lambda: CLIPImageEncoder(backbone, embed_dim, pretrained=False),
               lambda b: (_images(b, image_size),))


#: ViT sizes by the word in a model's name: (hidden, layers, heads), MLP 4 × hidden; CLIP's
#: ViT towers have the same sizes (their projection: base 512, large 768).
VIT_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16),
             "huge": (1280, 32, 16)}


def _vit_shape(model_name: str, patch: int, image_size: int = 224) -> dict[str, Any]:
    """Size, patch and resolution read from a ViT's hub name (``google/vit-large-patch16-224``,
    ``openai/clip-vit-large-patch14-336``); what the name leaves out: ViT-B, ``patch``, 224 px."""
    name = str(model_name).lower()
    hidden, layers, heads = VIT_SIZES[next((s for s in VIT_SIZES if s in name), "base")]
    found_patch, found_size = re.search(r"patch(\d+)", name), re.search(r"-(\d{3})(?:-|$)", name)
    return dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                intermediate_size=4 * hidden, patch_size=int(found_patch.group(1)) if found_patch else patch,
                image_size=int(found_size.group(1)) if found_size else image_size)


def vit_config_for(model_name: str):
    """The ``ViTConfig`` of a ``ViTModel`` hub id or local folder, without a download: a local
    folder's own ``config.json``; a hub id's size from its name (``_vit_shape``:
    ``google/vit-base-patch16-224-in21k`` → ``ViTConfig()`` = ViT-B/16 at 224 px)."""
    from transformers import ViTConfig

    from .models.pretrained import is_local_dir

    if is_local_dir(model_name):
        return ViTConfig.from_pretrained(str(model_name))
    return ViTConfig(**_vit_shape(model_name, patch=16))


def clip_vision_config_for(model_name: str):
    """The ``CLIPVisionConfig`` of a CLIP hub id or local folder, without a download
    (``openai/clip-vit-base-patch32`` → ``CLIPVisionConfig()``; ``…-large-patch14-336`` →
    ViT-L/14 at 336 px with a 768-d projection)."""
    from transformers import CLIPVisionConfig

    from .models.pretrained import is_local_dir

    if is_local_dir(model_name):
        return CLIPVisionConfig.from_pretrained(str(model_name))
    shape = _vit_shape(model_name, patch=32)
    return CLIPVisionConfig(**shape, projection_dim=768 if shape["hidden_size"] > 768 else 512)


@lru_cache(maxsize=None)
def vit_image_net(vit_model_name: str | None, image_size: int, embed_dim: int) -> Net:
    """Notebook 02's ``ViTImageEncoder`` (the ViT + BERT recipe) at ``image_size``: the ViT of
    ``vit_model_name`` (``vit_config_for``), or the lab's small ViT (``quick_vit_config``)
    when ``None`` — what the encoder builds without pretrained weights."""
    from .models.clip import ViTImageEncoder
    from .models.pretrained import quick_vit_config

    config = quick_vit_config(image_size=image_size) if vit_model_name is None else vit_config_for(vit_model_name)
    name = "small ViT" if vit_model_name is None else f"ViT {vit_model_name}"
    return Net(f"{name} {image_size} px", lambda: ViTImageEncoder(
        embed_dim=embed_dim, image_size=image_size, pretrained=False, profile="quick", vit_config=config),
        lambda b: (_images(b, image_size),))


def clip_encoder_net(settings: Mapping[str, Any], profile: str) -> Net:
    """The image encoder ``create_clip_model(**settings)`` trains (``settings``: one model of
    ``lab_utils.recipes.clip.clip_settings``): a ResNet (``clip_image_net``) or a ViT
    (``vit_image_net``: the hub ViT when pretrained, else the lab's small ViT)."""
    size, dim = int(settings["image_size"]), int(settings["embed_dim"])
    if settings["image_backbone"] != "vit":
        return clip_image_net(settings["image_backbone"], size, dim)
    from .models.pretrained import DEFAULT_VIT

    pretrained = settings.get("pretrained")
    pretrained = profile == "full" if pretrained is None else pretrained
    return vit_image_net((settings.get("vit_model_name") or DEFAULT_VIT) if pretrained else None, size, dim)


TEXT_TOWERS = ("clip", "clip-large", "minilm", "distilbert", "bert")
"""The frozen text transformers ``text_tower_net`` counts: CLIP ViT-B's text tower (512 wide,
12 layers), CLIP ViT-L's (768 wide), all-MiniLM-L6-v2's BERT (384 wide, 6 layers), DistilBERT
(768 wide, 6 layers), BERT-base (768 wide, 12 layers)."""


def text_tower_kind(model_name: str) -> str:
    """Which of ``TEXT_TOWERS`` a notebook 02 ``text.model_name`` loads: the packaged MiniLM
    and ``*MiniLM*`` ids → ``"minilm"``; CLIP ids → ``"clip"`` (``"clip-large"`` for ViT-L);
    DistilBERT ids → ``"distilbert"``; a local folder by its ``config.json``; any other
    BERT-like id → ``"bert"`` (BERT-base's size)."""
    from .models.clip import _MINILM_ALIASES
    from .models.pretrained import is_local_dir

    name = str(model_name)
    if name in _MINILM_ALIASES:
        return "minilm"
    if is_local_dir(name):
        try:
            cfg = json.loads((Path(name).expanduser() / "config.json").read_text())
        except (OSError, ValueError):
            cfg = {}
        kind, text = cfg.get("model_type", ""), cfg.get("text_config") or cfg
        if kind.startswith("clip"):
            return "clip-large" if text.get("hidden_size", 512) > 512 else "clip"
        if kind == "distilbert":
            return "distilbert"
        return "minilm" if cfg.get("hidden_size") == 384 else "bert"
    lower = name.lower()
    if "clip" in lower:
        return "clip-large" if "large" in lower else "clip"
    return "minilm" if "minilm" in lower else "distilbert" if "distilbert" in lower else "bert"


@lru_cache(maxsize=None)
def text_tower_net(kind: str, tokens: int = CAPTION_TOKENS) -> Net:
    """A frozen text transformer of notebook 02 (``kind``: one of ``TEXT_TOWERS``, see
    ``text_tower_kind``), on ``tokens`` tokens per caption."""
    if kind not in TEXT_TOWERS:
        raise ValueError(f"unknown text tower {kind!r}. Allowed: {', '.join(TEXT_TOWERS)} "
                         "(text_tower_kind(text.model_name) gives the one a config loads).")

    def build():
        import transformers as T

        if kind.startswith("clip"):
            wide = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12) if kind == "clip-large" else {}
            return T.CLIPTextModel(T.CLIPTextConfig(**wide))
        if kind == "distilbert":
            return T.DistilBertModel(T.DistilBertConfig())
        small = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
        return T.BertModel(T.BertConfig(**(small if kind == "minilm" else {})), add_pooling_layer=False)
    # Counted on the CPU: transformers 4.x's BERT-like models inspect their mask and ids with
    # .item() calls the meta device cannot answer (same count, a second or two of real work).
    return Net(f"text tower ({kind})", build, lambda b: {"input_ids": torch.zeros(b, tokens, dtype=torch.long),
                                                        "attention_mask": torch.ones(b, tokens, dtype=torch.long)},
               device="cpu")


def text_features_key(settings: Mapping[str, Any]) -> tuple[str, str]:
    """``(text model, pooling)`` of one model's frozen caption features, as
    ``TextEmbeddingCache.serves`` compares them at run time (aliases of the packaged MiniLM
    made one name, ``pooling="auto"`` resolved): two models with the same key share one cache."""
    from .models.clip import _MINILM_ALIASES, PACKAGED_MINILM, _auto_pooling
    from .models.pretrained import is_local_dir

    name, pooling = str(settings["text_model_name"]), settings.get("pooling") or "auto"
    if name in _MINILM_ALIASES:
        name = PACKAGED_MINILM
    if text_tower_kind(name).startswith("clip"):
        return name, "eos"                     # a CLIP text tower pools its end-of-text token
    if pooling == "auto":
        local = Path(name).expanduser() if is_local_dir(name) else None
        pooling = _auto_pooling(local, "all-MiniLM-L6-v2" if name == PACKAGED_MINILM else name)
    return name, pooling


@contextlib.contextmanager
def _quiet_open_clip():
    """open_clip logs "No pretrained weights loaded … initialized randomly" for every random-init
    model; here random init is the point, so the line is kept out of the estimate's output."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _lab_branch(make: Callable[[], nn.Module], image_size: int, embed_dim: int,
                source: str) -> Callable[[], nn.Module]:
    """``build()`` of a frozen branch around one of notebook 02's encoders (``make()``)."""
    from .models.hybrid import FrozenCLIPBranch

    return lambda: FrozenCLIPBranch(make(), "lab", embed_dim, image_size, source=source)


def _recipe_branch(profile: str, checkpoint: Path | None = None) -> Callable[[], nn.Module]:
    """The encoder notebook 02 trains in ``profile`` and saves at ``checkpoint`` (its main or
    compare model, ``_recipe_saved_at``; ``None``: the main model, the default checkpoint)."""
    from .config import load_config
    from .recipes.clip import _recipe_saved_at, clip_config_path, clip_settings

    cfg = load_config(clip_config_path(), profile=profile)
    which = _recipe_saved_at(checkpoint, cfg) if checkpoint is not None else "main"
    settings = clip_settings(cfg, which)
    return _lab_branch(clip_encoder_net(settings, profile).build, int(settings["image_size"]),
                       int(settings["embed_dim"]), f"notebook 02's {which} model")


def _checkpoint_branch(checkpoint: Path, profile: str) -> Callable[[], nn.Module]:
    """A notebook 02 checkpoint: the encoder its state records (backbone, embed_dim,
    image_size, a ViT's whole config); before notebook 02 has written it, the recipe that
    notebook 02 saves there in ``profile`` (``_recipe_branch``)."""
    from .models.clip import ViTImageEncoder
    from .recipes.clip import _read_checkpoint_state

    if not checkpoint.is_file():
        return _recipe_branch(profile, checkpoint)
    state = _read_checkpoint_state(checkpoint)
    size, dim = int(state.get("image_size", 32)), int(state["embed_dim"])
    if state["backbone"] == "vit":
        make = lambda: ViTImageEncoder(embed_dim=dim, image_size=size, pretrained=False,  # noqa: E731
                                       profile="quick", vit_config=state["vit_config"])
    else:
        make = clip_image_net(state["backbone"], size, dim).build
    return _lab_branch(make, size, dim, checkpoint.name)


@lru_cache(maxsize=None)
def clip_branch_spec(profile: str, model_name: str = "ViT-B/32") -> tuple[Callable[[], nn.Module], int, int]:
    """Notebook 03's frozen CLIP branch for ``clip.model_name``, as ``load_clip_branch`` picks
    it: ``(build, image_size, embed_dim)``, ``build()`` giving a random-init ``FrozenCLIPBranch``.

    * a notebook 02 checkpoint (``checkpoints/02_clip_image_encoder_vit.safetensors``), any
      profile → the lab's encoder recorded in the file (``_checkpoint_branch``);
    * full profile, one of OpenAI's ResNet CLIPs (``RN50`` … ``RN50x64``) → open_clip's image
      tower (``open_clip.create_model(name)``, random init, on the current default device: the
      meta device when counting), at its own input size (RN50x64: 448 px);
    * full profile, a ViT CLIP short name, hub id or folder → ``CLIPVisionModelWithProjection``
      of that size (``clip_vision_config_for``: ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px);
    * quick profile, any other name → notebook 02's main image encoder (``configs/clip.yml``'s
      main recipe in the quick profile: a ResNet18 at 32 px).

    Raises ``ValueError`` for a name ``resolve_clip_name`` refuses (the message lists the known ones)."""
    from .models.hybrid import FrozenCLIPBranch, is_open_clip_name, lab_checkpoint_file, resolve_clip_name

    target = resolve_clip_name(model_name)
    checkpoint = lab_checkpoint_file(target)
    if checkpoint is not None:
        build = _checkpoint_branch(checkpoint, profile)
    elif profile == "full" and is_open_clip_name(target):
        def build():
            import open_clip

            with _quiet_open_clip():
                model = open_clip.create_model(target, pretrained=None, force_quick_gelu=True,
                                               device=torch.get_default_device())
            return FrozenCLIPBranch.from_open_clip(model, source=f"open_clip {target} (random init)")
    elif profile == "full":
        config = clip_vision_config_for(target)

        def build():
            from transformers import CLIPVisionModelWithProjection

            return FrozenCLIPBranch.from_hf(CLIPVisionModelWithProjection(config), source=target)
    else:
        build = _recipe_branch(profile)
    with torch.device("meta"):
        branch = build()
    return build, int(branch.image_size), int(branch.embed_dim)


@lru_cache(maxsize=None)
def clip_branch_net(profile: str, model_name: str = "ViT-B/32") -> Net:
    """Notebook 03's frozen CLIP branch (``clip_branch_spec``) on images at its own input size."""
    build, size, _ = clip_branch_spec(profile, model_name)
    return Net(f"CLIP branch {model_name} ({profile}, {size} px)", build, lambda b: (_images(b, size),))


@lru_cache(maxsize=None)
def hybrid_net(profile: str, fusion: str, image_size: int, clip_name: str = "ViT-B/32") -> Net:
    """Notebook 03's ``HybridViTCLIP`` on (ViT pixels, cached CLIP embeddings of the branch
    ``clip_name`` names: their width is its ``embed_dim``, e.g. 512 for ViT-B/32, 1024 for RN50)."""
    from transformers import ViTModel

    from .models.hybrid import HybridViTCLIP

    build_clip, _, embed = clip_branch_spec(profile, clip_name)

    def build():
        vit = ViTModel(vit_config(profile), add_pooling_layer=False) if fusion != "clip_only" else None
        clip = build_clip() if fusion != "vit_only" else None
        return HybridViTCLIP(vit, clip, 7, fusion=fusion)
    return Net(f"hybrid {fusion}", build, lambda b: {
        "pixel_values_vit": _images(b, image_size) if fusion != "clip_only" else None,
        "clip_embeds": torch.empty(b, embed)})
