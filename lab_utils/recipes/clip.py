"""Notebook 02's CLIP recipe: which models ``configs/clip.yml`` describes, how they train,
how they are used zero-shot, and the image-encoder checkpoint notebook 03 reuses.

* ``clip_settings`` / ``clip_model_from_config`` — the config's ``"main"`` model and the
  ``"compare"`` one trained beside it (``RECIPES``); ``describe_recipe`` names one in a line;
* ``train_clip`` (``CLIPStep`` is its step: symmetric InfoNCE on cached text features),
  ``embed_images``, ``image_features``, ``retrieval_embeddings`` (for Recall@K);
* ``zero_shot_classifier`` / ``zero_shot_predict`` with prompt ensembles (``PROMPT_TEMPLATES``);
* ``save_clip_image_encoder`` / ``load_clip_image_encoder`` — the trained image encoder at
  ``checkpoints/02_clip_image_encoder.safetensors`` (``encoder_checkpoint_path``), which
  notebook 03 loads (``load_or_train_clip_branch``: trained briefly with ``train_clip_quick``
  when it is missing; ``recipe_clip_branch_spec``: its architecture before it is trained);
* ``train_clip_quick`` — data → model → ``train_clip`` → save, in one call (``CLIPRun``);
* ``benchmark_training_throughput`` and ``train_projection_heads`` (the loss experiments).

The models are in ``lab_utils.models.clip``, the caption data in ``lab_utils.data.clip_data``.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..config import amp_dtype, load_config, seed_everything
from ..data.clip_data import (CaptionData, CaptionPairs, GroupShuffleSampler, TextEmbeddingCache, encode_captions,
                              prepare_clip_data)
from ..metrics import recall_at_k
from ..models.clip import (MINILM_ALIASES, CLIP, IMAGE_BACKBONES, IMAGE_ENCODERS, CLIPImageEncoder,
                           ViTImageEncoder, check_backbone, create_clip_model, image_encoder_spec,
                           load_image_encoder)
from ..models.clip_names import default_checkpoint_path
from ..models.hybrid import CLIPBranchSpec, FrozenCLIPBranch, clip_branch_spec, load_clip_branch
from ..models.pretrained import DEFAULT_VIT
from ..paths import configs_dir, rel
from ..checkpoints import save_checkpoint
from ..training import Stopping, adamw, contrastive_loss, fit, get_optimizer_and_scheduler

__all__ = [
    "RECIPES", "clip_settings", "describe_recipe", "clip_model_from_config", "CLIPStep", "train_clip",
    "embed_images", "image_features", "retrieval_embeddings", "PROMPT_TEMPLATES", "zero_shot_classifier",
    "zero_shot_predict", "clip_config_path",
    "save_clip_image_encoder", "encoder_checkpoint_path", "load_clip_image_encoder",
    "recipe_clip_branch_spec", "load_or_train_clip_branch", "CLIPRun",
    "train_clip_quick", "benchmark_training_throughput", "train_projection_heads",
]

# ─────────────────────────────────────────────────────────────────────────────
# 1. The models of configs/clip.yml
# ─────────────────────────────────────────────────────────────────────────────
RECIPES = ("main", "compare")   # configs/clip.yml: the first model, and the one trained beside it


def clip_settings(config: Mapping, which: str = "main") -> dict[str, Any]:
    """``create_clip_model`` keyword arguments for one of the models ``configs/clip.yml``
    describes: ``"main"`` (its ``image`` and ``text`` sections: the model notebook 02 studies
    step by step and saves for notebook 03) or ``"compare"`` (the model trained beside it on
    the same data and budget: the ``compare`` section, every key it leaves out taken from
    the main model)."""
    if which not in RECIPES:
        raise ValueError(f"which={which!r} is not a model of configs/clip.yml. Allowed: {', '.join(RECIPES)}.")
    image, text = dict(config["image"]), dict(config["text"])
    if which == "compare":
        extra = config.get("compare") or {}
        image.update({k: v for k, v in dict(extra.get("image") or {}).items() if v is not None})
        text.update({k: v for k, v in dict(extra.get("text") or {}).items() if v is not None})
    return {"text_model_name": text["model_name"], "image_backbone": image["backbone"],
            "pretrained": image["pretrained"], "embed_dim": config["embed_dim"],
            "image_size": image["image_size"], "pooling": text.get("pooling", "auto"),
            "vit_model_name": image.get("vit_model_name")}


def describe_recipe(settings: Mapping[str, Any]) -> str:
    """One line naming a model's two encoders, e.g. ``"resnet18 (random init) + all-MiniLM-L6-v2"``."""
    image, pretrained = settings["image_backbone"], settings.get("pretrained")
    if image == "vit":
        image = f"ViT ({settings.get('vit_model_name') or DEFAULT_VIT})" if pretrained else "small ViT"
    if not pretrained:
        image += " (random init)"
    text = str(settings["text_model_name"])
    if text in MINILM_ALIASES:
        text = "all-MiniLM-L6-v2"
    return f"{image} + {text}"


def clip_model_from_config(config: Mapping, which: str = "main", device: str | torch.device = "cpu",
                           *, profile: str = "quick", verbose: bool = True) -> CLIP:
    """``create_clip_model`` with the settings of ``clip_settings(config, which)``."""
    return create_clip_model(device, **clip_settings(config, which), profile=profile, verbose=verbose)


# ─────────────────────────────────────────────────────────────────────────────
# 2. Training
# ─────────────────────────────────────────────────────────────────────────────
class CLIPStep:
    """``fit``'s step function for CLIP on cached text features; records every training step's
    loss and temperature, kept on the device (no host sync per step) until ``trace()`` reads
    them all at once."""

    def __init__(self):
        self._losses: list[torch.Tensor] = []
        self._scales: list[torch.Tensor] = []

    def __call__(self, model: CLIP, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image_embeds = model.encode_image(batch["image"])                    # (B, 512)
        text_embeds = model.text_encoder.project(batch["text_features"])     # (B, 512)
        loss = contrastive_loss(image_embeds, text_embeds, model.scale)
        if model.training:
            self._losses.append(loss.detach().float())
            self._scales.append(model.scale.detach().float())
        return {"loss": loss}

    def trace(self) -> pd.DataFrame:
        """One row per training step: ``step, loss, temperature`` (= 1 / scale)."""
        if not self._losses:
            return pd.DataFrame(columns=["step", "loss", "temperature"])
        losses, scales = torch.stack([torch.stack(self._losses), torch.stack(self._scales)]).tolist()
        return pd.DataFrame({"step": range(1, len(losses) + 1), "loss": losses,
                             "temperature": [1.0 / s for s in scales]})


def train_clip(model: CLIP, train: CaptionData, *, epochs: int, batch_size: int = 128,
               learning_rate: float = 1e-3, weight_decay: float = 0.05, warmup_fraction: float = 0.1,
               test: CaptionData | None = None, seed: int = 0, progress: bool = False,
               verbose: bool = True, group_size: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train ``model`` on ``train`` with ``lab_utils.training.fit``: ``get_optimizer_and_scheduler``
    (one learning rate, weight decay on weight matrices only, cosine schedule after
    ``warmup_fraction`` of the steps).

    Each epoch draws one of each image's captions at random. With ``test``, each epoch also
    reports held-out Recall@1 (first caption of each image, both directions).

    Returns ``(history, trace)``: fit's per-epoch DataFrame and a per-step DataFrame
    (``step, loss, temperature``).
    """
    generator = torch.Generator().manual_seed(seed)
    if group_size > 1:   # batches made of whole groups (one person's faces): harder negatives
        sampler = GroupShuffleSampler(len(train), group_size, generator)
        loader = torch.utils.data.DataLoader(CaptionPairs(train), batch_size=batch_size, sampler=sampler,
                                             drop_last=True)
    else:
        loader = torch.utils.data.DataLoader(CaptionPairs(train), batch_size=batch_size, shuffle=True,
                                             drop_last=True, generator=generator)
    steps = epochs * len(loader)
    optimizer, scheduler = get_optimizer_and_scheduler(model, learning_rate, int(warmup_fraction * steps), steps,
                                                       weight_decay, backbone_lr_scale=1.0, decay_matrices_only=True)
    step = CLIPStep()

    def eval_fn(m: CLIP) -> dict[str, float]:
        row = {"temperature": m.temperature}
        if test is not None:
            img, txt, t2i = retrieval_embeddings(m, test)
            r = recall_at_k(img, txt, t2i, ks=(1,))
            row.update(test_i2t_r1=r["image_to_text"][1], test_t2i_r1=r["text_to_image"][1])
        return row

    history = fit(model, loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  step_fn=step, eval_fn=eval_fn, stopping=Stopping(metric="none"), seed=seed, progress=progress,
                  verbose=verbose)
    return history, step.trace()


@torch.no_grad()
def embed_images(model: CLIP | nn.Module, images: torch.Tensor, batch_size: int = 256,
                 features: bool = False) -> torch.Tensor:
    """Images ``(N, 3, h, w)`` (bytes or [0, 1] floats, on the CPU) → ``(N, 512)`` embeddings
    on the CPU, computed in eval mode batch by batch on the encoder's device.
    ``features=True``: the backbone's features ``(N, feature_dim)`` instead (no head)."""
    encoder = model.image_encoder if isinstance(model, CLIP) else model
    encode = encoder.features if features else encoder
    was = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = torch.cat([encode(images[i:i + batch_size].to(device)).float().cpu()
                     for i in range(0, len(images), batch_size)])
    encoder.train(was)
    return out


def image_features(model: CLIP | nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Frozen backbone features ``(N, feature_dim)`` on the CPU (``embed_images(features=True)``)."""
    return embed_images(model, images, batch_size, features=True)


@torch.no_grad()
def retrieval_embeddings(model: CLIP, data: CaptionData, which: int | None = 0
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image_embeds (N, 512), text_embeds (M, 512), text_to_image (M,))`` for Recall@K:
    the ``which``-th caption of each image, or every caption with ``which=None``."""
    captions, t2i = data.all_captions() if which is None else data.one_caption_each(which)
    return embed_images(model, data.images), encode_captions(model, captions, data.cache).cpu(), t2i


# ─────────────────────────────────────────────────────────────────────────────
# 3. Zero-shot classification with prompt ensembles
# ─────────────────────────────────────────────────────────────────────────────
PROMPT_TEMPLATES = (
    "a photo of a {} face",
    "a {} person",
    "a face that looks {}",
    "someone who is {}",
    "a cartoon of a {} face",
)


@torch.no_grad()
def zero_shot_classifier(model: CLIP, class_words: Sequence[str], templates: Sequence[str] = PROMPT_TEMPLATES,
                         cache: TextEmbeddingCache | None = None) -> torch.Tensor:
    """One text embedding per class ``(C, 512)``: the mean of the class's normalised prompt
    embeddings (one prompt per template), normalised again (prompt ensembling)."""
    if not templates:
        raise ValueError("give at least one prompt template, e.g. 'a photo of a {} face'")
    prompts = [t.format(w) for w in class_words for t in templates]
    emb = encode_captions(model, prompts, cache).cpu().view(len(class_words), len(templates), -1)
    return F.normalize(emb.mean(1), dim=-1)


@torch.no_grad()
def zero_shot_predict(model: CLIP, images: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """Predicted class ``(N,)``: the class whose text embedding is most similar to each image."""
    return (embed_images(model, images) @ classifier.t()).argmax(1)


# ─────────────────────────────────────────────────────────────────────────────
# 4. Checkpoint for notebook 03
# ─────────────────────────────────────────────────────────────────────────────
def clip_config_path() -> Path:
    """``configs/clip.yml`` of the lab (the repository's, else the one next to the package)."""
    for folder in (configs_dir(), Path(__file__).resolve().parents[2] / "configs"):
        if (folder / "clip.yml").is_file():
            return folder / "clip.yml"
    raise FileNotFoundError("configs/clip.yml not found: run from inside the lab's folder "
                            "(or set LAB_ROOT to it).")


def save_clip_image_encoder(encoder: CLIPImageEncoder | ViTImageEncoder | CLIP,
                            path: str | os.PathLike | None = None, image_size: int | None = None,
                            **extra: Any) -> Path:
    """Save an image encoder of either recipe (ResNet ``CLIPImageEncoder`` or
    ``ViTImageEncoder``) with the settings needed to rebuild it (backbone, embed_dim,
    image_size: default the encoder's own, else 32; for a ViT its whole config), so that
    ``load_clip_image_encoder`` needs no other information and no hub access."""
    if isinstance(encoder, CLIP):
        encoder = encoder.image_encoder
    if not isinstance(encoder, IMAGE_ENCODERS):
        raise TypeError(f"expected a CLIP image encoder (CLIPImageEncoder or ViTImageEncoder), "
                        f"got {type(encoder).__name__}")
    image_size = int(image_size or encoder.image_size or 32)
    return save_checkpoint(path or default_checkpoint_path(), encoder, **encoder.architecture(),
                           image_size=image_size, **extra)


def encoder_checkpoint_path(backbone: str, main: bool = True) -> Path:
    """Where notebook 02 saves an image encoder: the main model's at
    ``checkpoints/02_clip_image_encoder.safetensors`` (what notebook 03 loads by default),
    the compared model's at ``checkpoints/02_clip_image_encoder_<backbone>.safetensors``."""
    if main:
        return default_checkpoint_path()
    return default_checkpoint_path().with_name(f"02_clip_image_encoder_{check_backbone(backbone, IMAGE_BACKBONES)}.safetensors")


def load_clip_image_encoder(path: str | os.PathLike | None = None, train_if_missing: bool = True, *,
                            backbone: str | None = None, embed_dim: int | None = None,
                            device: str | torch.device = "cpu", freeze: bool = False,
                            train_config: Mapping | None = None, verbose: bool = True
                            ) -> CLIPImageEncoder | ViTImageEncoder:
    """A CLIP image encoder trained in notebook 02 (either recipe), ready to use.

    Args:
        path: default ``checkpoints/02_clip_image_encoder.safetensors``.
        train_if_missing: when the file does not exist, train one with ``train_clip_quick``
            (the notebook's own recipe, ~1 minute on 2 cores) and save it there.
        backbone, embed_dim: when given, the checkpoint must hold this architecture;
            otherwise ``CheckpointError`` (the file is never overwritten).
        freeze: set ``requires_grad=False`` on every weight and switch to eval mode.
        train_config: the config ``train_clip_quick`` uses when it has to train
            (default: ``configs/clip.yml`` in the quick profile).

    Returns a ``CLIPImageEncoder`` or ``ViTImageEncoder``, as the checkpoint says (input
    ``(B, 3, H, W)`` bytes or [0, 1] floats, output ``(B, embed_dim)``) with ``.image_size`` =
    the resolution it was trained at.
    Raises ``CheckpointError`` for a corrupt file or one of a different architecture.
    """
    path = Path(path) if path is not None else default_checkpoint_path()
    if not path.is_file() and train_if_missing:
        _train_missing_encoder(path, train_config, verbose)
    return load_image_encoder(path, backbone=backbone, embed_dim=embed_dim, device=device, freeze=freeze,
                              verbose=verbose)


def _train_missing_encoder(path: Path, train_config: Mapping | None, verbose: bool) -> None:
    """Train the image encoder notebook 02 saves at ``path`` with its quick recipe, and save it."""
    cfg = train_config or load_config(clip_config_path(), profile="quick")
    which = _recipe_saved_at(path, cfg)
    if verbose:
        print(f"No CLIP image encoder at {rel(path)}: training one now with notebook 02's quick "
              f"recipe ({describe_recipe(clip_settings(cfg, which))}).")
    train_clip_quick(cfg, which=which, save_to=path, verbose=False)


def recipe_clip_branch_spec(model_name: str, profile: str = "quick") -> CLIPBranchSpec:
    """``clip_branch_spec(model_name, profile)``, where a notebook 02 encoder that is not saved
    yet gets the image encoder (``image_encoder_spec``) notebook 02 saves there in ``profile``
    (``configs/clip.yml``): what ``load_or_train_clip_branch`` would train, and what the cost
    estimate counts before notebook 02 has run."""
    spec = clip_branch_spec(model_name, profile)
    if spec.kind != "lab" or spec.encoder is not None:
        return spec
    cfg = load_config(clip_config_path(), profile=profile)
    settings = clip_settings(cfg, _recipe_saved_at(Path(spec.name), cfg))
    return dataclasses.replace(spec, encoder=image_encoder_spec(
        settings["image_backbone"], settings["embed_dim"], settings["image_size"], settings["pretrained"],
        settings["vit_model_name"], profile))


def load_or_train_clip_branch(model_name: str, profile: str = "quick", verbose: bool = True,
                              train_config: Mapping | None = None, **clip_kwargs: Any) -> FrozenCLIPBranch:
    """Notebook 03's frozen CLIP branch (``load_clip_branch``); when it is notebook 02's image
    encoder and notebook 02 has not saved it yet, that encoder is first trained with notebook
    02's quick recipe (``train_config``, default ``configs/clip.yml`` in the quick profile,
    about a minute on 2 cores) and saved where notebook 02 would have saved it."""
    spec = clip_branch_spec(model_name, profile)
    if spec.kind == "lab" and spec.encoder is None:
        _train_missing_encoder(Path(spec.name), train_config, verbose)
        spec = clip_branch_spec(model_name, profile)
    return load_clip_branch(spec, verbose=verbose, **clip_kwargs)


def _recipe_saved_at(path: Path, config: Mapping) -> str:
    """Which model of ``configs/clip.yml`` notebook 02 saves at ``path``: ``"compare"`` for
    ``02_clip_image_encoder_<its backbone>.safetensors``, else ``"main"``."""
    compare = clip_settings(config, "compare")["image_backbone"]
    main = clip_settings(config, "main")["image_backbone"]
    named = path.name == f"02_clip_image_encoder_{compare}.safetensors"
    return "compare" if named and compare != main else "main"


# ─────────────────────────────────────────────────────────────────────────────
# 5. The whole recipe in one call
# ─────────────────────────────────────────────────────────────────────────────
@dataclass
class CLIPRun:
    """What ``train_clip_quick`` produced."""

    model: CLIP
    history: pd.DataFrame
    trace: pd.DataFrame
    train: CaptionData
    test: CaptionData
    config: Mapping
    checkpoint: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def train_clip_quick(config: Mapping | None = None, *, which: str = "main",
                     save_to: str | os.PathLike | None = None,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     progress: bool = False, verbose: bool = True) -> CLIPRun:
    """Notebook 02's quick-profile recipe in one call: data → model → ``train_clip`` → save.

    ``config``: ``configs/clip.yml`` in the quick profile when ``None``; ``which``: its
    ``"main"`` or ``"compare"`` model (``clip_settings``). ``save_to``: where to write the
    image encoder (default ``encoder_checkpoint_path``; ``False`` to skip). Returns a ``CLIPRun``.
    """
    cfg = config or load_config(clip_config_path(), profile="quick")
    seed = cfg.seed if seed is None else seed
    seed_everything(seed)
    times = {}
    t0 = time.perf_counter()
    settings = clip_settings(cfg, which)
    model = create_clip_model(device, **settings, profile="quick", verbose=verbose)
    train, test = prepare_clip_data(model.text_encoder, cfg.data.num_train, cfg.data.num_test,
                                    settings["image_size"], seed=seed,
                                    captions_per_image=cfg.data.captions_per_image, profile="quick")
    times["setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    history, trace = train_clip(model, train, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                                learning_rate=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay,
                                warmup_fraction=cfg.train.warmup_fraction, seed=seed,
                                group_size=cfg.train.get("group_size", 1), progress=progress, verbose=verbose)
    times["train"] = time.perf_counter() - t0
    path = None
    if save_to is not False:
        path = save_clip_image_encoder(model.image_encoder, save_to or encoder_checkpoint_path(
            settings["image_backbone"], main=which == "main"), image_size=settings["image_size"])
    return CLIPRun(model, history, trace, train, test, cfg, path, times)


# ─────────────────────────────────────────────────────────────────────────────
# 6. Throughput
# ─────────────────────────────────────────────────────────────────────────────
def benchmark_training_throughput(model: CLIP, image_size: int, batch_size: int = 128, steps: int = 10,
                                  warmup: int = 2, amp: bool | None = None) -> dict[str, Any]:
    """Images/s of a full training step (image forward + backward + AdamW step, text from
    cached features) on the model's device. AMP (bf16/fp16) is used on CUDA when ``amp``
    is ``None`` or True. The model's weights are restored afterwards."""
    device = model.logit_scale.device
    dtype = amp_dtype(device, amp)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = adamw(model, 1e-5, decay_matrices_only=True)           # train_clip's groups
    images = torch.rand(batch_size, 3, image_size, image_size, device=device)
    feats = torch.randn(batch_size, model.text_encoder.feature_dim, device=device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    model.train()

    def one_step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = contrastive_loss(model.encode_image(images), model.text_encoder.project(feats), model.scale)
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    for _ in range(warmup):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.load_state_dict(saved)
    return {"device": device.type, "amp": str(dtype).replace("torch.", "") if dtype else "off",
            "batch_size": batch_size, "image_size": image_size, "steps": steps,
            "images_per_s": batch_size * steps / seconds}


# ─────────────────────────────────────────────────────────────────────────────
# 7. Loss experiments on frozen features (notebook 02's "what goes wrong" section)
# ─────────────────────────────────────────────────────────────────────────────
def train_projection_heads(model: CLIP, loss_fn, image_features: torch.Tensor, text_features: torch.Tensor,
                           caption_ids: Sequence[torch.Tensor], steps: int = 150, batch_size: int = 128,
                           learning_rate: float = 1e-3, seed: int = 0) -> tuple[nn.Module, nn.Module, list[float]]:
    """Train fresh copies of ``model``'s image and text projection heads on frozen features
    with ``loss_fn(image_out, text_out, scale) -> loss`` (raw head outputs, not normalised:
    the loss decides). Cheap, so several losses can be compared on the same data.

    ``image_features`` (N, F) backbone features; ``text_features`` (M, F_text) cached
    caption features; ``caption_ids[i]`` the rows of image i's captions. A text encoder
    without a trainable projection (the CLIP text tower ends in its own, frozen) gets an
    identity text head: only the image head learns then.

    Training runs on the model's device; returns ``(image_head, text_head, losses)`` with
    both heads on the CPU, where ``embed_images`` and the caption cache keep their outputs.
    """
    device = model.logit_scale.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    text_head = model.text_encoder.projection
    heads = [copy.deepcopy(model.image_encoder.projection),
             copy.deepcopy(text_head) if text_head is not None else nn.Identity()]
    for head in heads:
        for mod in head.modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
        head.to(device)
    image_features, text_features = image_features.to(device), text_features.to(device)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07), device=device))
    opt = adamw(nn.ModuleList([*heads, nn.ParameterList([logit_scale])]), learning_rate)
    losses = []                                  # on the device; read once, after the loop
    for _ in range(steps):
        idx = torch.randint(len(image_features), (batch_size,), generator=gen)
        rows = torch.stack([caption_ids[i][torch.randint(len(caption_ids[i]), (), generator=gen)] for i in idx.tolist()])
        loss = loss_fn(heads[0](image_features[idx]), heads[1](text_features[rows]), logit_scale.exp().clamp(max=100))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach().float())
    return heads[0].cpu(), heads[1].cpu(), torch.stack(losses).tolist() if losses else []
