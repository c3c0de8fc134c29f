"""Loading pretrained weights the way a course needs it: offline-safe and explicit.

``load_pretrained(cls, name_or_path, quick_config=..., what=...)``:

* a **local directory** (``save_pretrained`` output) is always loaded as is;
* a **hub id** in the **quick** profile is never fetched: a small model of the same
  architecture (``quick_config``, random weights) is built instead and one line says so;
* a **hub id** in the **full** profile comes from the local Hugging Face cache, or from
  the hub when it is reachable. With no network (or ``HF_HUB_OFFLINE=1``) it fails within
  seconds with ``PretrainedUnavailable`` saying what to do — never a silent swap.

A ``transformers.ViTModel`` backbone goes through a spec: ``vit_spec(name, profile)`` settles
it once (its config, whether it has weights to load), ``build_vit`` makes the architecture on
any device (``meta`` included), ``load_vit`` adds the weights by the rules above.
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..network import hub_offline, hub_reachable, reachable
from ..paths import is_local_dir


DEFAULT_VIT = "google/vit-base-patch16-224-in21k"
"""The ViT every family loads by default (full profile): ViT-B/16 pretrained on ImageNet-21k."""


class PretrainedUnavailable(RuntimeError):
    """Pretrained weights that cannot be loaded here; the message says what to do."""


@contextlib.contextmanager
def quiet_transformers():
    """While loading: no "Loading weights" progress bars and no load report. Loading one
    tower of a CLIP checkpoint (``CLIPTextModelWithProjection``,
    ``CLIPVisionModelWithProjection``) otherwise prints every weight of the other tower as
    "UNEXPECTED", which is expected and only alarms a student. Errors still raise."""
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def resnet_weights(backbone: str):
    """ImageNet weights for a torchvision ResNet, from the torch hub cache or the network.

    Fails within seconds (``PretrainedUnavailable``) when they are not cached and the
    download server cannot be reached, instead of hanging in retries."""
    import torchvision

    weights = torchvision.models.get_model_weights(backbone).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cached.is_file():
        return weights
    how = (f"On Colab or any machine with internet run it again; or download {weights.url} once "
           f"and place it at {cached}; or use LAB_PROFILE=quick (random-init {backbone}), "
           "or create_clip_model(pretrained=False).")
    if hub_offline():
        raise PretrainedUnavailable(f"ImageNet weights for {backbone} are not in the torch hub cache "
                                    f"({cached}) and HF_HUB_OFFLINE=1 says this machine is offline. {how}")
    if not reachable(weights.url):
        raise PretrainedUnavailable(f"ImageNet weights for {backbone} are not cached ({cached}) and "
                                    f"{urlparse(weights.url).hostname} cannot be reached from this machine. {how}")
    return weights


def describe_config(config: Any) -> str:
    """A short human description of a transformers config (layers, width, heads, input)."""
    parts = []
    for attr, label in (("num_hidden_layers", "layers"), ("hidden_size", "hidden"),
                        ("num_attention_heads", "heads")):
        if hasattr(config, attr):
            parts.append(f"{getattr(config, attr)} {label}" if label != "hidden" else f"hidden {getattr(config, attr)}")
    if hasattr(config, "image_size"):
        parts.append(f"{config.image_size} px, patch {getattr(config, 'patch_size', '?')}")
    return ", ".join(parts)


def quick_vit_config(**overrides: Any):
    """The quick profile's small ViT: 32 px images, 8-px patches (16 patches + [CLS]),
    hidden 64, 4 layers, 4 heads, MLP 128 — the ViT-B architecture, shrunk.

    Weights start with std 0.1 instead of ViT-B's 0.02: trained from scratch in a short
    run, a model this small sits at chance for many epochs with std 0.02 (measured on the
    synthetic faces: RGB-only macro-F1 0.15 vs 0.46 after 16 epochs)."""
    from transformers import ViTConfig

    settings = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64,
                    num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, qkv_bias=True,
                    initializer_range=0.1)
    settings.update(overrides)
    return ViTConfig(**settings)


#: ViT sizes by the word in a model's name: (hidden, layers, heads), MLP 4 × hidden; CLIP's
#: ViT towers have the same sizes.
VIT_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16),
             "huge": (1280, 32, 16)}


def vit_shape_from_name(model_name: str, patch: int, image_size: int = 224) -> dict[str, Any]:
    """Size, patch and resolution read from a ViT's hub name (``google/vit-large-patch16-224``,
    ``openai/clip-vit-large-patch14-336``); what the name leaves out: ViT-B, ``patch``, 224 px.

    The one place a shape is guessed from a name: ``cached_config`` gives ``None`` for a hub id
    whose ``config.json`` is not on this machine (never downloaded), and the spec resolvers
    (``vit_spec``, ``clip_branch_spec``) then build this shape, so that a model of the full
    profile can be built on the ``meta`` device (the cost estimate) without a download."""
    name = str(model_name).lower()
    hidden, layers, heads = VIT_SIZES[next((s for s in VIT_SIZES if s in name), "base")]
    found_patch, found_size = re.search(r"patch(\d+)", name), re.search(r"-(\d{3})(?:-|$)", name)
    return dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                intermediate_size=4 * hidden, patch_size=int(found_patch.group(1)) if found_patch else patch,
                image_size=int(found_size.group(1)) if found_size else image_size)


def cached_config(config_cls: Any, name_or_path: str) -> Any:
    """``config_cls`` (``ViTConfig``, ``CLIPVisionConfig`` …) of a local folder or of a hub id in
    the local Hugging Face cache; ``None`` when it is not on this machine (or a folder holds no
    ``config.json``: transformers 4.x would guess a model type from the folder's path). Never
    downloads."""
    name = str(name_or_path)
    if is_local_dir(name) and not (Path(name).expanduser() / "config.json").is_file():
        return None
    try:
        with quiet_transformers():
            return config_cls.from_pretrained(name, **({} if is_local_dir(name) else {"local_files_only": True}))
    except (OSError, ValueError):
        return None


def _from_pretrained(model_cls: Any, name: str, **kwargs: Any) -> Any:
    with quiet_transformers():
        return model_cls.from_pretrained(name, **kwargs)


def _say_quick(what: str, model_cls: Any, config: Any, name: str) -> None:
    print(f"Quick profile: {what} is a small {getattr(model_cls, '__name__', 'model')} "
          f"({describe_config(config)}, random init) instead of {name}.")


def load_pretrained(model_cls: Any, name_or_path: str | os.PathLike, *, quick_config: Any = None,
                    what: str = "model", profile: str = "quick", verbose: bool = True,
                    **kwargs: Any) -> Any:
    """Load ``model_cls.from_pretrained(name_or_path)`` following the profile rules above,
    quietly (``quiet_transformers``: no progress bars, no load report).

    Args:
        model_cls: a transformers class (``ViTModel``, ``CLIPModel``, ``AutoTokenizer`` …).
        name_or_path: a hub id (``google/vit-base-patch16-224-in21k``) or a local directory.
        quick_config: the small config used instead of a hub id in the quick profile.
        what: how to name this model in messages ("ViT backbone", "CLIP text encoder").
        profile: the notebook's settled profile (``lab.profile``); ``"quick"`` never downloads.
    """
    name = str(name_or_path)
    if is_local_dir(name):
        try:
            return _from_pretrained(model_cls, name, **kwargs)
        except (OSError, ValueError, KeyError) as err:
            raise PretrainedUnavailable(
                f"{what}: could not load {getattr(model_cls, '__name__', model_cls)} from the local "
                f"directory {name}: {err}. The folder should hold what save_pretrained() writes "
                "(config.json and model.safetensors, plus tokenizer files for a tokenizer).") from None
    if profile == "quick":
        if quick_config is None:
            raise PretrainedUnavailable(
                f"{what}: {name!r} would have to be downloaded, and the quick profile never "
                "downloads. Pass a local directory, or run with LAB_PROFILE=full on a machine "
                "with internet.")
        if verbose:
            _say_quick(what, model_cls, quick_config, name)
        return model_cls(quick_config)
    try:  # the local cache first: works offline once a model was downloaded
        return _from_pretrained(model_cls, name, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass
    how = (f"On Colab or any machine with internet, unset HF_HUB_OFFLINE and run again; or "
           f"download it once (`huggingface-cli download {name}`, or from_pretrained + "
           f"save_pretrained into a folder) and pass that folder's path; or use "
           f"LAB_PROFILE=quick to run with small random-init models.")
    if hub_offline():
        raise PretrainedUnavailable(f"{what}: {name} is not in the local Hugging Face cache "
                                    f"and HF_HUB_OFFLINE=1 forbids downloading. {how}")
    if not hub_reachable():
        raise PretrainedUnavailable(f"{what}: {name} is not cached and the Hugging Face hub "
                                    f"cannot be reached from this machine. {how}")
    try:
        return _from_pretrained(model_cls, name, **kwargs)
    except OSError as err:
        raise PretrainedUnavailable(f"{what}: downloading {name} failed ({err}). {how}") from None


@dataclass(frozen=True)
class ViTSpec:
    """A ``transformers.ViTModel`` backbone, settled once from a model name and the profile.

    ``name``: the hub id or local folder asked for; ``config``: the ``ViTConfig`` built (the
    quick profile's small one for a hub id there); ``pretrained``: whether loading has weights
    to fetch (a local folder, or a hub id in the full profile)."""

    name: str
    config: Any
    pretrained: bool


def vit_spec(model_name: str | os.PathLike = DEFAULT_VIT, profile: str = "quick",
             quick_config: Any = None) -> ViTSpec:
    """The ViT backbone ``model_name`` stands for in ``profile``, without a download: a local
    folder's own config; in the quick profile a hub id gives ``quick_config`` (default
    ``quick_vit_config()``); in the full profile a hub id's config from the local cache, else
    its shape from its name (``vit_shape_from_name``)."""
    from transformers import ViTConfig

    name = str(model_name)
    if profile == "quick" and not is_local_dir(name):
        return ViTSpec(name, quick_config or quick_vit_config(), pretrained=False)
    config = cached_config(ViTConfig, name) or ViTConfig(**vit_shape_from_name(name, patch=16))
    return ViTSpec(name, config, pretrained=True)


def fresh_config(config: Any) -> Any:
    """A copy of a spec's config for one new model: transformers' constructors write into the
    config they are given (4.x records its attention implementation there), and a spec stays
    as it was settled, equal to the same spec settled again."""
    return copy.deepcopy(config)


def on_device(device: str | torch.device | None) -> contextlib.AbstractContextManager:
    """Where a ``build_*`` function creates its weights: ``device`` (``"meta"``: shapes only, no
    memory), or the current default device when ``None``."""
    return torch.device(device) if device is not None else contextlib.nullcontext()


def build_vit(spec: ViTSpec, device: str | torch.device | None = None, add_pooling_layer: bool = True) -> nn.Module:
    """The architecture of ``spec``: a random-init ``ViTModel`` of ``spec.config`` on ``device``
    (``on_device``); never downloads, never loads weights."""
    from transformers import ViTModel

    with on_device(device):
        return ViTModel(fresh_config(spec.config), add_pooling_layer=add_pooling_layer)


def load_vit(spec: ViTSpec, what: str = "ViT backbone", verbose: bool = True) -> nn.Module:
    """The ``ViTModel`` of ``spec`` with its weights: ``from_pretrained`` for a pretrained spec
    (``load_pretrained``: the local folder, the hub cache, or the hub when reachable), else the
    random-init model of its config (``build_vit``), with one line saying so. Never trains."""
    from transformers import ViTModel

    if spec.pretrained:
        return load_pretrained(ViTModel, spec.name, what=what, profile="full", verbose=verbose)
    if verbose:
        _say_quick(what, ViTModel, spec.config, spec.name)
    return build_vit(spec)


def count_parameters(module: nn.Module) -> dict[str, int]:
    """``{"trainable": n, "frozen": n, "total": n}`` parameter counts of ``module``."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    total = sum(p.numel() for p in module.parameters())
    return {"trainable": trainable, "frozen": total - trainable, "total": total}
