"""Notebook check helpers print one stable line or raise a readable AssertionError."""
import json
from pathlib import Path

import pytest
import torch

from lab_utils.check import check, check_between, check_close, check_shape


def test_check_prints_and_raises(capsys):
    check(True, "196 patches of 16×16×3")
    assert capsys.readouterr().out == "✓ 196 patches of 16×16×3\n"
    with pytest.raises(AssertionError, match="✗ wrong\n  → fix it"):
        check(False, "wrong", hint="fix it")


def test_check_shape(capsys):
    check_shape(torch.zeros(1, 197, 64), (1, 197, 64), "tokens")
    assert capsys.readouterr().out == "✓ tokens: shape (1, 197, 64)\n"
    with pytest.raises(AssertionError, match=r"expected shape \(1, 196, 64\), got \(1, 197, 64\)"):
        check_shape(torch.zeros(1, 197, 64), (1, 196, 64), "tokens")


def test_check_close_prints_bound_not_difference(capsys):
    a = torch.randn(10)
    check_close(a, a + 1e-7, atol=1e-4, what="outputs")
    assert capsys.readouterr().out == "✓ outputs: max |difference| < 0.0001\n"
    with pytest.raises(AssertionError, match=r"max \|difference\| = 0.5, allowed < 0.0001"):
        check_close(a, a + 0.5, atol=1e-4, what="outputs")


def test_check_between(capsys):
    check_between(0.83, 0.8, None, "R@10")
    check_between(0.5, 0.0, 1.0, "acc")
    check_between(3.0, None, 5.0, "loss")
    check_between(2.0794, 1.0397, what="untrained loss (random guessing: log 8 ≈ 2.08)")
    assert capsys.readouterr().out.splitlines() == [
        "✓ R@10: 0.83 (bar: ≥ 0.8)", "✓ acc: 0.5 (bar: in [0, 1])", "✓ loss: 3 (bar: ≤ 5)",
        "✓ untrained loss (random guessing: log 8 ≈ 2.08): 2.08 (bar: ≥ 1.04)"]   # value, then the bar
    with pytest.raises(AssertionError, match=r"✗ R@10 ≥ 0.8 \(this run: R@10 = 0.3\)"):
        check_between(0.3, 0.8, what="R@10")


def test_a_held_outcome_prints_what_this_run_measured(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("LAB_OUTCOME_CHECKS", raising=False)
    check(True, "fusion beats the better single modality by ≥ 5 points", outcome=True, got=".71 vs .52")
    check(True, "the two weights of every face sum to 1", got="ignored: structural checks print the claim")
    assert capsys.readouterr().out.splitlines() == [
        "✓ fusion beats the better single modality by ≥ 5 points — this run: .71 vs .52",
        "✓ the two weights of every face sum to 1"]
    assert _record(tmp_path)[0]["detail"] == "✓ fusion beats the better single modality by ≥ 5 points"


def _sanitize(text):
    """Apply tests/nbval_sanitize.cfg exactly as nbval does (its own parser, then re.sub in order)."""
    import re
    from nbval.plugin import get_sanitize_patterns
    for regex, replace in get_sanitize_patterns((Path(__file__).parent / "nbval_sanitize.cfg").read_text()):
        text = re.sub(regex, replace, text)
    return text


def test_nbval_masks_the_measured_value_and_keeps_the_verdict(capsys, monkeypatch, tmp_path):
    """Another CPU computes 0.412 where this one computed 0.414: nbval must not care. A ⚠ where ✓
    was stored, another bar, or another claim must still differ."""
    monkeypatch.delenv("LAB_OUTCOME_CHECKS", raising=False)
    runs = []
    for value, got in ((0.414, "0.71 vs 0.52"), (0.4123, "0.69 vs 0.55"), (0.1, "0.5 vs 0.52")):
        check_between(value, 2 / 7, what="zero-shot accuracy (2 × chance)", outcome=True)
        check(value > 0.2, "fusion beats the better single modality", outcome=True, got=got)
        runs.append(_sanitize(capsys.readouterr().out))
    assert runs[0] == runs[1]
    assert "0.414" not in runs[0] and "bar: ≥ 0.286" in runs[0] and "this run: VALUE" in runs[0]
    assert runs[2] != runs[0] and "⚠" in runs[2]
    check_between(0.414, 0.3, what="zero-shot accuracy (2 × chance)")
    assert _sanitize(capsys.readouterr().out) != runs[0].splitlines()[0] + "\n"


def test_a_comparison_is_worded_by_its_interval_and_nbval_compares_only_what_is_stable(capsys, tmp_path):
    """Two machines that word one comparison differently (the interval touched 0 on one) give the
    same sanitised line; another pair of models, metric or test set does not."""
    from lab_utils.check import report_comparison
    from lab_utils.metrics import PairedDifference

    lines = []
    for d, lo, hi in ((0.052, 0.011, 0.090), (-0.004, -0.031, 0.024)):
        report_comparison(PairedDifference("late attention", "late prediction", "f1_macro", d, lo, hi, 37))
        lines.append(capsys.readouterr().out)
    assert lines[0] == ("⇄ late attention − late prediction, test macro-F1: +5.2 points (95% CI +1.1 to +9.0 over "
                        "37 test people): this test set tells them apart, late attention ahead\n")
    assert lines[1].endswith("cannot tell them apart\n")
    assert _sanitize(lines[0]) == _sanitize(lines[1]) == (
        "⇄ late attention − late prediction, test macro-F1: VALUE (95% CI over 37 test people): VERDICT\n")
    report_comparison(PairedDifference("late attention", "late prediction", "f1_macro", 0.05, 0.01, 0.09, 36))
    report_comparison(PairedDifference("late concat", "late prediction", "accuracy", 0.05, 0.01, 0.09, 37))
    other = _sanitize(capsys.readouterr().out).splitlines()
    assert other[0] != _sanitize(lines[0]).strip() and other[1] != _sanitize(lines[0]).strip()
    record = json.loads((tmp_path / "outputs" / "test" / "comparisons.json").read_text())
    assert [r["verdict"] for r in record] == ["a", "tie", "a", "a"] and record[0]["n"] == 37


def _record(tmp_path):
    return json.loads((tmp_path / "outputs" / "test" / "outcome_checks.json").read_text())


def test_a_failed_outcome_warns_and_the_notebook_carries_on(capsys, monkeypatch, tmp_path):
    """A normal run (no variable set): a failed learning outcome prints a ⚠ block that says what was
    expected, what this run got, what it means and what to look at — and returns."""
    monkeypatch.delenv("LAB_OUTCOME_CHECKS", raising=False)
    check_between(0.3, 0.8, what="R@10", outcome=True, means="the encoder learnt little",
                  hint="the loss curve of section 4")
    check(False, "the weights differ between expressions", outcome=True, got="span 0.03",
          means="modality collapse", hint="section 6")
    reached = "this line runs: the notebook carried on"
    print(reached)
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "⚠ learning outcome not reached: R@10 ≥ 0.8",
        "  this run: R@10 = 0.3",
        "  what it most likely means: the encoder learnt little",
        "  what to look at: the loss curve of section 4",
        "  The notebook carries on; read the figures below with this in mind. "
        "(LAB_OUTCOME_CHECKS=strict stops here instead.)",
        "⚠ learning outcome not reached: the weights differ between expressions",
        "  this run: span 0.03",
        "  what it most likely means: modality collapse",
        "  what to look at: section 6",
        "  The notebook carries on; read the figures below with this in mind. "
        "(LAB_OUTCOME_CHECKS=strict stops here instead.)",
        reached]
    assert _record(tmp_path) == [
        {"claim": "R@10 ≥ 0.8", "held": False, "detail": "✗ R@10 ≥ 0.8 (this run: R@10 = 0.3)"},
        {"claim": "the weights differ between expressions", "held": False,
         "detail": "✗ the weights differ between expressions (this run: span 0.03)"}]
    # without a meaning, the warning still says what a miss usually means
    check(False, "loss fell", outcome=True)
    assert "what it most likely means: this run learnt less than the notebook expects" in capsys.readouterr().out


def test_structural_checks_raise_in_every_mode(monkeypatch):
    for mode in ("", "warn", "strict"):
        monkeypatch.setenv("LAB_OUTCOME_CHECKS", mode)
        with pytest.raises(AssertionError, match="the two weights of every face sum to 1"):
            check(False, "the two weights of every face sum to 1")
        with pytest.raises(AssertionError, match="expected shape"):
            check_shape(torch.zeros(2), (3,))


def test_strict_mode_raises_on_a_failed_outcome(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_OUTCOME_CHECKS", "strict")
    with pytest.raises(AssertionError, match=r"✗ R@10 ≥ 0.8 \(this run: R@10 = 0.3\)\n  → the encoder learnt "
                                             r"little; the loss curve"):
        check_between(0.3, 0.8, what="R@10", outcome=True, means="the encoder learnt little", hint="the loss curve")
    check_between(0.9, 0.8, what="R@10", outcome=True)
    assert capsys.readouterr().out == "✓ R@10: 0.9 (bar: ≥ 0.8)\n"
    assert [r["held"] for r in _record(tmp_path)] == [False, True]   # recorded before raising


def test_every_outcome_is_recorded_and_setup_starts_the_record_anew(capsys, monkeypatch, tmp_path):
    """Held or not, each outcome check is recorded under the same claim (the benchmark counts them);
    a new run of the notebook (setup_notebook) starts a new record."""
    from lab_utils.config import setup_notebook

    monkeypatch.delenv("LAB_OUTCOME_CHECKS", raising=False)
    check_between(0.9, 0.8, what="R@10", outcome=True)
    check_between(0.7, 0.8, what="R@10", outcome=True)
    assert [(r["claim"], r["held"]) for r in _record(tmp_path)] == [("R@10 ≥ 0.8", True), ("R@10 ≥ 0.8", False)]
    threads = torch.get_num_threads()
    try:
        setup_notebook("test")
    finally:
        torch.set_num_threads(threads)
    assert not (tmp_path / "outputs" / "test" / "outcome_checks.json").exists()


def test_outcome_mode_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv("LAB_OUTCOME_CHECKS", "report")
    with pytest.raises(ValueError, match="'report' is not a mode. Allowed: warn, strict"):
        check(False, "x", outcome=True)
