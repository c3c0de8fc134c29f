"""Execute the lab's notebooks top to bottom and summarise them (``make lab``).

    python -m lab_tools.run_notebooks notebooks/*.ipynb            # copies → outputs/<nb>/
    python -m lab_tools.run_notebooks notebooks/*.ipynb --inplace  # refresh stored outputs

Each notebook runs in a fresh kernel from the ``notebooks/`` folder, in the quick profile
unless ``LAB_PROFILE`` says otherwise, offline. A failing notebook is reported with its
cell and error and the others still run. The summary table lists status, wall seconds, how
many of the notebook's learning outcomes this run reached (``outputs/<nb>/outcome_checks.json``;
the ones missed are listed under the table) and the headline metrics each notebook wrote to
``outputs/<nb>/metrics.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_core.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from lab_utils.check import COMPARISON_RECORD, OUTCOME_RECORD
from lab_utils.paths import outputs_dir, repo_root


def _headline(metrics: dict, limit: int = 4) -> str:
    items = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:limit])


def _peak_rss_mb(pid: int | None) -> float | None:
    """Peak resident memory (``VmHWM``) of process ``pid`` in MB, where /proc has it (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, TypeError):
        pass
    return None


def _kernel_pid(client: NotebookClient) -> int | None:
    provisioner = getattr(getattr(client, "km", None), "provisioner", None)
    return getattr(provisioner, "pid", None) or getattr(getattr(provisioner, "process", None), "pid", None)


REPLY_POLL_SECONDS = 0.5


def sliced_wait(get_msg, step: float = REPLY_POLL_SECONDS):
    """Wrap a channel's ``get_msg(timeout=…)`` so that one long wait becomes a loop of waits of
    at most ``step`` seconds up to the same deadline (``Empty`` only once it has passed)."""
    async def wait(timeout: float | None = None, **kwargs: object):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = step if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await ensure_async(get_msg(timeout=min(step, left), **kwargs))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
    return wait


class SlicedReplyClient(NotebookClient):
    """A ``NotebookClient`` that waits for each cell's reply in short slices.

    nbclient waits for a cell's ``execute_reply`` with one poll of the shell channel that
    lasts the whole cell timeout. After a cell that opens ipywidgets comms, that poll
    sometimes does not wake when the reply arrives and returns only when the timeout runs
    out (jupyter/nbclient#312; seen here as exactly 60 s, 300 s or 900 s of an idle kernel).
    With ``sliced_wait`` each new short poll sees a reply that is already there, so such a
    stall lasts at most one slice."""

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        kc.shell_channel.get_msg = sliced_wait(kc.shell_channel.get_msg)
        return kc


WIDGET_CELL_TIMEOUT = 60
"""Seconds allowed to a cell that builds ipywidgets. Under load, nbclient sometimes gets such a
cell's reply only when the cell's timeout runs out, and then carries on as if nothing
happened (seen in rehearsals: exactly 300 s, then 900 s, of an idle kernel, then "ok").
A widget cell does no heavy work, so a short limit caps that stall."""


def _cell_timeout(cell: nbformat.NotebookNode, timeout: int) -> int:
    return min(timeout, WIDGET_CELL_TIMEOUT) if "ipywidgets" in cell.get("source", "") else timeout


def run_notebook(path: Path, inplace: bool, timeout: int) -> dict:
    """Execute one notebook; returns ``{notebook, status, seconds, peak_rss_mb, error, metrics,
    outcome_checks, comparisons}`` (the last two: what ``lab_utils.check`` recorded in this run).

    ``peak_rss_mb`` is the kernel's peak resident memory, read after every cell (the
    kernel's ``VmHWM`` on Linux; ``None`` elsewhere)."""
    name = path.stem
    out_dir = outputs_dir(name)
    metrics_file = out_dir / "metrics.json"
    outcome_file = out_dir / OUTCOME_RECORD
    comparison_file = out_dir / COMPARISON_RECORD
    for stale in (metrics_file, outcome_file, comparison_file):
        if stale.exists():
            stale.unlink()  # only this run's numbers (and reported outcome checks) count
    nb = nbformat.read(path, as_version=4)
    client = SlicedReplyClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            timeout_func=lambda cell: _cell_timeout(cell, timeout),
                            resources={"metadata": {"path": str(path.parent)}})
    peak: dict[str, float | None] = {"mb": None}
    cell_start: dict[str, float] = {}
    slowest: dict[str, float] = {"cell": -1, "seconds": 0.0}

    def start_cell(cell_index: int = -1, **_: object) -> None:
        cell_start["t"] = time.perf_counter()

    def end_cell(cell_index: int = -1, **_: object) -> None:
        peak["mb"] = _peak_rss_mb(_kernel_pid(client)) or peak["mb"]
        took = time.perf_counter() - cell_start.get("t", time.perf_counter())
        if took > slowest["seconds"]:
            slowest.update(cell=cell_index, seconds=round(took, 1))

    client.on_cell_execute = start_cell
    client.on_cell_executed = end_cell
    start = time.perf_counter()
    status, error = "ok", ""
    try:
        client.execute()
    except CellTimeoutError as err:
        status, error = "timeout", str(err).strip().splitlines()[0]
    except CellExecutionError as err:
        cell = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        status = "failed"
        error = f"cell {cell}: {err.ename}: {err.evalue}" if cell is not None else f"{err.ename}: {err.evalue}"
    seconds = time.perf_counter() - start
    nbformat.write(nb, path if (inplace and status == "ok") else out_dir / path.name)
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    outcomes = json.loads(outcome_file.read_text()) if outcome_file.exists() else []
    comparisons = json.loads(comparison_file.read_text()) if comparison_file.exists() else []
    return {"notebook": name, "status": status, "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak["mb"]) if peak["mb"] else None, "slowest_cell": slowest if slowest["cell"] >= 0 else None,
            "error": error, "metrics": metrics, "outcome_checks": outcomes, "comparisons": comparisons}


def _outcomes(result: dict) -> str:
    """``"12/12"``: the learning outcomes this run reached, of those it checked."""
    checks = result.get("outcome_checks") or []
    return f"{sum(c['held'] for c in checks)}/{len(checks)}" if checks else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--inplace", action="store_true", help="write outputs back into the notebooks")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args(argv)

    os.environ.setdefault("LAB_PROFILE", "quick")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ["LAB_ROOT"] = str(repo_root())

    results = []
    for path in args.notebooks:
        print(f"▶ {path.name} …", flush=True)
        result = run_notebook(path.resolve(), args.inplace, args.timeout)
        peak = f", peak RSS {result['peak_rss_mb'] / 1024:.2f} GB" if result["peak_rss_mb"] else ""
        if result.get("slowest_cell"):
            peak += f", slowest cell {result['slowest_cell']['cell']} ({result['slowest_cell']['seconds']:.1f} s)"
        print(f"  {result['status']} in {result['seconds']:.1f} s{peak}" +
              (f" — {result['error']}" if result["error"] else ""), flush=True)
        results.append(result)

    width = max(len(r["notebook"]) for r in results)
    print(f"\nSummary (profile {os.environ['LAB_PROFILE']}):")
    print(f"{'notebook':<{width}}  {'status':<8} {'wall s':>7} {'peak GB':>8} {'outcomes':>9}  headline metrics")
    for r in results:
        detail = r["error"] if r["error"] else _headline(r["metrics"])
        peak_gb = f"{r['peak_rss_mb'] / 1024:.2f}" if r["peak_rss_mb"] else "?"
        print(f"{r['notebook']:<{width}}  {r['status']:<8} {r['seconds']:>7.1f} {peak_gb:>8} {_outcomes(r):>9}  {detail}")
    total = sum(r["seconds"] for r in results)
    print(f"{'total':<{width}}  {'':<8} {total:>7.1f}")
    missed = [(r["notebook"], c["detail"]) for r in results for c in r.get("outcome_checks") or [] if not c["held"]]
    if missed:
        print("\nLearning outcomes this run did not reach (the notebook explains each at its ⚠ line; results "
              "move with the seed and the machine — see benchmarks/README.md):")
        for notebook, detail in missed:
            print(f"  ⚠ {notebook}: {detail}")
    (outputs_dir() / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
