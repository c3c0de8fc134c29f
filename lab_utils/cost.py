"""What a notebook costs before anyone pays for it: FLOPs and launches counted, turned into GPU minutes.

``python -m lab_utils.cost --profile full [--json]`` prints, per notebook, the FLOPs its
training and evaluation passes need, the minutes that takes on a T4, an A100 and an H100,
the data sizes assumed and where every rate comes from. A notebook calls
``print_estimate(name, cfg)`` before its long training to see the estimate for the GPU it runs
on; after the first epoch of that training it prints the time left, measured (``TimeLeft``).

How the number is made::

    one step of the notebook's real model          FlopCounterMode + an operation counter on the
    (forward, or forward + backward)          →    meta device: shapes only, no arithmetic, no download
          × images the notebook's config implies    (plan_01 … plan_05: epochs × images per
            model / strategy / seed, + validation, test and frozen-feature passes, batch sizes)
    each pass: the slower of
          compute = FLOPs / (GPU peak × its measured share of the peak, GPUS[gpu]["mfu"])
          host    = steps × operations per step × SECONDS_PER_OP     (Python launching kernels)
    minutes = Σ passes / 60

The GPU's share of its peak and the host's time per operation are kept in one place
(``GPUS``, ``SECONDS_PER_OP``), each with its basis: the T4's and the A100's from NVIDIA's
published ResNet-50 figures, the H100's and the host's measured on an H200 by
``benchmarks/gpu_throughput.py``. At the configs' batch sizes a T4 is busy computing, while an
A100 or H100 mostly waits for the host: their minutes are set by the number of steps.

Models are random-init configs of the same architectures, read from the configs' model
names (``ViTConfig()`` = ViT-B/16, torchvision ``resnet50(weights=None)``,
``CLIPVisionConfig()`` / ``CLIPTextConfig()`` = CLIP ViT-B/32, ``DistilBertConfig()``,
open_clip's ``RN50`` … for OpenAI's ResNet CLIPs), built with ``torch.device("meta")``
through the lab's own classes: notebook 02 counts both of ``configs/clip.yml``'s models
(``clip_settings``), notebook 03 the CLIP branch ``clip.model_name`` names. Passes
over a handful of images (a figure's 8 faces) are left out; the optimizer update (a few
FLOPs per weight) is too. Early stopping is counted at its upper bound: every epoch runs.

The models and the counting are in ``lab_utils.cost_nets``; this module
holds the assumptions, the plans (what each notebook runs) and the estimates.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from .cost_nets import (Net, fer_net, fer_head_net, small_vit_net, clip_encoder_net,
                        text_spec, text_tower_net, clip_branch_net, hybrid_net)

# --------------------------------------------------------------------------- assumptions, in one place
#: Each GPU: its dense fp16/bf16 tensor-core peak, the share of that peak the notebooks' arithmetic
#: reaches (``mfu``), and where that share comes from (``basis``).
GPUS: dict[str, dict[str, Any]] = {
    "T4": {"peak_flops": 65e12, "precision": "fp16", "mfu": 0.15,      # Colab's free GPU (no bf16: fp16 + grad scaler)
           "basis": "NVIDIA DeepLearningExamples, ResNet-50 v1.5 for PyTorch, T4, mixed precision, batch 256: "
                    "1,198 images/s (its inference table; no T4 training figure is published) × 8.1 GFLOP per "
                    "image (counted here) = 9.7 TFLOP/s = 15 % of 65; a training step is assumed as efficient"},
    "A100": {"peak_flops": 312e12, "precision": "bf16", "mfu": 0.19,
             "basis": "NVIDIA DeepLearningExamples, ResNet-50 v1.5 for PyTorch, 1× A100 80GB, mixed-precision "
                      "training: 2,470 images/s × 24.3 GFLOP per training image (counted here) = 60 TFLOP/s = "
                      "19 % of 312"},
    "H100": {"peak_flops": 989e12, "precision": "bf16, dense", "mfu": 0.088,
             "basis": "measured: benchmarks/gpu_throughput.py on an H200 (2026-11-30), notebook 03's ViT-B/16 "
                      "step at 224 px, batch 32: 86.9 TFLOP/s = 8.8 % of 989, the most of the four steps measured"},
}
PUBLIC_SOURCE = ("https://github.com/NVIDIA/DeepLearningExamples/tree/master/PyTorch/Classification/ConvNets/"
                 "resnet50v1.5 (Training / Inference performance results)")

#: The host's side of a step: Python launches each operation of the forward and backward (one GPU
#: kernel each). When that takes longer than the GPU's arithmetic, the host sets the pace.
SECONDS_PER_OP = 48.5e-6
HOST_BASIS = ("measured on the same H200: the ViT-B/16 training steps of notebooks 03, 04 and 05 (798, 819 and "
              "1,615 operations at batch 32, 64, 32) took 38.7, 43.4 and 70.2 ms — 43–53 µs per operation "
              "(median 48.5) whatever their FLOPs: at the configs' batch sizes a big GPU waits for the host")

BUDGET_MINUTES = 20         # each notebook's full profile must fit this on a T4

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


# --------------------------------------------------------------------------- plans: what each notebook runs
@dataclass(frozen=True)
class Pass:
    """``items`` items through ``net`` as ``kind`` (``"train"`` or ``"forward"``), ``batch`` at a time."""

    what: str
    net: Net
    kind: str
    items: int
    batch: int = 256                 # evaluation passes run 256 at a time
    ahead: bool = True               # runs after the notebook prints its estimate (False: before it)

    @property
    def flops(self) -> float:
        return self.net.flops(self.kind) * self.items

    @property
    def steps(self) -> int:
        return -(-self.items // self.batch)

    def seconds(self, gpu: str) -> float:
        """The slower of the GPU's arithmetic (FLOPs at its measured share of the peak) and the
        host's launching (operations × ``SECONDS_PER_OP``): the GPU runs ahead of the host when it can."""
        spec = GPUS[gpu]
        compute = self.flops / (spec["peak_flops"] * spec["mfu"])
        host = self.steps * self.net.ops(self.kind) * SECONDS_PER_OP
        return max(compute, host)


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
    return ([Pass(f"training: {T['epochs']} epochs", net, "train", T["epochs"] * n["train"], T["batch_size"]),
             Pass("validation after each epoch", net, "forward", T["epochs"] * n["val"])],
            f"shapes task: {_fmt(n, 'images')} at {M['image_size']} px")


def _clip_model_passes(label: str, image: Net, n: Mapping[str, int], epochs: int, batch: int,
                       evaluations: int, what: str) -> list[Pass]:
    """One CLIP model's image side in notebook 02: ``epochs`` of ``drop_last`` batches, held-out
    Recall@1 after every epoch, ``evaluations`` passes over the held-out images (``what``)."""
    return [Pass(f"{label}training: {epochs} epochs of {n['train'] // batch} full batches", image, "train",
                 epochs * (n["train"] // batch) * batch, batch),
            Pass(f"{label}held-out Recall@1 after each epoch", image, "forward", epochs * n["test"]),
            Pass(f"{label}held-out embeddings: {what}", image, "forward", evaluations * n["test"])]


def _text_passes(label: str, text: Net, n: Mapping[str, int]) -> list[Pass]:
    """A frozen text tower over the captions once: every training caption, the held-out ones."""
    return [Pass(f"{label}frozen text tower: every training caption once", text, "forward",
                 n["train"] * n["captions_per_image"]),
            Pass(f"{label}held-out captions, once", text, "forward", n["test"])]


def plan_02(cfg: Mapping, profile: str, sizes: Mapping[str, int] | None = None) -> tuple[list[Pass], str]:
    """Notebook 02: two CLIP models on the same data and budget (``clip_settings(cfg, "main")``
    and ``"compare"``). The main model: its frozen text tower once per caption, its image
    encoder trained with ``drop_last`` batches, held-out Recall@1 after every epoch, four
    evaluation embeddings, frozen features for the loss experiments, the throughput benchmark
    (5 steps). The compared model: the same training and per-epoch Recall@1, two evaluation
    embeddings (Recall@K, zero-shot), and its own text pass only when its caption features
    differ from the main model's (``text_spec(...).key``; else the cache is shared)."""
    from .recipes.clip import clip_settings

    D, T = cfg["data"], cfg["train"]
    if sizes is None and profile == "full":      # Flickr8k, split as load_real_caption_data does
        n = FULL_DATA["flickr8k"]["images"]
        test = min(D["num_test"], max(2, n // 5))
        sizes = {"train": min(D["num_train"], n - test), "test": test,
                 "captions_per_image": FULL_DATA["flickr8k"]["captions_per_image"]}
    n = dict(sizes or {"train": D["num_train"], "test": D["num_test"],
                       "captions_per_image": D["captions_per_image"]})
    main, compare = clip_settings(cfg, "main"), clip_settings(cfg, "compare")
    image = clip_encoder_net(main, profile)
    E, B = T["epochs"], T["batch_size"]
    passes = _text_passes("", text_tower_net(main["text_model_name"], profile), n)
    passes += _clip_model_passes("", image, n, E, B, 4, "before, after, figures, zero-shot")
    passes += [Pass("frozen features for the loss experiments", image, "forward", min(1000, n["train"]) + n["test"]),
               Pass("throughput benchmark", image, "train", 5 * B, B)]
    label = f"compare ({compare['image_backbone']}): "
    if text_spec(compare, profile).key != text_spec(main, profile).key:
        passes += _text_passes(label, text_tower_net(compare["text_model_name"], profile), n)
    passes += _clip_model_passes(label, clip_encoder_net(compare, profile), n, E, B, 2, "Recall@K, zero-shot")
    sizes_px = f"{main['image_size']} px" + (f" (compare: {compare['image_size']} px)"
                                             if compare["image_size"] != main["image_size"] else "")
    return passes, (f"{'Flickr8k' if profile == 'full' else 'synthetic captions'}: {n['train']:,} train / "
                    f"{n['test']:,} held-out images × {n['captions_per_image']} captions at {sizes_px}")


def plan_03(cfg: Mapping, profile: str, sizes: Mapping[str, int] | None = None) -> tuple[list[Pass], str]:
    """Notebook 03: synthetic faces (as its data cell sets them: 2,800 at 32 px quick, 4,200 at
    224 px full), CLIP embeddings of every face and its mirror once (through the branch
    ``clip.model_name`` names: ``clip_branch_spec``), four variants and three remedies of the
    config's fusion (section 8) trained up to ``epochs`` (early stopping may end sooner),
    validation every epoch, test once."""
    faces, size = (2800, 32) if profile == "quick" else (4200, 224)
    keep = 0.8
    n = dict(sizes or split_sizes(faces, (keep * (1 - cfg["val_split"]), keep * cfg["val_split"], 0.2),
                                  cfg["seed"]))
    E = cfg["epochs"]
    name = str(cfg["clip"]["model_name"])
    clip = clip_branch_net(profile, name)
    passes = [Pass("frozen CLIP branch: every face and its mirror, once", clip, "forward", 2 * sum(n.values()))]
    method = cfg["fusion"]["method"]
    remedies = [f"{method} + {r}" for r in ("modality dropout", "auxiliary ViT loss", "ViT trained alone first")]
    for variant in ("vit_only", "clip_only", "concat", "attention", *remedies):
        net = hybrid_net(profile, variant.split(" + ")[0], size, name)
        passes += [Pass(f"{variant}: up to {E} epochs", net, "train", E * n["train"], cfg["batch_size"]),
                   Pass(f"{variant}: validation each epoch + test", net, "forward", E * n["val"] + n["test"])]
    passes.append(Pass("t-SNE and attention figures", hybrid_net(profile, "attention", size, name), "forward", 2 * 600))
    return passes, f"synthetic faces: {_fmt(n, 'images')} at {size} px"


def plan_04(cfg: Mapping, profile: str, sizes: Mapping[str, int] | None = None) -> tuple[list[Pass], str]:
    """Notebook 04: three strategies of ``strategy_stages``; a stage with a frozen backbone
    trains the head on features computed once; validation every epoch; test once per strategy;
    the gradient-checkpointing probe; in the quick profile the stand-in pretraining."""
    from .recipes.fer import strategy_stages

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
                                   fer_head_net(profile), "train", epochs * n["train"], T["batch_size"]))
                continue
            net = fer_net(profile, S, spec, "all" if blocks is None else blocks)
            opened = "everything" if blocks is None else f"top {blocks} blocks"
            passes += [Pass(f"{name}: {epochs} epochs, {opened} open", net, "train", epochs * n["train"], T["batch_size"]),
                       Pass(f"{name}: validation each epoch", net, "forward", epochs * n["val"])]
        passes.append(Pass(f"{name}: test", head, "forward", n["test"]))
    B = cfg["checkpointing"]["batch_size"]
    full = fer_net(profile, S, spec, "all")
    passes += [Pass("gradient-checkpointing probe (4 steps each way)", full, "train", 8 * B, B),
               Pass("… its recomputed forwards", full, "forward", 4 * B, B)]
    if profile == "quick" and T["pretrain_epochs"]:
        pre = split_sizes(2800, (0.85, 0.15, 0.0), seed=1)
        passes += [Pass("stand-in pretraining (once; cached in checkpoints/)", full, "train",
                        T["pretrain_epochs"] * pre["train"], 64, ahead=False),
                   Pass("… its validation", full, "forward", T["pretrain_epochs"] * pre["val"], ahead=False)]
    what = "FER2013" if real else "synthetic faces"
    return passes, f"{what}: {_fmt(n, 'images')} at {S} px"


def plan_05(cfg: Mapping, profile: str, sizes: Mapping[str, int] | None = None) -> tuple[list[Pass], str]:
    """Notebook 05: the seven models of ``FUSION_MODELS`` × ``seeds``, ``epochs`` each,
    validation every epoch, test once per run, each fusion's three test passes of
    ``hide_modality`` (both modalities, RGB hidden, thermal hidden), the attention-weights figure."""
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
        passes += [Pass(f"{name}: {E} epochs × {seeds} seed(s)", net(kwargs), "train", seeds * E * n["train"],
                        T["batch_size"]),
                   Pass(f"{name}: validation each epoch + test", net(kwargs), "forward",
                        seeds * (E * n["val"] + n["test"]))]
        if kwargs["mode"] == "combined":
            passes.append(Pass(f"{name}: hide one modality (3 test passes)", net(kwargs), "forward", 3 * n["test"]))
    passes.append(Pass("attention weights on the test set", net(FUSION_MODELS["late attention"]), "forward",
                       n["test"]))
    what = "RGB-thermal pairs" if real else "synthetic RGB-thermal pairs"
    return passes, f"{what}: {_fmt(n, 'pairs')} at {S} px, {seeds} seed(s)"


#: notebook → its plan: ``plan(cfg, profile, sizes) -> (passes, data assumed)``.
PLANS: dict[str, Callable[..., tuple[list[Pass], str]]] = dict(zip(NOTEBOOKS, (plan_01, plan_02, plan_03, plan_04,
                                                                              plan_05)))


# --------------------------------------------------------------------------- estimates
def minutes(passes: list[Pass]) -> dict[str, float]:
    """``{gpu: minutes}`` for ``passes`` on each GPU of ``GPUS`` (``Pass.seconds``)."""
    return {gpu: sum(p.seconds(gpu) for p in passes) / 60 for gpu in GPUS}


def _check_notebook(notebook: str) -> None:
    if notebook not in PLANS:
        raise ValueError(f"unknown notebook {notebook!r}. Known notebooks: {', '.join(NOTEBOOKS)} "
                         "(the file name without .ipynb).")


def _check_profile(profile: str) -> None:
    from .config import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}. Allowed: {', '.join(PROFILES)} "
                         "(quick: CPU, synthetic data, small models; full: GPU, real data, pretrained models).")


def _plan(notebook: str, cfg: Mapping | None, profile: str | None,
          sizes: Mapping[str, int] | None) -> tuple[list[Pass], str, str]:
    """``(passes, data assumed, profile)`` of one notebook (see ``estimate``)."""
    from .config import get_profile, load_config
    from .paths import configs_dir

    _check_notebook(notebook)
    profile = profile or get_profile()
    _check_profile(profile)
    cfg = cfg if cfg is not None else load_config(configs_dir() / CONFIG_OF[notebook], profile=profile)
    passes, data = PLANS[notebook](cfg, profile, sizes)
    return passes, data, profile


def estimate(notebook: str, cfg: Mapping | None = None, profile: str | None = None,
             sizes: Mapping[str, int] | None = None) -> dict[str, Any]:
    """``{"flops", "minutes": {gpu: min}, "data", "passes": [{what, kind, items, batch, steps,
    flops, ops_per_step}]}`` for one notebook. ``cfg``: its loaded config (default: ``configs/<family>.yml`` for
    ``profile``); ``sizes``: the split sizes it really loaded (default: ``FULL_DATA`` in the
    full profile, the synthetic split in the quick one)."""
    return _summary(*_plan(notebook, cfg, profile, sizes))


def _summary(passes: list[Pass], data: str, profile: str) -> dict[str, Any]:
    """``estimate``'s dictionary for a plan's passes."""
    return {"flops": float(sum(p.flops for p in passes)), "minutes": minutes(passes), "data": data,
            "profile": profile,
            "passes": [{"what": p.what, "kind": p.kind, "items": p.items, "batch": p.batch, "steps": p.steps,
                        "flops": p.flops, "ops_per_step": p.net.ops(p.kind)} for p in passes]}


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
        verdict = "ok" if e["minutes"]["T4"] <= BUDGET_MINUTES else "OVER"
        lines.append(f"{nb:<24}{e['flops']:>10.2e}" + "".join(f"{_minutes_text(e['minutes'][g]):>10}" for g in gpus)
                     + f"  {verdict:<9}  {e['data']}")
        if detail:
            for p in e["passes"]:
                lines.append(f"    {p['flops']:>10.2e}  {p['kind']:<7} {p['items']:>10,} in {p['steps']:>7,} steps "
                             f"of {p['ops_per_step']:>5,} ops  {p['what']}")
    lines.append("Minutes: each pass takes the slower of its arithmetic (FLOPs at the GPU's share of its peak) and "
                 f"the host launching its operations ({SECONDS_PER_OP * 1e6:.1f} µs each). T4 budget: "
                 f"{BUDGET_MINUTES} min.")
    lines += [f"  {g}: {s['peak_flops'] / 1e12:g} TFLOP/s {s['precision']}, {s['mfu']:.1%} of it — {s['basis']}"
              for g, s in GPUS.items()]
    lines += [f"  host: {HOST_BASIS}", f"  public figures: {PUBLIC_SOURCE}"]
    return "\n".join(lines)


def gpu_name_to_key(name: str) -> str | None:
    """``"Tesla T4"`` → ``"T4"``, ``"NVIDIA A100-SXM4-40GB"`` → ``"A100"``; ``None`` if not in ``GPUS``."""
    for key in GPUS:
        if key.lower() in name.lower():
            return key
    return None


class TimeLeft:
    """The notebook's time left, measured: listens to ``lab_utils.clock`` (each ``fit`` reports its
    first epoch), follows the plan's training passes in order, and at the first epoch of the first
    training that is not short (≥ 5 % of the estimate: not a head on cached features) scales the
    estimate of everything still to run by how much slower or faster that epoch was than estimated. The yardstick is this GPU's row of ``GPUS``, or
    the T4's on any other device (a CPU: "at this pace"). Passes that ran before the estimate was
    printed (``Pass.ahead=False``) are left out."""

    LONG = 0.05

    def __init__(self, passes: list[Pass], gpu: str | None):
        self.passes, self.gpu = [p for p in passes if p.ahead], gpu or "T4"
        self.seconds = [p.seconds(self.gpu) for p in self.passes]
        self.trainings = [i for i, p in enumerate(self.passes) if p.kind == "train"]

    def __call__(self, seconds: float, images: int) -> bool:
        if not self.trainings:
            return True
        i = self.trainings.pop(0)
        if self.seconds[i] < self.LONG * sum(self.seconds):
            return False                                     # a short training: wait for the long one
        epoch = self.seconds[i] * images / max(self.passes[i].items, 1)     # its estimated first epoch
        pace = seconds / max(epoch, 1e-9)
        left = pace * max(sum(self.seconds[i:]) - epoch, 0.0)
        what = self.passes[i].what.split(":")[0]
        print(f"⏱ first epoch ({what}): {seconds:.1f} s, {pace:.2g}× the estimate for a"
              f"{'n' if self.gpu[0] in 'AH' else ''} {self.gpu} → about {_minutes_text(left / 60)} min left for this "
              "notebook at this pace")
        return True


def print_estimate(notebook: str, cfg: Mapping | None = None, sizes: Mapping[str, int] | None = None,
                   profile: str | None = None) -> dict[str, Any]:
    """Print one line: the estimated FLOPs of this notebook's training and evaluation, and the
    minutes on this machine's GPU (``torch.cuda.get_device_name`` matched to ``GPUS``), or on
    each GPU of the table when there is none or it is not in the table. From then on, the first
    epoch of the notebook's long training prints the time left, measured (``TimeLeft``).
    Returns ``estimate``."""
    from . import clock

    passes, data, profile = _plan(notebook, cfg, profile, sizes)
    e = _summary(passes, data, profile)
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    key = gpu_name_to_key(name) if name else None
    if key:
        where = f"≈ {_minutes_text(e['minutes'][key])} min on this {key}"
        if key == "T4" and e["minutes"]["T4"] > BUDGET_MINUTES:
            where += (f" if every epoch runs (over the lab's {BUDGET_MINUTES}-min budget: early stopping often ends "
                      "sooner; fewer epochs in the config cut it)")
    else:
        where = ("≈ " + " · ".join(f"{g} {_minutes_text(m)} min" for g, m in e["minutes"].items())
                 + (f" (this {name} is not in the table)" if name else ""))
    print(f"Estimated cost ({e['profile']} profile): {e['flops']:.1e} FLOPs {where} "
          "(each GPU's measured pace; the basis: python -m lab_utils.cost)")
    clock.listen(TimeLeft(passes, key))
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
