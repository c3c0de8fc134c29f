"""Notebook checks: assert something about a result and print ONE stable line.

A check line says what was measured, the value this run computed, and the bar with its
meaning — ``✓ untrained loss (random guessing: log 8 ≈ 2.08): 2.07 (bar: ≥ 1.04)`` — so a
student reads the number, not only the verdict. The computed value moves in its last digits
between CPUs; nbval masks exactly that part (``: <number> (bar:`` and ``— this run: …``,
``tests/nbval_sanitize.cfg``) and still compares the verdict and everything else.

>>> check_shape(torch.zeros(1, 196, 768), (1, 196, 768), "patch embeddings")
✓ patch embeddings: shape (1, 196, 768)

Two kinds of check
------------------
* **structural** (the default): shapes, parameter counts, frozen weights, sums to one, a
  hand-written formula against the library. These hold for any weights and on any machine,
  so a failure is a bug: they raise ``AssertionError`` with a message a student can act on.
* **learning outcomes** (``outcome=True``): "a metric above a bar". They hold for the
  weights, data and budget the notebook was written for, on most seeds and machines — and a
  small run can still miss one (another CPU rounds differently, training amplifies it). A
  student's run never stops on one. What a failed outcome check does depends on
  ``LAB_OUTCOME_CHECKS``:

  - unset or ``warn`` (every normal run): a ``⚠`` block says what was expected, what this run
    got, what it most likely means and what to look at, and the notebook carries on;
  - ``strict``: it raises like a structural check — a hard gate for maintainers
    (``make notebooks``: stored outputs never hold a ⚠) and whoever wants one.

  Every outcome check, held or not, is also recorded in
  ``outputs/<notebook>/outcome_checks.json`` as ``{"claim", "held", "detail"}`` (the file is
  started anew by ``setup_notebook``): ``make lab`` counts them in its summary,
  ``make rehearsal`` lists the ones that failed, and ``benchmarks/robustness.py`` counts over
  seeds × machines how often each claim holds.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Sequence

import torch

from .paths import current_notebook, outputs_dir

if TYPE_CHECKING:
    from .metrics import PairedDifference

OUTCOME_MODES = ("warn", "strict")
OUTCOME_RECORD = "outcome_checks.json"
COMPARISON_RECORD = "comparisons.json"


def outcome_mode() -> str:
    """``"warn"`` (default) or ``"strict"``, from ``LAB_OUTCOME_CHECKS``."""
    mode = os.environ.get("LAB_OUTCOME_CHECKS", "").strip().lower() or "warn"
    if mode not in OUTCOME_MODES:
        raise ValueError(f"LAB_OUTCOME_CHECKS={mode!r} is not a mode. Allowed: {', '.join(OUTCOME_MODES)} "
                         "(warn, the default: a learning outcome that was not reached prints ⚠ and the "
                         "notebook carries on; strict: it stops the notebook). Unset it for a normal run.")
    return mode


def _record_path(name: str = OUTCOME_RECORD):
    return outputs_dir(current_notebook()) / name


def reset_outcome_record() -> None:
    """Start the notebook's outcome and comparison records anew (``setup_notebook`` calls it: a new run)."""
    for name in (OUTCOME_RECORD, COMPARISON_RECORD):
        _record_path(name).unlink(missing_ok=True)


def _append_record(name: str, entry: dict) -> None:
    path = _record_path(name)
    record = json.loads(path.read_text()) if path.exists() else []
    record.append(entry)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def _record_outcome(claim: str, held: bool, detail: str) -> None:
    """Append one outcome check to ``outputs/<notebook>/outcome_checks.json``."""
    _append_record(OUTCOME_RECORD, {"claim": claim, "held": bool(held), "detail": detail})


def outcome_warning(claim: str, got: str | None, means: str | None, hint: str | None) -> str:
    """The ``⚠`` block a failed learning-outcome check prints (warn mode)."""
    lines = [f"⚠ learning outcome not reached: {claim}"]
    if got:
        lines.append(f"  this run: {got}")
    lines.append("  what it most likely means: " + (means or "this run learnt less than the notebook expects; "
                 "small runs vary with the seed and with the machine's rounding"))
    if hint:
        lines.append(f"  what to look at: {hint}")
    lines.append("  The notebook carries on; read the figures below with this in mind. "
                 "(LAB_OUTCOME_CHECKS=strict stops here instead.)")
    return "\n".join(lines)


def _settle(held: bool, claim: str, got: str | None, hint: str | None, means: str | None,
            outcome: bool, shown: str | None = None) -> None:
    """Print ``✓ claim`` (or ``shown``, the held line a helper words itself) when it held.
    Otherwise a structural check (or an outcome check in strict mode) raises; an outcome check in
    warn mode prints the ``⚠`` block and returns."""
    failure = f"{claim} (this run: {got})" if got else claim
    if outcome:
        mode = outcome_mode()
        _record_outcome(claim, held, f"✓ {claim}" if held else f"✗ {failure}")
        if not held and mode == "warn":
            print(outcome_warning(claim, got, means, hint))
            return
        if not held:
            _fail(failure, "; ".join(filter(None, (means, hint))) or None)
    elif not held:
        _fail(failure, hint)
    print(shown or f"✓ {claim}" + (f" — this run: {got}" if got and outcome else ""))


def _fail(message: str, hint: str | None) -> None:
    """Raise ``AssertionError`` with the message and the next step."""
    raise AssertionError(f"✗ {message}" + (f"\n  → {hint}" if hint else ""))


def check(condition: bool, message: str, hint: str | None = None, *, outcome: bool = False,
          got: str | None = None, means: str | None = None) -> None:
    """Print ``✓ message`` when ``condition`` holds; otherwise fail with ``message`` and ``hint``.

    ``outcome=True`` marks a learning-outcome check (see the module docstring): ``got`` says
    what this run measured, ``means`` what a miss most likely means, ``hint`` what to look at."""
    _settle(bool(condition), message, got, hint, means, outcome)


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
                  what: str = "value", hint: str | None = None, *, outcome: bool = False,
                  means: str | None = None) -> None:
    """Check ``low <= value <= high`` (either bound optional); prints the bound that holds.

    ``outcome=True`` marks a learning-outcome check (see the module docstring); ``means`` says
    what a miss most likely means, ``hint`` what to look at."""
    value = float(value)
    ok = (low is None or value >= low) and (high is None or value <= high)
    if low is not None and high is not None:
        bound = f"in [{low:.3g}, {high:.3g}]"
    elif low is not None:
        bound = f"≥ {low:.3g}"
    else:
        bound = f"≤ {high:.3g}"
    _settle(ok, f"{what} {bound}", f"{what} = {value:.3g}", hint, means, outcome,
            shown=f"✓ {what}: {value:.3g} (bar: {bound})")


def report_comparison(result: "PairedDifference", scale: float = 100.0, units: str = "points") -> "PairedDifference":
    """Print one comparison as the run words it, ``⇄ A − B, test macro-F1: +5.2 points (95 % CI
    +1.1 to +9.0 over 37 test people): this test set tells them apart, A ahead``, record it in
    ``outputs/<notebook>/comparisons.json`` (``benchmarks/robustness.py`` counts how often each
    verdict held over seeds × machines) and return it.

    The sentence follows the interval, so it cannot contradict the run; where an interval
    touches 0 another machine can word it the other way, so nbval compares the line only up to
    the people it was measured over (``tests/nbval_sanitize.cfg``)."""
    _append_record(COMPARISON_RECORD, {"a": result.a, "b": result.b, "metric": result.metric,
                                       "difference": result.difference, "low": result.low, "high": result.high,
                                       "verdict": result.verdict, "n": result.n_people, "unit": result.unit})
    print(f"⇄ {result.sentence(scale, units)}")
    return result


def compare(y_true, pred_a, pred_b, names: tuple[str, str], groups=None, metric: str = "f1_macro",
            num_classes: int | None = None, **kwargs) -> "PairedDifference":
    """``metrics.paired_difference`` of two models on one test set, printed and recorded by
    ``report_comparison``: the one way a notebook says "A against B"."""
    from .metrics import paired_difference

    return report_comparison(paired_difference(y_true, pred_a, pred_b, groups, metric, num_classes, names, **kwargs))
