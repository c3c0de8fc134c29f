"""CLIP names as the lab's configs write them, and what each one means (a leaf module: it
imports only ``lab_utils.paths``, so the config schemas can check ``clip.model_name`` without
importing any model code).

* OpenAI's short names (``ViT-B/32`` …) → Hugging Face ids (``CLIP_SHORT_NAMES``);
* OpenAI's ResNet CLIPs (``RN50`` … ``RN50x64``), loaded through open_clip;
* a hub id, a local folder, or a notebook 02 checkpoint (``*.safetensors``).

``resolve_clip_name`` turns any of them into what the loader takes, or refuses it with a
message that lists the known names.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..paths import checkpoints_dir, is_local_dir, repo_root

#: OpenAI's short names (the ``clip`` package's ``clip.load`` names) → Hugging Face ids.
CLIP_SHORT_NAMES: dict[str, str] = {
    "ViT-B/32": "openai/clip-vit-base-patch32",
    "ViT-B/16": "openai/clip-vit-base-patch16",
    "ViT-L/14": "openai/clip-vit-large-patch14",
    "ViT-L/14@336px": "openai/clip-vit-large-patch14-336",
}
#: OpenAI's ResNet CLIPs: transformers has no port of them, so they load through open_clip
#: (``open_clip_branch``), whose model names are the same.
CLIP_RESNET_NAMES = ("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64")


def is_open_clip_name(name: str) -> bool:
    """True for the CLIPs the lab loads through open_clip: OpenAI's ResNet CLIPs
    (``CLIP_RESNET_NAMES``, spelled as OpenAI does: ``RN50x64``, not ``rn50x64``)."""
    return str(name).strip() in CLIP_RESNET_NAMES


CHECKPOINT_NAME = "02_clip_image_encoder.safetensors"
"""The file name of notebook 02's main image encoder, the one notebook 03 loads by default."""


def default_checkpoint_path() -> Path:
    """``checkpoints/02_clip_image_encoder.safetensors``."""
    return checkpoints_dir() / CHECKPOINT_NAME


def lab_checkpoint_file(name: str) -> Path | None:
    """A ``*.safetensors`` name → the notebook 02 checkpoint it means: relative to the lab's
    root when it exists there (``checkpoints/02_clip_image_encoder_vit.safetensors`` works from
    ``notebooks/`` too), else the path as given. A missing file named like notebook 02's
    (``02_clip_image_encoder*.safetensors``) is returned as well: it is trained when first
    loaded. ``None`` when ``name`` is no checkpoint name."""
    if not str(name).endswith(".safetensors"):
        return None
    given = Path(str(name)).expanduser()
    for path in (repo_root() / given, given):      # configs name paths from the lab's folder
        if path.is_file():
            return path
    if given.name.startswith("02_clip_image_encoder"):
        return given if given.is_absolute() else repo_root() / given
    return None


def resolve_clip_name(name: str) -> str:
    """Map a CLIP name to what the loader takes.

    ``"ViT-B/32"`` → ``"openai/clip-vit-base-patch32"`` (see ``CLIP_SHORT_NAMES``: for
    ``from_pretrained``); OpenAI's ResNet CLIPs (``"RN50"`` …, ``CLIP_RESNET_NAMES``) are
    returned unchanged (open_clip's model names: ``is_open_clip_name``); a hub id
    (``owner/name``) or an existing local directory is returned unchanged.

    Raises:
        ValueError: an unknown ResNet CLIP name (``RN51``, ``rn50x3``; the message lists the
            known ones), an unknown short name (likewise), or anything else unusable.
    """
    name = str(name).strip()
    known = ", ".join(CLIP_SHORT_NAMES)
    resnets = ", ".join(CLIP_RESNET_NAMES)
    if name in CLIP_SHORT_NAMES:
        return CLIP_SHORT_NAMES[name]
    if is_open_clip_name(name):
        return name
    if is_local_dir(name):
        return name
    if name.endswith(".safetensors"):
        checkpoint = lab_checkpoint_file(name)
        if checkpoint is None:
            raise ValueError(f"no CLIP image encoder checkpoint at {name!r} (tried it as given and "
                             "from the lab's folder). Notebook 02 saves checkpoints/02_clip_image_encoder"
                             ".safetensors (its main model) and checkpoints/02_clip_image_encoder_<backbone>"
                             ".safetensors (the compared one): give one of those, or run notebook 02.")
        return str(checkpoint)
    if re.match(r"^RN\d", name, flags=re.IGNORECASE):
        spelled = {n.lower(): n for n in CLIP_RESNET_NAMES}.get(name.lower())
        hint = f" Names are case-sensitive: did you mean {spelled}?" if spelled else ""
        raise ValueError(f"unknown ResNet CLIP {name!r}.{hint} OpenAI's ResNet CLIPs (loaded through "
                         f"open_clip): {resnets}; ViT CLIPs: {known} (or a hub id, or a local folder).")
    if name.startswith(("ViT-", "vit-")):
        raise ValueError(f"unknown CLIP short name {name!r}. Known short names: {known}, and "
                         f"OpenAI's ResNet CLIPs {resnets} (or give a hub id such as "
                         "openai/clip-vit-base-patch32, or a local folder).")
    parts = name.split("/")
    if len(parts) == 2 and all(parts) and " " not in name:
        return name  # a hub id: owner/name
    raise ValueError(f"{name!r} is neither a known CLIP short name ({known}; ResNet CLIPs: "
                     f"{resnets}), a hub id (owner/name, e.g. openai/clip-vit-base-patch32), nor "
                     "an existing local directory. Fix clip.model_name in the config.")
