"""Notebook checks: assert something about a result and print ONE stable line.

A checked notebook cell must print the same text on every machine, so these helpers
print the verdict (and exact facts such as shapes), never raw floating-point values
that change in their last bits between CPUs. On failure they raise ``AssertionError``
with a message a student can act on.

>>> check_shape(torch.zeros(1, 196, 768), (1, 196, 768), "patch embeddings")
✓ patch embeddings: shape (1, 196, 768)

Two kinds of check
------------------
* **structural** (the default): shapes, parameter counts, frozen weights, a hand-written
  formula against the library. These hold for any weights and always fail loudly.
* **learning outcomes** (``outcome=True``): "a metric above a bar". They hold for the
  weights and data the notebook was written for. With ``LAB_OUTCOME_CHECKS=report``
  (set by ``make rehearsal``, whose stand-in models have random weights, and by
  ``benchmarks/robustness.py``) a failed outcome check prints a ``⚠`` line instead of
  stopping the notebook, and every outcome check, held or not, is recorded in
  ``outputs/<notebook>/outcome_checks.json`` as ``{"claim", "held", "detail"}``: the
  benchmark counts over seeds how often each claim holds. Unset (or ``fail``), a failed
  outcome check raises like any other check.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import torch

OUTCOME_MODES = ("fail", "report")


def outcome_mode() -> str:
    """``"fail"`` (default) or ``"report"``, from ``LAB_OUTCOME_CHECKS``."""
    mode = os.environ.get("LAB_OUTCOME_CHECKS", "").strip().lower() or "fail"
    if mode not in OUTCOME_MODES:
        raise ValueError(f"LAB_OUTCOME_CHECKS={mode!r} is not a mode. Allowed: "
                         f"{', '.join(OUTCOME_MODES)} (report: failed learning-outcome checks "
                         "print a warning instead of stopping; unset it for normal runs).")
    return mode


def _record_outcome(claim: str, held: bool, detail: str) -> None:
    """Append one outcome check to ``outputs/<notebook>/outcome_checks.json`` (report mode)."""
    from .paths import outputs_dir

    path = outputs_dir(os.environ.get("LAB_NOTEBOOK") or None) / "outcome_checks.json"
    record = json.loads(path.read_text()) if path.exists() else []
    record.append({"claim": claim, "held": bool(held), "detail": detail})
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def _outcome(held: bool, claim: str, failure: str, hint: str | None, outcome: bool) -> bool:
    """Settle one check: ``True`` when it held. A failed structural check (or outcome check
    outside report mode) raises; in report mode every outcome check is recorded and a failed
    one prints ``⚠`` instead of raising."""
    if outcome and outcome_mode() == "report":
        _record_outcome(claim, held, f"✓ {claim}" if held else f"✗ {failure}")
        if not held:
            print(f"⚠ ✗ {failure} (learning outcome, reported: LAB_OUTCOME_CHECKS=report)")
        return held
    if not held:
        _fail(failure, hint)
    return True


def _fail(message: str, hint: str | None) -> None:
    """Raise ``AssertionError`` with the message and the next step."""
    raise AssertionError(f"✗ {message}" + (f"\n  → {hint}" if hint else ""))


def check(condition: bool, message: str, hint: str | None = None, *, outcome: bool = False) -> None:
    """Print ``✓ message`` when ``condition`` holds, else raise with ``message`` and ``hint``.

    ``outcome=True`` marks a learning-outcome check (see the module docstring)."""
    if _outcome(bool(condition), message, message, hint, outcome):
        print(f"✓ {message}")


def check_shape(tensor: torch.Tensor, shape: Sequence[int], what: str = "tensor") -> None:
    """Check ``tuple(tensor.shape) == tuple(shape)``; prints ``✓ what: shape (…)``."""
    got, want = tuple(tensor.shape), tuple(shape)
    if got != want:
        _fail(f"{what}: expected shape {want}, got {got}",
              "check the reshape/permute just before this cell")
    print(f"✓ {what}: shape {got}")


def check_close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, what: str = "values") -> None:
    """Check ``max|a - b| < atol``; prints the bound, not the (machine-dependent) difference."""
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    if a.shape != b.shape:
        _fail(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}", None)
    diff = (a - b).abs().max().item() if a.numel() else 0.0
    if not diff < atol:
        _fail(f"{what}: max |difference| = {diff:.3g}, allowed < {atol:g}",
              "the two computations disagree: compare them step by step")
    print(f"✓ {what}: max |difference| < {atol:g}")


def check_between(value: float, low: float | None = None, high: float | None = None,
                  what: str = "value", hint: str | None = None, *, outcome: bool = False) -> None:
    """Check ``low <= value <= high`` (either bound optional); prints the bound that holds.

    ``outcome=True`` marks a learning-outcome check (see the module docstring)."""
    value = float(value)
    ok = (low is None or value >= low) and (high is None or value <= high)
    if low is not None and high is not None:
        bound = f"in [{low:g}, {high:g}]"
    elif low is not None:
        bound = f"≥ {low:g}"
    else:
        bound = f"≤ {high:g}"
    if _outcome(ok, f"{what} {bound}", f"{what} = {value:.4g}, expected {bound}", hint, outcome):
        print(f"✓ {what} {bound}")
