"""Notebook check helpers print one stable line or raise a readable AssertionError."""
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
    assert capsys.readouterr().out.splitlines() == ["✓ R@10 ≥ 0.8", "✓ acc in [0, 1]", "✓ loss ≤ 5"]
    with pytest.raises(AssertionError, match="R@10 = 0.3, expected ≥ 0.8"):
        check_between(0.3, 0.8, what="R@10")


def test_outcome_checks_fail_by_default_and_report_when_asked(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("LAB_OUTCOME_CHECKS", raising=False)
    with pytest.raises(AssertionError, match="R@10 = 0.3, expected ≥ 0.8"):
        check_between(0.3, 0.8, what="R@10", outcome=True)
    monkeypatch.setenv("LAB_OUTCOME_CHECKS", "report")
    check_between(0.3, 0.8, what="R@10", outcome=True)
    check(False, "fusion beats RGB", outcome=True)
    assert capsys.readouterr().out.splitlines() == [
        "⚠ ✗ R@10 = 0.3, expected ≥ 0.8 (learning outcome, reported: LAB_OUTCOME_CHECKS=report)",
        "⚠ ✗ fusion beats RGB (learning outcome, reported: LAB_OUTCOME_CHECKS=report)"]
    import json
    record = json.loads((tmp_path / "outputs" / "test" / "outcome_checks.json").read_text())
    assert record == [{"claim": "R@10 ≥ 0.8", "held": False, "detail": "✗ R@10 = 0.3, expected ≥ 0.8"},
                      {"claim": "fusion beats RGB", "held": False, "detail": "✗ fusion beats RGB"}]
    # structural checks still fail in report mode; passing outcome checks print as usual and
    # are recorded too, under the same claim as when they fail (the benchmark counts them)
    with pytest.raises(AssertionError):
        check(False, "shape")
    check_between(0.9, 0.8, what="R@10", outcome=True)
    assert capsys.readouterr().out == "✓ R@10 ≥ 0.8\n"
    record = json.loads((tmp_path / "outputs" / "test" / "outcome_checks.json").read_text())
    assert record[-1] == {"claim": "R@10 ≥ 0.8", "held": True, "detail": "✓ R@10 ≥ 0.8"}
    assert [r["claim"] for r in record].count("R@10 ≥ 0.8") == 2


def test_outcome_mode_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv("LAB_OUTCOME_CHECKS", "warn")
    with pytest.raises(ValueError, match="'warn' is not a mode. Allowed: fail, report"):
        check(False, "x", outcome=True)
