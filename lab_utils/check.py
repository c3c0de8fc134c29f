"""Notebook checks: assert something about a result and print ONE stable line.

A checked notebook cell must print the same text on every machine, so these helpers
print the verdict (and exact facts such as shapes), never raw floating-point values
that change in their last bits between CPUs. On failure they raise ``AssertionError``
with a message a student can act on.

>>> check_shape(torch.zeros(1, 196, 768), (1, 196, 768), "patch embeddings")
✓ patch embeddings: shape (1, 196, 768)
"""
from __future__ import annotations

from typing import Sequence

import torch


def _fail(message: str, hint: str | None) -> None:
    raise AssertionError(f"✗ {message}" + (f"\n  → {hint}" if hint else ""))


def check(condition: bool, message: str, hint: str | None = None) -> None:
    """Print ``✓ message`` when ``condition`` holds, else raise with ``message`` and ``hint``."""
    if not bool(condition):
        _fail(message, hint)
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
                  what: str = "value", hint: str | None = None) -> None:
    """Check ``low <= value <= high`` (either bound optional); prints the bound that holds."""
    value = float(value)
    ok = (low is None or value >= low) and (high is None or value <= high)
    if low is not None and high is not None:
        bound = f"in [{low:g}, {high:g}]"
    elif low is not None:
        bound = f"≥ {low:g}"
    else:
        bound = f"≤ {high:g}"
    if not ok:
        _fail(f"{what} = {value:.4g}, expected {bound}", hint)
    print(f"✓ {what} {bound}")
