"""`make lab`'s runner: executes notebooks, reports failures with their cell, keeps going."""
import json
import re

import nbformat
import pytest

from lab_utils.run_notebooks import main


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

    from lab_utils.run_notebooks import sliced_wait

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
