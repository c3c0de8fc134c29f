"""Notebooks 04-05's training recipes: how the FER models of ``lab_utils.models.fer`` are
trained and measured.

* ``strategy_stages`` — head-only / full / progressive fine-tuning as (epochs, layers) stages;
* ``fer_step`` — ``fit``'s step for dict batches, with paired RGB + thermal flips;
* ``extract_features`` + ``feature_step`` — train a head on a frozen backbone's cached features;
* ``lr_schedule_table`` — the learning rate of each parameter group, step by step;
* ``hide_modality`` — how much a fusion model relies on each modality: test macro-F1 with one hidden;
* ``saved_activation_bytes`` / ``measure_checkpointing`` — what gradient checkpointing saves;
* ``standin_backbone`` — the quick profile's stand-in for a pretrained ViT (notebook 04),
  pretrained on another task: how open the eyes are (``standin_labels``).
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data import paired_hflip_batch
from ..models.fer import FERModel
from .. import metrics as M
from ..training import autocast, classification_step, predict, to_device

def strategy_stages(epochs: int, head_only_epochs: int, top_layers: int) -> dict[str, list[tuple[int, int | None]]]:
    """Notebook 04's three fine-tuning strategies as stages ``(epochs, blocks to open)``:
    ``0`` = backbone frozen (head only), ``k`` = the top k blocks open, ``None`` = everything.

    * head only: ``[(E, 0)]``; full fine-tuning: ``[(E, None)]``;
    * progressive: ``K`` epochs head only, then half the rest with the top blocks, then all.
    """
    if not 0 <= head_only_epochs < epochs:
        raise ValueError(f"head_only_epochs={head_only_epochs} must be ≥ 0 and < epochs={epochs}: progressive "
                         "unfreezing needs epochs left for the stages that open the backbone.")
    rest = epochs - head_only_epochs
    progressive = [(head_only_epochs, 0), (rest // 2, top_layers), (rest - rest // 2, None)]
    return {"head only": [(epochs, 0)], "full fine-tuning": [(epochs, None)],
            "progressive": [(e, b) for e, b in progressive if e > 0]}


# --------------------------------------------------------------------------- training helpers
def fer_step(inputs: Sequence[str] = ("rgb",), label_key: str = "label", flip: bool = True,
             label_smoothing: float = 0.0) -> Callable:
    """A ``fit`` step for dict batches: ``logits = model(*batch[inputs])``, cross-entropy.

    With ``flip=True`` a random half of each *training* batch is mirrored left-right, the
    RGB and thermal images of an item together (``paired_hflip_batch``): a face flipped in
    one modality only would put the warm cheek on the wrong side. In training, a model with
    ``aux_weight > 0`` (``LateFusionViT``) adds ``aux_weight ·`` the mean cross-entropy of its
    per-encoder auxiliary classifiers (``forward_with_aux``).
    """

    base = classification_step(inputs=tuple(inputs), label_key=label_key, label_smoothing=label_smoothing)
    images = [k for k in inputs if k in ("rgb", "thermal", "pixel_values")]

    def step(model: nn.Module, batch: Mapping) -> dict[str, torch.Tensor]:
        if flip and model.training and images:
            batch = dict(batch)
            if len(images) == 2:
                batch[images[0]], batch[images[1]] = paired_hflip_batch(batch[images[0]], batch[images[1]])
            else:
                x = batch[images[0]]
                batch[images[0]], _ = paired_hflip_batch(x, x[:, :1])
        if not (model.training and getattr(model, "aux_weight", 0)):
            return base(model, batch)
        labels = batch[label_key]
        logits, aux = model.forward_with_aux(*(batch[k] for k in inputs))
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
        aux_loss = sum(F.cross_entropy(a.float(), labels, label_smoothing=label_smoothing) for a in aux.values())
        loss = loss + model.aux_weight * aux_loss / max(len(aux), 1)
        return {"loss": loss, "logits": logits.detach(), "labels": labels}
    return step


@torch.no_grad()
def extract_features(model: FERModel, batches: Any, device: torch.device | str | None = None,
                     flip: bool = False) -> dict[str, torch.Tensor]:
    """A frozen backbone's features, computed once: ``{"feature": (N, h), "label": (N,)}``
    (+ ``"feature_flipped"`` (N, h), the features of the mirrored images, with ``flip=True``).

    ``batches`` yields dicts with ``"rgb"`` (B, 3, S, S) and ``"label"`` (any order: each
    feature stays with its label). Features come from ``model.features`` in eval mode, on
    ``device`` (default: the model's), with AMP on CUDA, and are kept on the CPU in float32.
    Training the head on them for E epochs (``feature_step``) costs one backbone forward pass
    per image instead of E.
    """

    device = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()
    out: dict[str, list[torch.Tensor]] = {"feature": [], "label": []} | ({"feature_flipped": []} if flip else {})
    for batch in batches:
        x = to_device(batch["rgb"], device)
        with autocast(device, None):
            out["feature"].append(model.features(x).float().cpu())             # (B, h)
            if flip:
                out["feature_flipped"].append(model.features(x.flip(-1)).float().cpu())
        out["label"].append(batch["label"].cpu())
    model.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def feature_step(flip: bool = True, label_smoothing: float = 0.0) -> Callable:
    """A ``fit`` step for a head trained on cached features (``extract_features``):
    ``logits = head(batch["feature"])``, cross-entropy. With ``flip=True`` (and
    ``"feature_flipped"`` in the batch) a random half of each *training* batch uses the
    mirrored image's feature: the same augmentation as ``fer_step``'s random flips."""

    base = classification_step(inputs=("feature",), label_smoothing=label_smoothing)

    def step(head: nn.Module, batch: Mapping) -> dict[str, torch.Tensor]:
        if flip and head.training and "feature_flipped" in batch:
            mirrored = torch.rand(len(batch["feature"]), device=batch["feature"].device) < 0.5   # (B,)
            batch = dict(batch, feature=torch.where(mirrored[:, None], batch["feature_flipped"], batch["feature"]))
        return base(head, batch)
    return step


@torch.no_grad()
def hide_modality(model: nn.Module, loader: Any, step_fn: Callable, modalities: Sequence[str] = ("rgb", "thermal"),
                  device: torch.device | str | None = None, num_classes: int = 7) -> dict[str, float]:
    """How much a fusion model relies on each modality: test macro-F1 with every modality, and
    with each one **hidden** — its images replaced by the mean image of the ``loader``'s data.

    A hidden modality still arrives at the usual scale (no out-of-range input), but carries
    nothing that tells one face from another. A model that ignores a modality loses nothing
    when it is hidden: the sign of **modality collapse**. Returns ``{"both": f1,
    "rgb hidden": f1, "thermal hidden": f1}`` (keys follow ``modalities``); ``step_fn`` is the
    model's ``fit`` step (``fer_step``), run in eval mode (no flips).
    """
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for batch in loader:
        for m in modalities:
            sums[m] = sums.get(m, 0) + batch[m].double().sum(0)
        count += len(batch[modalities[0]])
    means = {m: (total / count).float() for m, total in sums.items()}          # (C, S, S) per modality

    def hiding(m: str | None) -> Callable:
        def step(model: nn.Module, batch: Mapping) -> dict[str, torch.Tensor]:
            if m is not None:
                batch = {**batch, m: means[m].to(batch[m].device).expand_as(batch[m])}
            return step_fn(model, batch)
        return step

    out = {}
    for m in (None, *modalities):
        logits, labels = predict(model, loader, hiding(m), device)
        out["both" if m is None else f"{m} hidden"] = M.macro_f1(labels, logits.argmax(1), num_classes)
    return out


def lr_schedule_table(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> "Any":
    """Step a scheduler ``steps`` times on a throwaway copy of the learning rates and return
    a DataFrame (index = step, one column per parameter group name) of the rates applied."""
    import pandas as pd

    names = [g.get("name", str(i)) for i, g in enumerate(optimizer.param_groups)]
    state = scheduler.state_dict()
    saved = [g["lr"] for g in optimizer.param_groups]
    rows = []
    with warnings.catch_warnings():   # "scheduler.step() before optimizer.step()": intended here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            rows.append([g["lr"] for g in optimizer.param_groups])
            scheduler.step()
    scheduler.load_state_dict(state)
    for g, lr in zip(optimizer.param_groups, saved):
        g["lr"] = lr
    return pd.DataFrame(rows, columns=names).rename_axis("step")


def saved_activation_bytes(model: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of ``loss_fn()`` (the
    activation memory of a training step), counting each storage once and leaving out
    parameters. Works on the CPU, where there is no ``torch.cuda.max_memory_allocated``.
    With gradient checkpointing the blocks' inner activations are not kept (they are
    recomputed), only each block's input.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in params and ptr != 0:
                seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def measure_checkpointing(model: FERModel, batch: Mapping[str, torch.Tensor], step_fn: Callable,
                          repeats: int = 3) -> dict[str, float]:
    """Activation memory and time of one training step with and without gradient checkpointing.

    Returns ``{"activations_MB", "step_ms", "peak_gpu_MB" (CUDA only)}`` for the
    ``model``'s current setting. The step is forward + backward (no optimizer update).
    """
    device = next(model.parameters()).device
    model.train()
    out: dict[str, float] = {}
    out["activations_MB"] = saved_activation_bytes(model, lambda: step_fn(model, batch)["loss"]) / 2**20
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step_fn(model, batch)["loss"].backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
    out["step_ms"] = 1000 * sorted(times)[len(times) // 2]
    if device.type == "cuda":
        out["peak_gpu_MB"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    return out


STANDIN_TASK = "eye_openness"
"""What the quick profile's stand-in backbone is pretrained on (saved beside its weights)."""

STANDIN_CLASSES = ("narrow", "relaxed", "wide")
"""The stand-in's pretraining classes: how open the eyes are (the synthetic world's ``eye_open``
action below 0.8, 0.8 to 1.25, above 1.25; 1 is the relaxed rest pose)."""

STANDIN_INFO = "standin.json"
"""The file beside ``config.json`` that names the stand-in's pretraining (``task``, ``classes``, …)."""


def standin_labels(attributes: Mapping[str, Any]) -> torch.Tensor:
    """The stand-in's pretraining labels from ``SynthFER.attributes()``: ``0`` narrow, ``1`` relaxed,
    ``2`` wide eyes (:data:`STANDIN_CLASSES`), from each face's own ``eye_open`` action (per item:
    the expression, its intensity, the person's resting face and noise all move it). Nothing
    else of the face enters: the brows, the mouth and the expression names are never seen."""
    import numpy as np
    from ..data.synthetic import RGB_ACTION_KEYS

    eye_open = np.asarray(attributes["rgb_params"])[:, RGB_ACTION_KEYS.index("eye_open")]
    return torch.as_tensor(np.digitize(eye_open, [0.8, 1.25]), dtype=torch.long)


def standin_info(folder: str | os.PathLike) -> dict | None:
    """What the stand-in in ``folder`` was pretrained on (its :data:`STANDIN_INFO`), or ``None``
    (no such file: an older stand-in, pretrained on the seven expressions, or no stand-in)."""
    import json

    path = Path(folder) / STANDIN_INFO
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def standin_backbone(cfg: Mapping, step_fn: Callable, data_seed: int, folder: str | os.PathLike,
                     num_faces: int = 2800) -> tuple[str, bool]:
    """The quick profile's stand-in for ImageNet-21k pretraining: a small ViT trained from
    scratch for ``cfg.train.pretrain_epochs`` epochs on **another task** than notebook 04's:
    how open the eyes are (:data:`STANDIN_CLASSES`: narrow / relaxed / wide, see
    :func:`standin_labels`), on ``num_faces`` synthetic faces (2,800: 200 people) that no split
    of notebook 04 contains (``data_seed``); 2 of each person's 14 faces are its validation set.
    It never sees the expression labels: its features know where the eyes are and how open,
    not the brows' tilt or the mouth that tell the seven expressions apart.

    ``model.vit`` is saved with ``save_pretrained`` in ``folder``, with :data:`STANDIN_INFO`
    beside it (task, classes, epochs, data seed, image size), and reused after that — but only
    when that file matches: a folder pretrained otherwise (an older stand-in trained on the
    expressions has no such file) is trained again. Returns ``(folder, trained_now)``.

    Everything trains at one learning rate (``backbone_lr_scale=1.0``: nothing pretrained to
    protect); the schedule is the notebook's (cosine after 10 % warm-up, weight decay 0.05)."""
    import json

    import numpy as np

    from ..config import seed_everything
    from ..data import SynthFER
    from ..data.fer_data import TensorBatches
    from ..models.fer import ViTForFER
    from ..models.pretrained import quiet_transformers
    from ..training import train_variant

    folder = Path(folder)
    info = {"task": STANDIN_TASK, "classes": list(STANDIN_CLASSES), "epochs": int(cfg["train"]["pretrain_epochs"]),
            "data_seed": int(data_seed), "num_faces": int(num_faces), "image_size": int(cfg["data"]["image_size"])}
    if (folder / "config.json").exists() and standin_info(folder) == info:
        return str(folder), False
    source = SynthFER(num_faces, cfg["data"]["image_size"], seed=data_seed)
    faces = source.tensors()
    labels = standin_labels(source.attributes())
    subjects = faces["subject"].numpy()
    val = np.zeros(len(labels), bool)                  # 2 faces of each person: not split by person,
    rng = np.random.default_rng(1)                     # the task is about the eyes, not who it is
    for s in np.unique(subjects):
        val[rng.choice(np.flatnonzero(subjects == s), 2, replace=False)] = True

    def batches(mask: np.ndarray, batch_size: int, shuffle: bool) -> TensorBatches:
        idx = torch.as_tensor(np.flatnonzero(mask))
        return TensorBatches({"rgb": faces["rgb"][idx], "label": labels[idx]},
                             batch_size, shuffle=shuffle)

    loaders = {"train": batches(~val, 64, True), "val": batches(val, 256, False)}
    seed_everything(cfg["seed"])
    model = ViTForFER(cfg["model"]["model_name"], len(STANDIN_CLASSES), pooling=cfg["model"]["pooling"],
                      verbose=False)
    train_variant(model, loaders, step_fn, epochs=cfg["train"]["pretrain_epochs"],
                  learning_rate=cfg["train"]["learning_rate"], weight_decay=0.05, backbone_lr_scale=1.0,
                  test=False)
    (folder / STANDIN_INFO).unlink(missing_ok=True)    # a crash while saving leaves no matching file
    with quiet_transformers():                         # no "Writing model shards" progress bar
        model.vit.save_pretrained(folder)
    (folder / STANDIN_INFO).write_text(json.dumps(info, indent=1) + "\n")
    return str(folder), True
