"""One training loop for every notebook, plus losses, optimizers and checkpoints.

* ``fit`` — the epoch loop, read top to bottom: ``train_one_epoch`` (progress bar with
  samples/s, AMP on CUDA, gradient accumulation and clipping, a NaN/inf guard),
  ``evaluate``, ``EarlyStopping`` (the one keeper of the best epoch), ``Checkpointer``
  (best/last checkpoints, resume after an interruption: a resumed CPU run ends with the
  same weights as an uninterrupted one); returns the history as a pandas DataFrame. Its
  options come in three groups: ``Stopping`` (metric, patience, best weights), ``Steps``
  (accumulation, clipping, AMP, when the scheduler steps), ``Checkpoints`` (where, resume).
* ``contrastive_loss`` — CLIP's symmetric InfoNCE (notebook 02).
* ``adamw`` — the one optimizer policy (which weights decay, the learning rate of each group,
  and why); ``get_optimizer_and_scheduler`` adds a cosine schedule with warm-up (notebooks 02-05).
"""
from __future__ import annotations

import copy
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import clock
from . import metrics as M
from .checkpoints import load_checkpoint, save_checkpoint
from .config import amp_dtype as _amp_dtype  # bf16 where the GPU has it, else fp16 (+ GradScaler)

StepFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]


# --------------------------------------------------------------------------- batches
def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor inside a (nested) dict / list / tuple batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, Mapping) else batch
    for value in values:
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return value.shape[0]
    return 1


def classification_step(inputs: Sequence[str] = ("pixel_values",), label_key: str = "label",
                        label_smoothing: float = 0.0) -> StepFn:
    """A ``step_fn`` for classifiers: ``logits = model(*batch[inputs])``, cross-entropy.

    Dict batches use the keys ``inputs`` and ``label_key``; tuple batches are
    ``(*inputs, labels)``. Models may return a tensor ``(B, C)`` or an object with ``.logits``.
    """
    def step(model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        if isinstance(batch, Mapping):
            args, labels = [batch[k] for k in inputs], batch[label_key]
        else:
            *args, labels = batch
        logits = model(*args)
        logits = getattr(logits, "logits", logits)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
        return {"loss": loss, "logits": logits.detach(), "labels": labels}
    return step


# --------------------------------------------------------------------------- evaluation
def autocast(device: torch.device, amp: bool | None):
    """The mixed-precision context of the lab's steps on ``device``: bf16 or fp16 autocast on
    CUDA (``config.amp_dtype``; ``amp=False`` turns it off), a disabled one elsewhere."""
    if _amp_dtype(device, amp) is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type="cuda", dtype=_amp_dtype(device, amp))


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, step_fn: StepFn | None = None,
             device: torch.device | str | None = None, amp: bool | None = None,
             prefix: str = "val_") -> dict[str, float]:
    """Average loss over ``loader`` and, when the step returns logits and labels,
    accuracy and macro-F1. Keys are prefixed (``val_loss``, ``val_acc``, ``val_f1_macro``).

    The loss is summed and the predictions are kept on ``device``: the GPU runs ahead of the
    host, which reads everything once, at the end."""
    step_fn = step_fn or classification_step()
    device = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count, preds, labels = torch.zeros((), dtype=torch.float64, device=device), 0, [], []
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(device, amp):
            out = step_fn(model, batch)
        n = _batch_size(batch)
        total += out["loss"].detach().double() * n
        count += n
        if "logits" in out and "labels" in out:
            preds.append(out["logits"].argmax(-1))
            labels.append(out["labels"])
    model.train(was_training)
    result = {f"{prefix}loss": total.item() / max(count, 1)}
    if preds:
        y_pred, y_true = torch.cat(preds).cpu().numpy(), torch.cat(labels).cpu().numpy()
        result[f"{prefix}acc"] = M.accuracy(y_true, y_pred)
        result[f"{prefix}f1_macro"] = M.macro_f1(y_true, y_pred)
    return result


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, step_fn: StepFn | None = None,
            device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (N, C), labels (N,))`` of a classifier over ``loader``, on the CPU (moved
    there once, at the end)."""
    step_fn = step_fn or classification_step()
    device = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for batch in loader:
        out = step_fn(model, to_device(batch, device))
        logits.append(out["logits"].float())
        labels.append(out["labels"])
    model.train(was_training)
    return torch.cat(logits).cpu(), torch.cat(labels).cpu()


class EarlyStopping:
    """Tracks the best value of a metric and says when it has not improved for ``patience`` epochs.

    ``step(value, epoch)`` returns True when ``value`` is a new best; ``best`` and
    ``best_epoch`` hold it. ``mode="max"`` for scores (macro-F1), ``"min"`` for losses.
    ``min_delta``: the smallest change that counts. ``patience=None`` tracks the best without
    ever stopping (``fit`` uses that when no early stopping was asked for).
    """

    def __init__(self, patience: int | None, mode: str = "max", min_delta: float = 0.0):
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be ≥ 1 (or None: track the best, never stop), got {patience}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' (scores such as val_f1_macro) or 'min' (losses), "
                             f"got {mode!r}")
        self.patience, self.mode, self.min_delta = patience, mode, min_delta
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.epoch = 0

    def step(self, value: float, epoch: int | None = None) -> bool:
        """Record ``value`` for ``epoch`` (default: the one after the last step); True if it is
        a new best."""
        self.epoch = self.epoch + 1 if epoch is None else epoch
        better = self.best is None or (
            value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta)
        if better:
            self.best, self.best_epoch, self.bad_epochs = float(value), self.epoch, 0
        else:
            self.bad_epochs += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "epoch": self.epoch}

    def load_state_dict(self, state: Mapping) -> None:
        for key in ("best", "best_epoch", "bad_epochs", "epoch"):
            setattr(self, key, state[key])


# --------------------------------------------------------------------------- fit's options
@dataclass(frozen=True)
class Steps:
    """How each training step runs (``fit`` and ``train_one_epoch``).

    Attributes:
        grad_accum_steps: the gradients of this many batches are summed per optimizer step.
        max_grad_norm: clip the global gradient norm to this value; ``None``: no clipping.
        amp: mixed precision on CUDA (bf16 where supported, else fp16 with a GradScaler);
            ``None`` = on for CUDA. Ignored on the CPU.
        scheduler_per: ``"step"``: the scheduler steps after every optimizer step; ``"epoch"``:
            once at the end of each epoch.
    """

    grad_accum_steps: int = 1
    max_grad_norm: float | None = None
    amp: bool | None = None
    scheduler_per: str = "step"

    def __post_init__(self):
        if self.grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be ≥ 1, got {self.grad_accum_steps}: 1 for an optimizer "
                             "step after every batch, k to sum the gradients of k batches per step")
        if self.scheduler_per not in ("step", "epoch"):
            raise ValueError(f"scheduler_per must be 'step' or 'epoch', got {self.scheduler_per!r}")


@dataclass(frozen=True)
class Stopping:
    """Which epoch of a ``fit`` run is the best, and when the run stops.

    Attributes:
        metric: the history column ``EarlyStopping`` judges: ``val_f1_macro``, ``val_loss``
            (with ``mode="min"``) or a key returned by ``eval_fn``; a name no row has (e.g.
            ``"none"``) tracks nothing.
        mode: ``"max"`` for scores, ``"min"`` for losses.
        patience: stop after this many epochs without a new best; ``None`` (or 0): run every epoch.
        restore_best: load the best epoch's weights at the end when ``metric`` was tracked.
    """

    metric: str = "val_f1_macro"
    mode: str = "max"
    patience: int | None = None
    restore_best: bool = True


@dataclass(frozen=True)
class Checkpoints:
    """Where ``fit`` writes ``last.safetensors`` after every epoch and ``best.safetensors`` on
    improvement (``Checkpointer``); with ``resume``, a later call with the same arguments
    continues after the last finished epoch."""

    directory: str | os.PathLike
    resume: bool = True


# --------------------------------------------------------------------------- one epoch
def _seed_epoch(seed: int, epoch: int, loader: Any = None) -> None:
    """Each epoch starts from its own seed, so shuffling and dropout of epoch e are the
    same whether or not the run was interrupted and resumed before it, and whatever ran
    before ``fit``. That includes a ``torch.Generator`` the loader shuffles with
    (``DataLoader(..., generator=g)`` or a sampler's ``generator``): it is reseeded too,
    otherwise its state would carry over from earlier runs that shared it."""
    s = seed * 1000 + epoch
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    generators = {id(g): g for g in (getattr(loader, "generator", None),
                                     getattr(getattr(loader, "sampler", None), "generator", None))
                  if isinstance(g, torch.Generator)}
    for g in generators.values():
        g.manual_seed(s)


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: "torch.amp.GradScaler | None" = None,
                   max_grad_norm: float | None = None) -> None:
    """One update from the accumulated gradients, then clear them: unscale (fp16 AMP) and clip
    to ``max_grad_norm`` if asked, step through the ``scaler`` when there is one (it skips a
    step whose gradients overflowed), else a plain ``optimizer.step()``."""
    if max_grad_norm is not None:
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_grad_norm)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


GUARD_EVERY = 32
"""Batches between two looks at the running loss in ``train_one_epoch``: the NaN/inf guard and
the progress bar read it then (one host–device sync), and once more at the end of the epoch."""


class _LossGuard:
    """The losses of one epoch, kept on the device: their sum, and the index and value of the
    first one that is not finite. ``check`` reads them in one host–device sync."""

    def __init__(self, device: torch.device, epoch: int, optimizer: torch.optim.Optimizer):
        self.epoch, self.optimizer, self.batches = epoch, optimizer, 0
        self.sum = torch.zeros((), dtype=torch.float64, device=device)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)   # batch index of the first NaN/inf loss
        self.bad_loss = torch.zeros((), dtype=torch.float32, device=device)     # … and that loss

    def flag(self, i: int, loss: torch.Tensor) -> torch.Tensor:
        """Remember batch ``i``'s loss if it is the first non-finite one; returns it detached, in fp32."""
        detached = loss.detach().float()
        new_bad = (self.first_bad < 0) & ~torch.isfinite(detached)
        self.first_bad = torch.where(new_bad, torch.full_like(self.first_bad, i), self.first_bad)
        self.bad_loss = torch.where(new_bad, detached, self.bad_loss)
        return detached

    def add(self, detached: torch.Tensor) -> None:
        self.sum += detached.double()
        self.batches += 1

    def check(self) -> float:
        """Raise if a loss so far was not finite, else return the running mean loss."""
        bad, value, running = torch.stack([self.first_bad.double(), self.bad_loss.double(), self.sum]).tolist()
        if bad >= 0:
            raise FloatingPointError(
                f"The training loss became {value} at epoch {self.epoch}, batch {int(bad) + 1} (found when "
                f"checking batches up to {self.batches}). Lower the learning rate (now "
                f"{self.optimizer.param_groups[0]['lr']:.3g}), set max_grad_norm=1.0 to clip gradients, or "
                "check the inputs for NaNs.")
        return running / max(self.batches, 1)

    def mean(self) -> float:
        return self.sum.item() / max(self.batches, 1)


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                    step_fn: StepFn | None = None, *, device: torch.device | str | None = None,
                    steps: Steps = Steps(), scaler: "torch.amp.GradScaler | None" = None,
                    scheduler: Any | None = None, epoch: int = 1, epochs: int | None = None,
                    progress: bool = True) -> dict[str, float]:
    """One pass over ``loader`` in training mode.

    Each batch: forward under autocast (``steps.amp``, see ``evaluate``), backward of
    ``loss / steps.grad_accum_steps`` (through ``scaler`` for fp16). Every ``grad_accum_steps``
    batches, and after the last one, ``optimizer_step`` and, with ``scheduler_per="step"``,
    ``scheduler.step()``. ``epoch`` (1-based) and ``epochs`` name the epoch in the progress bar
    and in errors. The host never waits for the GPU inside the loop: ``_LossGuard`` keeps the
    losses on the device and is read every ``GUARD_EVERY`` batches and at the end.

    Returns:
        ``{"train_loss": mean loss per batch, "samples_per_s": training throughput, "samples": items seen}``.

    Raises:
        FloatingPointError: the loss became NaN or infinite (says at which batch, and what to change).
    """
    step_fn = step_fn or classification_step()
    device = torch.device(device) if device else next(model.parameters()).device
    model.train()
    t0, seen = time.perf_counter(), 0
    guard = _LossGuard(device, epoch, optimizer)
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}", disable=not progress,
               leave=False, mininterval=1.0)
    total = len(loader) if hasattr(loader, "__len__") else None

    def look() -> None:
        running = guard.check()
        if progress:
            bar.set_postfix(loss=f"{running:.3f}", samples_per_s=f"{seen / (time.perf_counter() - t0):.0f}")

    for i, batch in enumerate(bar):
        batch = to_device(batch, device)
        with autocast(device, steps.amp):
            out = step_fn(model, batch)
        detached = guard.flag(i, out["loss"])
        loss = out["loss"] / steps.grad_accum_steps
        (scaler.scale(loss) if scaler else loss).backward()
        if (i + 1) % steps.grad_accum_steps == 0 or (total is not None and i + 1 == total):
            optimizer_step(optimizer, scaler, steps.max_grad_norm)
            if scheduler is not None and steps.scheduler_per == "step":
                scheduler.step()
        seen += _batch_size(batch)
        guard.add(detached)
        if guard.batches % GUARD_EVERY == 0:
            look()
    look()
    if scheduler is not None and steps.scheduler_per == "epoch":
        scheduler.step()
    seconds = time.perf_counter() - t0
    return {"train_loss": guard.mean(), "samples_per_s": seen / max(seconds, 1e-9), "samples": seen}


# --------------------------------------------------------------------------- fit
class BestWeights:
    """A CPU copy of ``model``'s weights at the best epoch so far, loaded back at the end of ``fit``."""

    def __init__(self, model: nn.Module):
        self.model, self.state = model, None

    def keep(self) -> None:
        """Copy the model's current weights (the new best)."""
        self.state = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})

    def restore(self, saved: Path | None = None) -> None:
        """Load the kept weights; none kept (the best epoch ran before a resume): those of the
        checkpoint ``saved`` when it exists."""
        if self.state is not None:
            self.model.load_state_dict(self.state)
        elif saved is not None and saved.exists():
            load_checkpoint(saved, self.model)


def _print_epoch(epoch: int, epochs: int, row: Mapping[str, Any], improved: bool) -> None:
    """``epoch   3/10 · train_loss 0.512 · val_loss 0.498 · … · best``: the row's float columns."""
    shown = " · ".join(f"{k} {v:.4g}" for k, v in row.items()
                       if k not in ("epoch", "lr", "seconds") and isinstance(v, float))
    print(f"epoch {epoch:>3}/{epochs} · {shown}" + (" · best" if improved else ""))


def _train_and_measure(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None,
                       optimizer: torch.optim.Optimizer, step_fn: StepFn,
                       eval_fn: Callable[[nn.Module], Mapping[str, float]] | None, *, device: torch.device,
                       steps: Steps, scaler: "torch.amp.GradScaler | None", scheduler: Any | None, epoch: int,
                       epochs: int, progress: bool) -> tuple[dict[str, Any], int]:
    """One epoch of ``fit``: ``train_one_epoch``, then ``evaluate`` and ``eval_fn``. Returns the
    history row and the number of training samples seen."""
    t0 = time.perf_counter()
    train = train_one_epoch(model, train_loader, optimizer, step_fn, device=device, steps=steps, scaler=scaler,
                            scheduler=scheduler, epoch=epoch, epochs=epochs, progress=progress)
    row = {"epoch": epoch, "train_loss": train["train_loss"], "lr": optimizer.param_groups[0]["lr"],
           **(evaluate(model, val_loader, step_fn, device, steps.amp) if val_loader is not None else {}),
           **(eval_fn(model) if eval_fn is not None else {}),
           "seconds": time.perf_counter() - t0, "samples_per_s": train["samples_per_s"]}
    return row, train["samples"]


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None = None, *,
        epochs: int, optimizer: torch.optim.Optimizer | None = None, scheduler: Any | None = None,
        lr: float = 1e-3, step_fn: StepFn | None = None,
        eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
        device: torch.device | str | None = None, seed: int = 0, stopping: Stopping = Stopping(),
        steps: Steps = Steps(), checkpoints: Checkpoints | None = None, progress: bool = True,
        verbose: bool = True) -> pd.DataFrame:
    """Train ``model`` for ``epochs`` epochs and return the history (one row per epoch).

    Each epoch: reseed from ``seed`` (``_seed_epoch``: resumed runs repeat exactly),
    ``train_one_epoch``, ``evaluate`` on ``val_loader`` and ``eval_fn(model) -> {name: value}``
    (extra columns), let ``EarlyStopping`` judge ``stopping.metric`` (it alone keeps the best
    value and epoch), print (``verbose``), and write ``checkpoints`` (``Checkpointer``).

    ``step_fn(model, batch) -> {"loss", ["logits", "labels"]}`` defaults to
    ``classification_step()``; without ``optimizer``, ``adamw(model, lr)`` (one group, weight
    decay 0.01); ``scheduler`` steps as ``steps.scheduler_per`` says. ``stopping``, ``steps`` and
    ``checkpoints`` group the other options (see their classes).

    Returns:
        DataFrame with ``epoch, train_loss, lr, [val_loss, val_acc, val_f1_macro, …],
        seconds, samples_per_s``; ``.attrs["best_epoch"]``, ``.attrs["stopped_epoch"]``, ``.attrs["metric"]``.
    """
    step_fn = step_fn or classification_step()
    device = torch.device(device) if device else next(model.parameters()).device
    model.to(device)
    optimizer = optimizer if optimizer is not None else adamw(model, lr)
    scaler = torch.amp.GradScaler("cuda") if _amp_dtype(device, steps.amp) == torch.float16 else None
    stopper = EarlyStopping(stopping.patience or None, stopping.mode)   # patience None: tracks the best, never stops
    best_weights = BestWeights(model) if stopping.restore_best else None
    ckpt = Checkpointer(checkpoints.directory, model, optimizer, scheduler, stopper, scaler) if checkpoints else None
    start, rows = ckpt.resume(epochs, verbose) if ckpt and checkpoints.resume else (0, [])
    stopped_epoch, metric = None, stopping.metric
    for epoch in range(start + 1, epochs + 1):                           # 1-based
        _seed_epoch(seed, epoch - 1, train_loader)
        row, samples = _train_and_measure(model, train_loader, val_loader, optimizer, step_fn, eval_fn, device=device,
                                          steps=steps, scaler=scaler, scheduler=scheduler, epoch=epoch,
                                          epochs=epochs, progress=progress)
        rows.append(row)
        if epoch == start + 1:
            clock.first_epoch_done(row["seconds"], samples)              # the notebook's time left, if it asked
        improved = metric in row and stopper.step(row[metric], epoch)
        if improved and best_weights:
            best_weights.keep()
        if verbose:
            _print_epoch(epoch, epochs, row, improved)
        if ckpt:
            ckpt.save(epoch, rows, metric, improved)
        if stopper.should_stop:
            stopped_epoch = epoch
            if verbose:
                print(f"Early stopping after epoch {epoch}: {metric} has not improved for {stopping.patience} "
                      f"epochs (best {stopper.best:.4g} at epoch {stopper.best_epoch}).")
            break
    if best_weights and stopper.best_epoch is not None:
        best_weights.restore(ckpt.best if ckpt else None)
    history = pd.DataFrame(rows)
    history.attrs.update(best_epoch=stopper.best_epoch, stopped_epoch=stopped_epoch, metric=metric)
    return history


# --------------------------------------------------------------------------- checkpoints during fit
class Checkpointer:
    """The checkpoints of one ``fit`` run in ``directory`` (created if missing).

    * ``last.safetensors``, after every epoch: weights, optimizer, scheduler, and the state
      ``epoch, history, best_value, best_epoch, stopped, early_stopping, scaler``;
    * ``best.safetensors``, when the tracked metric improved: weights and
      ``epoch, metric, value``.

    Both are written atomically (``save_checkpoint``). ``stopper`` owns the best value and
    epoch written into them; ``resume`` loads ``last`` back into every object given here.
    """

    def __init__(self, directory: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any | None = None, stopper: EarlyStopping | None = None,
                 scaler: "torch.amp.GradScaler | None" = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.last, self.best = self.directory / "last.safetensors", self.directory / "best.safetensors"
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.stopper = stopper if stopper is not None else EarlyStopping(None)
        self.scaler = scaler

    def resume(self, epochs: int, verbose: bool = True) -> tuple[int, list[dict]]:
        """Continue from ``last.safetensors`` if there is one.

        Returns:
            ``(first epoch to run (0-based), history rows so far)``: ``(0, [])`` without a
            checkpoint; ``epochs`` or more when the saved run had finished or stopped early.
        """
        if not self.last.exists():
            return 0, []
        state = load_checkpoint(self.last, self.model, self.optimizer, self.scheduler)
        if state.get("early_stopping"):
            self.stopper.load_state_dict(state["early_stopping"])
        else:                    # saved without early stopping: only the best value and epoch
            self.stopper.best, self.stopper.best_epoch = state.get("best_value"), state.get("best_epoch")
            self.stopper.epoch = state["epoch"]
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if verbose:
            print(f"Resumed from {self.last} after epoch {state['epoch']}/{epochs}.")
        return (max(state["epoch"], epochs) if state.get("stopped") else state["epoch"]), state["history"]

    def save(self, epoch: int, history: list[dict], metric: str, improved: bool) -> None:
        """After ``epoch`` (1-based): ``best.safetensors`` if ``improved``, then ``last.safetensors``."""
        stopper = self.stopper
        if improved:
            save_checkpoint(self.best, self.model, epoch=epoch, metric=metric, value=stopper.best)
        save_checkpoint(self.last, self.model, self.optimizer, self.scheduler,
                        epoch=epoch, history=history, best_value=stopper.best, best_epoch=stopper.best_epoch,
                        stopped=stopper.should_stop,
                        early_stopping=stopper.state_dict() if stopper.patience is not None else None,
                        scaler=self.scaler.state_dict() if self.scaler is not None else None)


# --------------------------------------------------------------------------- losses
def contrastive_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                     logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's symmetric InfoNCE loss.

    Args:
        image_embeds: (B, D), L2-normalised. Row i is paired with ``text_embeds[i]``.
        text_embeds: (B, D), L2-normalised.
        logit_scale: the multiplier applied to cosine similarities (CLIP: ``exp`` of the
            learned log-temperature, clamped at 100).

    Returns:
        Scalar: mean of the image→text and text→image cross-entropies over the (B, B)
        similarity matrix whose diagonal holds the true pairs.
    """
    if image_embeds.dim() != 2 or text_embeds.dim() != 2:
        raise ValueError(f"expected (B, D) embeddings, got images {tuple(image_embeds.shape)} "
                         f"and texts {tuple(text_embeds.shape)}")
    if image_embeds.shape != text_embeds.shape:
        raise ValueError(f"images and texts must pair up one to one: got {image_embeds.shape[0]} "
                         f"images × {image_embeds.shape[1]} dims and {text_embeds.shape[0]} texts × "
                         f"{text_embeds.shape[1]} dims. Give one caption per image in each batch.")
    logits = logit_scale * image_embeds @ text_embeds.t()   # (B, B): image i vs text j
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


# --------------------------------------------------------------------------- optimizers
def backbone_parameter_names(model: nn.Module) -> set[str]:
    """Names of the parameters that belong to the pretrained backbone(s).

    A model declares its backbone children in ``backbone_modules`` (e.g. ``("vit",)``,
    ``("rgb_vit", "thermal_vit")``); without it, children named ``backbone``, ``vit``,
    ``encoder`` or ``*_encoder``/``*_vit`` count as backbone.
    """
    declared = getattr(model, "backbone_modules", None)
    names = set()
    for child_name, _ in model.named_children():
        is_backbone = (child_name in declared) if declared is not None else (
            child_name in ("backbone", "vit", "encoder") or child_name.endswith(("_encoder", "_vit")))
        if is_backbone:
            names.update(f"{child_name}.{n}" for n, _ in getattr(model, child_name).named_parameters())
    return names


def _fused_on_cuda(params: Iterable[torch.Tensor]) -> dict[str, bool]:
    """``{"fused": True}`` when every parameter lives on a CUDA GPU: AdamW then updates all of
    them in a few fused kernels instead of a loop of small ones. Nothing on the CPU, where a
    fused update would round differently from the one the stored outputs were made with."""
    params = list(params)
    return {"fused": True} if params and all(p.is_cuda for p in params) else {}


def adamw(model: nn.Module, learning_rate: float, *, weight_decay: float = 0.01, backbone_lr_scale: float = 1.0,
          decay_matrices_only: bool = False) -> torch.optim.AdamW:
    """The lab's one optimizer policy: AdamW over ``model``'s trainable parameters, in named groups.

    Why each choice:

    * **AdamW**: per-weight step sizes (what transformers need: gradients differ by orders of
      magnitude between embeddings, attention and heads), with the weight decay decoupled from
      the gradient: each step shrinks a weight by ``learning_rate × weight_decay`` of itself,
      whatever its gradient's scale.
    * **Learning rate per group**: ``backbone_lr_scale != 1`` gives a ``backbone`` group (the
      model's pretrained part, ``backbone_parameter_names``) at ``learning_rate ×
      backbone_lr_scale`` — small steps keep what pretraining learnt (0.1 for a pretrained
      encoder) — and a ``head`` group at ``learning_rate``. ``1.0`` (trained from scratch:
      nothing to protect) gives one group, ``all``.
    * **What decays**: by default every weight. ``decay_matrices_only`` splits each group
      into ``<group>/decay`` (weight matrices and kernels) and ``<group>/no_decay`` (biases,
      norm gains, CLIP's ``logit_scale``: everything with fewer than 2 dimensions): decaying
      those pulls a gain or the temperature toward 0 and regularises nothing.
    * **Frozen weights are left out** (``requires_grad=False``): after unfreezing, build the
      optimizer again so that the newly trainable weights are in a group.
    * **Fused kernels on CUDA** (``_fused_on_cuda``), the plain update on the CPU.
    """
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if not backbone_lr_scale > 0:
        raise ValueError(f"backbone_lr_scale must be > 0, got {backbone_lr_scale}: 0.1 for a pretrained "
                         "backbone (a tenth of the head's rate), 1.0 for one rate for every weight. To keep "
                         "the backbone unchanged, freeze it (requires_grad=False) instead.")
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if backbone_lr_scale == 1.0:
        groups = [{"name": "all", "params": [p for _, p in trainable], "lr": learning_rate}]
    else:
        backbone = backbone_parameter_names(model)
        groups = [
            {"name": "backbone", "params": [p for n, p in trainable if n in backbone],
             "lr": learning_rate * backbone_lr_scale},
            {"name": "head", "params": [p for n, p in trainable if n not in backbone], "lr": learning_rate},
        ]
    if decay_matrices_only:
        groups = [{**g, "name": f"{g['name']}/{part}", "params": [p for p in g["params"] if (p.dim() >= 2) == decays],
                   "weight_decay": weight_decay if decays else 0.0}
                  for g in groups for part, decays in (("decay", True), ("no_decay", False))]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters (every requires_grad is False): unfreeze "
                         "the head or the backbone (requires_grad_(True), unfreeze_backbone()) before training")
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay,
                             **_fused_on_cuda(p for g in groups for p in g["params"]))


def get_optimizer_and_scheduler(model: nn.Module, learning_rate: float, warmup_steps: int,
                                num_training_steps: int, weight_decay: float = 0.01,
                                backbone_lr_scale: float = 0.1, decay_matrices_only: bool = False):
    """``adamw`` (the lab's optimizer policy; ``backbone_lr_scale`` 0.1 by default: a pretrained
    backbone at a tenth of the head's rate) and a cosine schedule after ``warmup_steps`` of
    linear warm-up, over ``num_training_steps`` optimizer steps.

    Returns:
        ``(optimizer, scheduler)``; step the scheduler after every optimizer step.
    """
    from transformers import get_cosine_schedule_with_warmup

    optimizer = adamw(model, learning_rate, weight_decay=weight_decay, backbone_lr_scale=backbone_lr_scale,
                      decay_matrices_only=decay_matrices_only)
    if not 0 <= warmup_steps <= num_training_steps:
        raise ValueError(f"need 0 ≤ warmup_steps ≤ num_training_steps, got warmup_steps="
                         f"{warmup_steps}, num_training_steps={num_training_steps}")
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup_steps, num_training_steps)
    return optimizer, scheduler


# --------------------------------------------------------------------------- one variant, trained and tested
@dataclass
class Variant:
    """What ``train_variant`` returns: the trained ``model`` (best epoch restored), its
    ``history`` (``fit``'s DataFrame), the training ``seconds``, and with ``test=True`` its test
    ``logits`` ``(N, C)``, ``labels`` ``(N,)`` (on the CPU) and the person of each test item
    (``subjects`` ``(N,)``; ``None`` when the test set has no subject ids)."""

    model: nn.Module
    history: pd.DataFrame
    seconds: float
    logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    subjects: np.ndarray | None = None

    def scores(self, num_classes: int | None = None, intervals: bool = False) -> dict[str, float]:
        """``{"accuracy", "f1_macro"}`` on the test set; with ``intervals``, their 95 % bootstrap
        intervals over the test people too (``metrics.score_intervals``: ``accuracy_low``, …;
        over the test images when the set has no subject ids)."""
        if self.logits is None:
            raise ValueError("this variant was not tested: train_variant(..., test=True) and a 'test' loader")
        pred, classes = self.logits.argmax(1), num_classes or self.logits.shape[1]
        out = {"accuracy": M.accuracy(self.labels, pred), "f1_macro": M.macro_f1(self.labels, pred, classes)}
        return out | (M.score_intervals(self.labels, pred, classes, groups=self.subjects) if intervals else {})


def train_variant(model: nn.Module, loaders: Mapping[str, Iterable], step_fn: StepFn, *, epochs: int,
                  learning_rate: float, weight_decay: float = 0.01, warmup_fraction: float = 0.1,
                  backbone_lr_scale: float = 0.1, seed: int = 0, device: torch.device | str | None = None,
                  test: bool = True, stopping: Stopping = Stopping(), steps: Steps = Steps(),
                  checkpoints: Checkpoints | None = None) -> Variant:
    """Train one variant of an experiment the way notebooks 03-05 compare them, and test it:
    ``get_optimizer_and_scheduler`` (AdamW; cosine schedule after ``warmup_fraction`` of the
    steps of linear warm-up), ``fit`` on ``loaders["train"]`` / ``loaders["val"]`` (quietly, with
    ``stopping``, ``steps`` and ``checkpoints``), then ``predict`` on ``loaders["test"]``.

    The loop over variants stays in the notebook; this is the plumbing of one iteration."""
    device = torch.device(device) if device else next(model.parameters()).device
    model.to(device)
    updates = epochs * len(loaders["train"])
    optimizer, scheduler = get_optimizer_and_scheduler(model, learning_rate, int(warmup_fraction * updates), updates,
                                                       weight_decay, backbone_lr_scale)
    t0 = time.perf_counter()
    history = fit(model, loaders["train"], loaders.get("val"), epochs=epochs, optimizer=optimizer,
                  scheduler=scheduler, step_fn=step_fn, device=device, seed=seed, stopping=stopping, steps=steps,
                  checkpoints=checkpoints, progress=False, verbose=False)
    seconds = time.perf_counter() - t0
    if not test:
        return Variant(model, history, seconds)
    logits, labels = predict(model, loaders["test"], step_fn, device)
    return Variant(model, history, seconds, logits, labels, subjects_of(loaders["test"]))


def subjects_of(loader: Iterable) -> np.ndarray | None:
    """The person of each item of a test ``loader`` (in its order: test loaders do not shuffle);
    ``None`` when its data set keeps no subject ids (``data.splits.people_of``)."""
    from .data.splits import people_of

    dataset = getattr(loader, "dataset", None)
    return None if dataset is None else people_of(dataset)
