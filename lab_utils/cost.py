"""What a notebook costs before anyone pays for it: FLOPs counted, turned into GPU minutes.

``python -m lab_utils.cost --profile full [--json]`` prints, per notebook, the FLOPs its
training and evaluation passes need, the minutes that takes on a T4, an A100 and an H100,
and the data sizes assumed. A notebook calls ``print_estimate(name, cfg)`` before its long
training to see the estimate for the GPU it runs on.

How the number is made::

    one step of the notebook's real model          FlopCounterMode on the meta device:
    (forward, or forward + backward)          →    shapes only, no arithmetic, no download
          × images the notebook's config implies    (plan_01 … plan_05: epochs × images per
            model / strategy / seed, + validation, test and frozen-feature passes)
          = FLOPs  →  minutes = FLOPs / (GPU peak × MFU) / 60

Models are random-init configs of the same architectures (``ViTConfig()`` = ViT-B/16,
torchvision ``resnet50(weights=None)``, ``CLIPVisionConfig()`` / ``CLIPTextConfig()`` =
CLIP ViT-B/32), built with ``torch.device("meta")`` through the lab's own classes. Passes
over a handful of images (a figure's 8 faces) are left out; the optimizer update (a few
FLOPs per weight) is too. Early stopping is counted at its upper bound: every epoch runs.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

import torch
from torch import nn

# --------------------------------------------------------------------------- assumptions, in one place
GPUS: dict[str, dict[str, Any]] = {
    "T4": {"peak_flops": 65e12, "precision": "fp16"},      # Colab's free GPU (no bf16: fp16 + grad scaler)
    "A100": {"peak_flops": 312e12, "precision": "bf16"},
    "H100": {"peak_flops": 989e12, "precision": "bf16, dense"},
}
MFU = 0.25                  # the share of the peak a notebook's training loop reaches (one assumption for all).
# Small batches keep a big GPU below it: launching kernels, not arithmetic, sets their pace (measured on an
# H200, ViT-B/16 training in `fit` with bf16, batch 64: 5 % of peak at 112 px, 15 % at 224 px), so the A100
# and H100 minutes are lower bounds; a T4, 15× slower, is kept busy by the same batches.
BUDGET_MINUTES = 20         # each notebook's full profile must fit this on a T4 …
BUDGET_FLOPS = BUDGET_MINUTES * 60 * GPUS["T4"]["peak_flops"] * MFU     # … = 1.95e16 FLOPs
CAPTION_TOKENS = 40         # tokens per caption batch after padding to the longest (Flickr8k: 10–30 words)

#: The data a full-profile student has (data/README.md), per family.
FULL_DATA = {
    "fer2013": {"train": 28_709, "val": 3_589, "test": 3_589},        # Training / PublicTest / PrivateTest
    "flickr8k": {"images": 8_091, "captions_per_image": 5},
    "rgbt_pairs": 5_000,                                               # paired RGB-thermal images
}

NOTEBOOKS = ("01_vit_patching", "02_clip_contrastive", "03_hybrid_vit_clip",
             "04_vit_fer_finetuning", "05_rgb_thermal_fusion")
CONFIG_OF = {"01_vit_patching": "vit_patching.yml", "02_clip_contrastive": "clip.yml",
             "03_hybrid_vit_clip": "model.yml", "04_vit_fer_finetuning": "fer.yml",
             "05_rgb_thermal_fusion": "fusion.yml"}


# --------------------------------------------------------------------------- counting
def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of everything ``fn()`` runs (``torch.utils.flop_counter``: 2 per multiply-add of
    matmuls, convolutions and attention; element-wise ops are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


class Net:
    """A model as a notebook runs it: ``build()`` makes it (called on the meta device) and
    ``inputs(B)`` gives one batch of its forward's arguments (a tuple, or a dict of keywords).
    ``flops(kind)``: FLOPs per item of a ``"forward"`` pass or a ``"train"`` step (forward +
    backward through the weights that require grad), from one counted step, remembered."""

    BATCH = 4   # any batch gives the same FLOPs per item (nothing here depends on B)

    def __init__(self, name: str, build: Callable[[], nn.Module], inputs: Callable[[int], tuple | dict]):
        self.name, self.build, self.inputs = name, build, inputs
        self._flops: dict[str, float] | None = None

    def _count(self) -> dict[str, float]:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.device("meta"):
            model = self.build()
            args = self.inputs(self.BATCH)
        model.train()    # dropout and batch norm count no FLOPs: train and eval forwards cost the same
        with FlopCounterMode(display=False) as counter:   # (not torch.no_grad: it trips the counter's
            out = model(**args) if isinstance(args, dict) else model(*args)    # module tracker)
            forward = counter.get_total_flops()
            out = getattr(out, "logits", getattr(out, "last_hidden_state", out))
            out = out[0] if isinstance(out, tuple) else out
            if out.requires_grad:                          # a frozen model has no backward
                out.float().sum().backward()
            train = counter.get_total_flops()
        return {"forward": forward / self.BATCH, "train": train / self.BATCH}

    def flops(self, kind: str) -> float:
        if kind not in ("forward", "train"):
            raise ValueError(f"kind={kind!r}: use 'forward' (inference) or 'train' (forward + backward)")
        if self._flops is None:
            self._flops = self._count()
        return self._flops[kind]


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
    from .models.fer import DEFAULT_MODEL, create_multimodal_vit_model

    kwargs = dict(spec)

    def build():
        m = create_multimodal_vit_model(**kwargs, model_name=DEFAULT_MODEL, quick_config=vit_config(profile),
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
    """Notebook 02's image encoder: a torchvision ResNet (``weights=None``) + projection head."""
    from .models.clip import CLIPImageEncoder

    return Net(f"{backbone} {image_size} px", lambda: CLIPImageEncoder(backbone, embed_dim, pretrained=False),
               lambda b: (_images(b, image_size),))


@lru_cache(maxsize=None)
def text_tower_net(profile: str, tokens: int = CAPTION_TOKENS) -> Net:
    """The frozen text transformer of notebook 02: CLIP ViT-B/32's text tower (full) or
    all-MiniLM-L6-v2's BERT (quick), on ``tokens`` tokens per caption."""
    def build():
        if profile == "full":
            from transformers import CLIPTextConfig, CLIPTextModel
            return CLIPTextModel(CLIPTextConfig())
        from transformers import BertConfig, BertModel
        return BertModel(BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                    intermediate_size=1536), add_pooling_layer=False)
    return Net(f"text tower ({profile})", build, lambda b: (torch.zeros(b, tokens, dtype=torch.long),))


@lru_cache(maxsize=None)
def clip_branch_net(profile: str, image_size: int) -> Net:
    """Notebook 03's frozen CLIP branch: CLIP ViT-B/32's vision tower + projection (full) or
    notebook 02's ResNet18 encoder (quick)."""
    from .models.hybrid import FrozenCLIPBranch

    def build():
        if profile == "full":
            from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
            return FrozenCLIPBranch.from_hf(CLIPVisionModelWithProjection(CLIPVisionConfig()))
        from .models.clip import CLIPImageEncoder
        return FrozenCLIPBranch(CLIPImageEncoder("resnet18", 512, pretrained=False), "lab", 512, image_size)
    return Net(f"CLIP branch ({profile})", build, lambda b: (_images(b, image_size),))


@lru_cache(maxsize=None)
def hybrid_net(profile: str, fusion: str, image_size: int) -> Net:
    """Notebook 03's ``HybridViTCLIP`` on (ViT pixels, cached CLIP embeddings)."""
    from transformers import ViTModel

    from .models.hybrid import HybridViTCLIP

    embed = 512

    def build():
        vit = ViTModel(vit_config(profile), add_pooling_layer=False) if fusion != "clip_only" else None
        clip = clip_branch_net(profile, 224).build() if fusion != "vit_only" else None
        return HybridViTCLIP(vit, clip, 7, fusion=fusion)
    return Net(f"hybrid {fusion}", build, lambda b: {
        "pixel_values_vit": _images(b, image_size) if fusion != "clip_only" else None,
        "clip_embeds": torch.empty(b, embed)})


# --------------------------------------------------------------------------- plans: what each notebook runs
@dataclass(frozen=True)
class Pass:
    """``items`` items through ``net`` as ``kind`` (``"train"`` or ``"forward"``)."""

    what: str
    net: Net
    kind: str
    items: int

    @property
    def flops(self) -> float:
        return self.net.flops(self.kind) * self.items


def split_sizes(num_samples: int, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> dict[str, int]:
    """Item counts of the lab's subject-disjoint split of ``num_samples`` synthetic faces
    (nothing is rendered: only the subject ids are used)."""
    from .data import SynthFER, subject_split

    parts = subject_split(SynthFER(num_samples, 32), fractions, seed=seed)
    return dict(zip(("train", "val", "test"), (len(p) for p in parts)))


def _fmt(sizes: Mapping[str, int], unit: str) -> str:
    return " / ".join(f"{v:,} {k}" for k, v in sizes.items()) + f" {unit}"


def plan_01(cfg: Mapping, profile: str, sizes: Mapping[str, int] | None = None) -> tuple[list[Pass], str]:
    """Notebook 01: the small ViT on the shapes task (``fit``: every epoch trains, then validates)."""
    M, T = cfg["model"], cfg["train"]
    net = small_vit_net(M["image_size"], M["patch_size"], M["hidden_size"], M["num_hidden_layers"],
                        M["num_attention_heads"], M["intermediate_size"], 4)
    n = dict(sizes or {"train": T["num_train"], "val": T["num_val"]})
    return ([Pass(f"train: {T['epochs']} epochs", net, "train", T["epochs"] * n["train"]),
             Pass("validation after each epoch", net, "forward", T["epochs"] * n["val"])],
            f"shapes task: {_fmt(n, 'images')} at {M['image_size']} px")


def plan_02(cfg: Mapping, profile: str, sizes: Mapping[str, int] | None = None) -> tuple[list[Pass], str]:
    """Notebook 02: frozen text tower once per caption, ResNet image encoder trained with
    ``drop_last`` batches, held-out Recall@1 after every epoch, four evaluation embeddings,
    frozen features for the loss experiments, and the throughput benchmark (5 steps)."""
    D, T, I = cfg["data"], cfg["train"], cfg["image"]
    if sizes is None and profile == "full":      # Flickr8k, split as load_real_caption_data does
        n = FULL_DATA["flickr8k"]["images"]
        test = min(D["num_test"], max(2, n // 5))
        sizes = {"train": min(D["num_train"], n - test), "test": test,
                 "captions_per_image": FULL_DATA["flickr8k"]["captions_per_image"]}
    n = dict(sizes or {"train": D["num_train"], "test": D["num_test"],
                       "captions_per_image": D["captions_per_image"]})
    image, text = clip_image_net(I["backbone"], I["image_size"], cfg["embed_dim"]), text_tower_net(profile)
    E, B = T["epochs"], T["batch_size"]
    return ([Pass("frozen text tower: every training caption once", text, "forward",
                  n["train"] * n["captions_per_image"]),
             Pass("held-out captions, once", text, "forward", n["test"]),
             Pass(f"train: {E} epochs of {n['train'] // B} full batches", image, "train",
                  E * (n["train"] // B) * B),
             Pass("held-out Recall@1 after each epoch", image, "forward", E * n["test"]),
             Pass("held-out embeddings: before, after, figures, zero-shot", image, "forward", 4 * n["test"]),
             Pass("frozen features for the loss experiments", image, "forward", min(1000, n["train"]) + n["test"]),
             Pass("throughput benchmark", image, "train", 5 * B)],
            f"{'Flickr8k' if profile == 'full' else 'synthetic captions'}: {n['train']:,} train / {n['test']:,} "
            f"held-out images × {n['captions_per_image']} captions at {I['image_size']} px")


def plan_03(cfg: Mapping, profile: str, sizes: Mapping[str, int] | None = None) -> tuple[list[Pass], str]:
    """Notebook 03: synthetic faces (as its data cell sets them: 2,800 at 32 px quick, 4,200 at
    224 px full), CLIP embeddings of every face and its mirror once, four variants trained up
    to ``epochs`` (early stopping may end sooner), validation every epoch, test once."""
    faces, size = (2800, 32) if profile == "quick" else (4200, 224)
    keep = 0.8
    n = dict(sizes or split_sizes(faces, (keep * (1 - cfg["val_split"]), keep * cfg["val_split"], 0.2),
                                  cfg["seed"]))
    E = cfg["epochs"]
    clip = clip_branch_net(profile, 224 if profile == "full" else 32)
    passes = [Pass("frozen CLIP branch: every face and its mirror, once", clip, "forward", 2 * sum(n.values()))]
    for fusion in ("vit_only", "clip_only", "concat", "attention"):
        net = hybrid_net(profile, fusion, size)
        passes += [Pass(f"{fusion}: up to {E} epochs", net, "train", E * n["train"]),
                   Pass(f"{fusion}: validation each epoch + test", net, "forward", E * n["val"] + n["test"])]
    passes.append(Pass("t-SNE and attention figures", hybrid_net(profile, "attention", size), "forward", 2 * 600))
    return passes, f"synthetic faces: {_fmt(n, 'images')} at {size} px"


def plan_04(cfg: Mapping, profile: str, sizes: Mapping[str, int] | None = None) -> tuple[list[Pass], str]:
    """Notebook 04: three strategies of ``strategy_stages``; a stage with a frozen backbone
    trains the head on features computed once; validation every epoch; test once per strategy;
    the gradient-checkpointing probe; in the quick profile the stand-in pretraining."""
    from .models.fer import strategy_stages

    D, T = cfg["data"], cfg["train"]
    S, E = D["image_size"], T["epochs"]
    real = profile == "full" and D["source"] == "fer2013"
    n = dict(sizes or (FULL_DATA["fer2013"] if real else split_sizes(D["num_samples"], seed=cfg["seed"])))
    spec = (("mode", "rgb"), ("pooling", cfg["model"]["pooling"]))
    head = fer_net(profile, S, spec, "head")
    passes = [Pass("frozen backbone, once: train + mirrored train + val", head, "forward", 2 * n["train"] + n["val"])]
    for name, stages in strategy_stages(E, T["head_only_epochs"], T["top_layers"]).items():
        for epochs, blocks in stages:
            if blocks == 0:
                passes.append(Pass(f"{name}: {epochs} epochs of the head on cached features",
                                   fer_head_net(profile), "train", epochs * n["train"]))
                continue
            net = fer_net(profile, S, spec, "all" if blocks is None else blocks)
            opened = "everything" if blocks is None else f"top {blocks} blocks"
            passes += [Pass(f"{name}: {epochs} epochs, {opened} open", net, "train", epochs * n["train"]),
                       Pass(f"{name}: validation each epoch", net, "forward", epochs * n["val"])]
        passes.append(Pass(f"{name}: test", head, "forward", n["test"]))
    B = cfg["checkpointing"]["batch_size"]
    full = fer_net(profile, S, spec, "all")
    passes += [Pass("gradient-checkpointing probe (4 steps each way)", full, "train", 8 * B),
               Pass("… its recomputed forwards", full, "forward", 4 * B)]
    if profile == "quick" and T["pretrain_epochs"]:
        pre = split_sizes(2800, (0.85, 0.15, 0.0), seed=1)
        passes += [Pass("stand-in pretraining (once; cached in checkpoints/)", full, "train",
                        T["pretrain_epochs"] * pre["train"]),
                   Pass("… its validation", full, "forward", T["pretrain_epochs"] * pre["val"])]
    what = "FER2013" if real else "synthetic faces"
    return passes, f"{what}: {_fmt(n, 'images')} at {S} px"


def plan_05(cfg: Mapping, profile: str, sizes: Mapping[str, int] | None = None) -> tuple[list[Pass], str]:
    """Notebook 05: the seven models of ``FUSION_MODELS`` × ``seeds``, ``epochs`` each,
    validation every epoch, test once per run, the attention-weights figure."""
    from .models.fer import FUSION_MODELS

    D, T = cfg["data"], cfg["train"]
    S, E, seeds = D["image_size"], T["epochs"], cfg["seeds"]
    real = profile == "full" and D["source"] == "paired"
    if sizes is None and real:                    # load_paired_rgbt: 70 / 15 / 15 % of the pairs
        pairs = max(FULL_DATA["rgbt_pairs"], D["num_samples"])
        sizes = {"train": round(0.7 * pairs), "val": round(0.15 * pairs)}
        sizes["test"] = pairs - sizes["train"] - sizes["val"]
    n = dict(sizes or split_sizes(D["num_samples"], seed=cfg["seed"]))

    def net(kwargs: Mapping[str, str]) -> Net:
        same = {"mode": "rgb"} if kwargs["mode"] == "thermal" else {}   # thermal only = RGB only's network
        return fer_net(profile, S, tuple(sorted({**kwargs, **same, "pooling": cfg["model"]["pooling"]}.items())))

    passes = []
    for name, kwargs in FUSION_MODELS.items():
        passes += [Pass(f"{name}: {E} epochs × {seeds} seed(s)", net(kwargs), "train", seeds * E * n["train"]),
                   Pass(f"{name}: validation each epoch + test", net(kwargs), "forward",
                        seeds * (E * n["val"] + n["test"]))]
    passes.append(Pass("attention weights on the test set", net(FUSION_MODELS["late attention"]), "forward",
                       n["test"]))
    what = "RGB-thermal pairs" if real else "synthetic RGB-thermal pairs"
    return passes, f"{what}: {_fmt(n, 'pairs')} at {S} px, {seeds} seed(s)"


#: notebook → its plan: ``plan(cfg, profile, sizes) -> (passes, data assumed)``.
PLANS: dict[str, Callable[..., tuple[list[Pass], str]]] = dict(zip(NOTEBOOKS, (plan_01, plan_02, plan_03, plan_04,
                                                                              plan_05)))


# --------------------------------------------------------------------------- estimates
def minutes(flops: float) -> dict[str, float]:
    """``{gpu: minutes}`` for ``flops`` at ``MFU`` of each GPU's peak."""
    return {gpu: flops / (spec["peak_flops"] * MFU) / 60 for gpu, spec in GPUS.items()}


def _check_notebook(notebook: str) -> None:
    if notebook not in PLANS:
        raise ValueError(f"unknown notebook {notebook!r}. Known notebooks: {', '.join(NOTEBOOKS)} "
                         "(the file name without .ipynb).")


def _check_profile(profile: str) -> None:
    from .config import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}. Allowed: {', '.join(PROFILES)} "
                         "(quick: CPU, synthetic data, small models; full: GPU, real data, pretrained models).")


def estimate(notebook: str, cfg: Mapping | None = None, profile: str | None = None,
             sizes: Mapping[str, int] | None = None) -> dict[str, Any]:
    """``{"flops", "minutes": {gpu: min}, "data", "passes": [{what, kind, items, flops}]}`` for
    one notebook. ``cfg``: its loaded config (default: ``configs/<family>.yml`` for
    ``profile``); ``sizes``: the split sizes it really loaded (default: ``FULL_DATA`` in the
    full profile, the synthetic split in the quick one)."""
    from .config import get_profile, load_config
    from .paths import configs_dir

    _check_notebook(notebook)
    profile = profile or get_profile()
    _check_profile(profile)
    cfg = cfg if cfg is not None else load_config(configs_dir() / CONFIG_OF[notebook], profile=profile)
    passes, data = PLANS[notebook](cfg, profile, sizes)
    total = float(sum(p.flops for p in passes))
    return {"flops": total, "minutes": minutes(total), "data": data, "profile": profile,
            "passes": [{"what": p.what, "kind": p.kind, "items": p.items, "flops": p.flops} for p in passes]}


def estimate_all(profile: str = "full") -> dict[str, dict[str, Any]]:
    """``estimate`` of every notebook at its config's values for ``profile``."""
    _check_profile(profile)
    return {nb: estimate(nb, profile=profile) for nb in NOTEBOOKS}


def _minutes_text(m: float) -> str:
    return "< 0.1" if m < 0.1 else f"{m:.1f}" if m < 10 else f"{m:.0f}"


def format_table(estimates: Mapping[str, Mapping[str, Any]], detail: bool = False) -> str:
    """A readable table: notebook, FLOPs, minutes per GPU, budget verdict, data assumed."""
    gpus = list(GPUS)
    head = f"{'notebook':<24}{'FLOPs':>10}" + "".join(f"{g + ' min':>10}" for g in gpus) + "  T4 budget  data assumed"
    lines = [head, "-" * len(head)]
    for nb, e in estimates.items():
        verdict = "ok" if e["flops"] <= BUDGET_FLOPS else "OVER"
        lines.append(f"{nb:<24}{e['flops']:>10.2e}" + "".join(f"{_minutes_text(e['minutes'][g]):>10}" for g in gpus)
                     + f"  {verdict:<9}  {e['data']}")
        if detail:
            for p in e["passes"]:
                lines.append(f"    {p['flops']:>10.2e}  {p['kind']:<7} {p['items']:>10,}  {p['what']}")
    lines.append(f"Minutes at {MFU:.0%} MFU of " + ", ".join(f"{g} {s['peak_flops'] / 1e12:g} TFLOP/s {s['precision']}"
                                                            for g, s in GPUS.items())
                 + f"; T4 budget: {BUDGET_MINUTES} min = {BUDGET_FLOPS:.2e} FLOPs.")
    return "\n".join(lines)


def gpu_name_to_key(name: str) -> str | None:
    """``"Tesla T4"`` → ``"T4"``, ``"NVIDIA A100-SXM4-40GB"`` → ``"A100"``; ``None`` if not in ``GPUS``."""
    for key in GPUS:
        if key.lower() in name.lower():
            return key
    return None


def print_estimate(notebook: str, cfg: Mapping | None = None, sizes: Mapping[str, int] | None = None,
                   profile: str | None = None) -> dict[str, Any]:
    """Print one line: the estimated FLOPs of this notebook's training and evaluation, and the
    minutes on this machine's GPU (``torch.cuda.get_device_name`` matched to ``GPUS``), or on
    each GPU of the table when there is none or it is not in the table. Returns ``estimate``."""
    e = estimate(notebook, cfg, profile, sizes)
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    key = gpu_name_to_key(name) if name else None
    if key:
        where = f"≈ {_minutes_text(e['minutes'][key])} min on this {key}"
    else:
        where = ("≈ " + " · ".join(f"{g} {_minutes_text(m)} min" for g, m in e["minutes"].items())
                 + (f" (this {name} is not in the table)" if name else ""))
    print(f"Estimated cost ({e['profile']} profile): {e['flops']:.1e} FLOPs {where}, at {MFU:.0%} of the GPU's peak "
          f"(python -m lab_utils.cost)")
    return e


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab_utils.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="full", help="full (default) or quick")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--detail", action="store_true", help="list every pass under its notebook")
    parser.add_argument("--notebook", action="append", help="only this notebook (repeatable)")
    args = parser.parse_args(argv)
    try:
        _check_profile(args.profile)
        for nb in args.notebook or ():
            _check_notebook(nb)
    except ValueError as err:
        parser.error(str(err))
    result = {nb: estimate(nb, profile=args.profile) for nb in (args.notebook or NOTEBOOKS)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result, detail=args.detail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
