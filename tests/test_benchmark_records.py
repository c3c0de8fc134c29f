"""What a run records for the robustness benchmark, and how the benchmark counts it: every ⇄
comparison a notebook prints reaches the runner's row, and the benchmark says how often each
verdict came out over seeds × machines (benchmarks/robustness.py)."""
import importlib.util
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from lab_tools.run_notebooks import run_notebook

ROOT = Path(__file__).resolve().parents[1]


def _robustness():
    spec = importlib.util.spec_from_file_location("robustness", ROOT / "benchmarks" / "robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_printed_comparison_reaches_the_runners_row(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAB_ROOT", str(tmp_path))
    path = tmp_path / "notebooks" / "05_fusion.ipynb"
    nb = new_notebook(cells=[new_code_cell(
        "from lab_utils.config import setup_notebook\nfrom lab_utils.check import compare\n"
        "lab = setup_notebook('05_fusion')\n"
        "labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]\n"
        "compare(labels, labels, [1, 1, 2, 0, 1, 0, 0, 1, 2, 2, 1, 2], names=('late attention', 'RGB only'),\n"
        "        groups=[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3], num_classes=3)")])
    nbformat.write(nb, path)
    row = run_notebook(path, inplace=False, timeout=120)
    assert row["status"] == "ok", row["error"]
    (c,) = row["comparisons"]
    assert (c["a"], c["b"], c["metric"], c["n"], c["unit"]) == ("late attention", "RGB only", "f1_macro", 4, "people")
    assert c["difference"] > 0 and c["verdict"] in ("a", "tie")


def test_the_benchmark_counts_each_verdict_per_machine():
    robustness = _robustness()
    def run(machine, verdict, d):
        return {"machine": machine, "comparisons": [{"a": "late attention", "b": "late prediction",
                                                     "metric": "f1_macro", "verdict": verdict, "difference": d}]}
    runs = [run("default", "a", 0.05), run("default", "tie", 0.01), run("avx2-1t", "tie", -0.01)]
    header, rule, row = robustness.comparison_table(runs, ["default", "avx2-1t"])
    assert row == "| late attention − late prediction | f1_macro | 1/3 | 2/3 | 0/3 | 1.7 ± 3.1 | 1/1/0 | 0/1/0 |"
    assert robustness.comparison_table([{"machine": "default"}], ["default"]) == []
    made = robustness.provenance()
    assert len(made["commit"].split("+")[0]) == 12 and len(made["measured"]) == 10
