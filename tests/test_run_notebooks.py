"""`make lab`'s runner: executes notebooks, reports failures with their cell, keeps going."""
import json
import re

import nbformat
import pytest

from lab_tools.run_notebooks import main


def make_notebook(path, sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


def test_runner_reports_failure_and_runs_the_rest(tmp_path, monkeypatch, capsys):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAB_ROOT", raising=False)
    bad, good = tmp_path / "notebooks" / "01_bad.ipynb", tmp_path / "notebooks" / "02_good.ipynb"
    make_notebook(bad, ["x = 1", "raise ValueError('broken on purpose')", "y = 2"])
    make_notebook(good, ["from lab_utils.config import setup_notebook\nlab = setup_notebook('02_good')",
                         "lab.log_metrics(accuracy=0.75, note='text')"])
    assert main([str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"01_bad +failed", out) and "cell 1: ValueError: broken on purpose" in out
    assert re.search(r"02_good +ok", out) and "accuracy=0.75" in out
    summary = json.loads((tmp_path / "outputs" / "summary.json").read_text())
    assert [r["status"] for r in summary] == ["failed", "ok"]
    executed = nbformat.read(tmp_path / "outputs" / "02_good" / "02_good.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].startswith("Profile: quick")
    # the source notebooks are untouched without --inplace
    assert nbformat.read(good, as_version=4).cells[0].outputs == []


def test_sliced_wait_sees_a_reply_a_long_poll_would_miss():
    """A poll that misses the reply's wake-up returns only at its timeout (nbclient#312);
    sliced into short polls, the wait ends within one slice of the reply's arrival, and it
    still raises Empty at the original deadline when no reply comes."""
    import asyncio
    import time
    from queue import Empty

    from lab_tools.run_notebooks import sliced_wait

    arrives = time.monotonic() + 0.3

    async def missing_poll(timeout=None):          # a reply that arrives mid-poll is not seen
        start = time.monotonic()
        if start >= arrives:
            return {"msg": "execute_reply"}
        await asyncio.sleep(timeout)
        raise Empty

    t = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(missing_poll(timeout=1.5))      # the plain wait: the whole timeout, nothing
    assert time.monotonic() - t >= 1.5
    t = time.monotonic()
    arrives = t + 0.3
    assert asyncio.run(sliced_wait(missing_poll, step=0.1)(timeout=1.5)) == {"msg": "execute_reply"}
    assert 0.3 <= time.monotonic() - t < 0.6
    arrives = float("inf")
    t = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(sliced_wait(missing_poll, step=0.1)(timeout=0.5))
    assert 0.5 <= time.monotonic() - t < 1.0


def test_a_missed_learning_outcome_never_stops_a_run(tmp_path, monkeypatch, capsys):
    """In a normal run a notebook whose outcome check fails prints ⚠, runs to its last cell and
    counts as ok; the summary counts the outcomes reached and lists the missed one. Strict mode
    (a maintainer's hard gate) stops the notebook at that cell instead."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAB_ROOT", raising=False)
    monkeypatch.delenv("LAB_OUTCOME_CHECKS", raising=False)
    path = tmp_path / "notebooks" / "05_fusion.ipynb"
    make_notebook(path, ["from lab_utils.config import setup_notebook\nfrom lab_utils.check import check, check_between\n"
                         "lab = setup_notebook('05_fusion')",
                         "check_between(0.6, 0.2, what='RGB only: macro-F1', outcome=True)\n"
                         "check(False, 'the weights differ between expressions', outcome=True, got='span 0.03', "
                         "means='modality collapse', hint='section 6')",
                         "lab.log_metrics(reached_the_end=1)"])
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"05_fusion +ok .* 1/2 +reached_the_end=1", out)
    assert "⚠ 05_fusion: ✗ the weights differ between expressions (this run: span 0.03)" in out
    executed = nbformat.read(tmp_path / "outputs" / "05_fusion" / "05_fusion.ipynb", as_version=4)
    text = executed.cells[1].outputs[0]["text"]
    assert text.startswith("✓ RGB only: macro-F1: 0.6 (bar: ≥ 0.2)\n⚠ learning outcome not reached: the weights differ")
    assert "what it most likely means: modality collapse" in text

    monkeypatch.setenv("LAB_OUTCOME_CHECKS", "strict")
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"05_fusion +failed", out) and "AssertionError: ✗ the weights differ" in out
