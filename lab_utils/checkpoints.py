"""Checkpoint files: one safetensors file per checkpoint, holding the weights, the optimizer
and scheduler state and any JSON-able extras (``state``), written atomically (a failure
leaves the previous file intact).

* ``save_checkpoint(path, model, optimizer=None, scheduler=None, **state)``;
* ``load_checkpoint(path, model, optimizer=None, scheduler=None)`` → the ``state`` dict;
  a corrupt or truncated file, or one saved from another architecture, raises
  ``CheckpointError`` with what was found and what to do, and is never modified.

``lab_utils.training.fit`` writes its best/last checkpoints through these
(``training.Checkpointer``); notebook 02's image encoders too (``recipes.clip``).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, truncated, or from another architecture."""


_FORMAT = "lab_utils.checkpoint/1"


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write via a temporary file in the same folder, then rename over ``path``: a crash
    midway leaves the previous file untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(path: str | os.PathLike, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any | None = None,
                    **state: Any) -> Path:
    """Save weights (+ optimizer, scheduler, JSON-able ``state``) to one safetensors file.

    The write is atomic: a failure leaves any previous checkpoint at ``path`` intact.
    """
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"format": _FORMAT, "state": json.dumps(state, default=_json_default)}
    if optimizer is not None:
        osd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, pstate in osd["state"].items():
            for key, value in pstate.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{pid}.{key}"] = value.detach().cpu().contiguous().clone()
                else:
                    scalars.setdefault(str(pid), {})[key] = value
        meta["optimizer"] = json.dumps({"param_groups": osd["param_groups"], "scalars": scalars})
    if scheduler is not None:
        meta["scheduler"] = json.dumps(scheduler.state_dict(), default=_json_default)
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (torch.Tensor, np.generic)):
        return value.tolist() if isinstance(value, torch.Tensor) else value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"checkpoint state must be JSON-able, got {type(value).__name__}")


def _check_architecture(path: Path, model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[0]})")
        raise CheckpointError(
            f"{path} was saved from a different architecture than {type(model).__name__}: "
            + "; ".join(parts) + ". Build the model with the settings it was trained with, "
            "or delete/rename the file to train afresh (it was not modified).")


def load_checkpoint(path: str | os.PathLike, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any | None = None) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` into ``model`` (and optimizer,
    scheduler); returns the extra ``state``. Raises ``CheckpointError`` naming the file when
    it is corrupt/truncated or was saved from a different architecture."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path.resolve()}. Train first (the notebook "
                                "that writes it says so) or check the path.")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is corrupt or truncated and cannot be read ({err}). "
                              "Delete it to retrain, or restore an earlier copy.") from None
    if meta.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a lab checkpoint "
                              f"(format {meta.get('format')!r}, expected {_FORMAT!r}).")
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _check_architecture(path, model, weights)
    model.load_state_dict(weights)
    if optimizer is not None:
        if "optimizer" not in meta:
            raise CheckpointError(f"{path} holds no optimizer state (it was saved for inference).")
        saved = json.loads(meta["optimizer"])
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value
        for pid, values in saved["scalars"].items():
            state.setdefault(int(pid), {}).update(values)
        groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in saved["param_groups"]]
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(json.loads(meta["scheduler"]))
    return json.loads(meta.get("state", "{}"))
