"""Do the notebooks' conclusions hold on another seed? Run them and count.

Each notebook draws conclusions — in its checks and in its text — from one seeded run of the
quick profile. A student's run uses the same seed on another CPU (other rounding), an
instructor may ask for another seed, and both must reach the same conclusions. This benchmark
executes the core notebooks (03, 04, 05) top to bottom in the quick profile for several seeds
(the config's ``seed`` key: it seeds the data — which faces, which subjects are held out — the
initialisation and the shuffling) and reports, for every claim, on how many seeds it held, and
every headline metric's mean ± std.

Claims come from two places:

* the notebook's **outcome checks** (``check(..., outcome=True)``): run with
  ``LAB_OUTCOME_CHECKS=report``, every outcome check is recorded held or not
  (``outputs/<notebook>/outcome_checks.json``) instead of stopping the run;
* the notebook's **text**: :data:`TEXT_CLAIMS` restates each sentence that states a result as
  a test on the metrics the notebook logs (``outputs/<notebook>/metrics.json``).

A claim must hold on ≥ 90 % of the seeds (:data:`BAR`); the table marks the ones that do not
with ✗. Rows marked "measured" are comparisons the text does *not* claim (a reader asks them:
which modality is better alone?); they are shown, never flagged.

Usage (from the repository root, in the lab's venv)::

    python benchmarks/robustness.py --seeds 8 --jobs 2          # ≈ 25 min on 2 cores
    python benchmarks/robustness.py --summary benchmarks/robustness.json   # re-read saved runs

Each seed runs in its own copy of the repository (``--workdir``) with the config's seed
edited in place, as a student would; notebook 02's CLIP encoder and notebook 04's stand-in
backbone are copied from ``checkpoints/`` (run notebooks 02 and 04 once first), so the seeds
vary the experiment, not its frozen inputs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_utils.rehearsal import copy_repo, set_config_value  # noqa: E402

BAR = 0.9   # a claim a notebook states must hold on at least this share of the seeds

# notebook → (its config file, the headline metrics its metrics.json logs)
NOTEBOOKS = {
    "03_hybrid_vit_clip": ("model.yml", ("f1_vit", "f1_clip", "f1_concat", "f1_attention", "fusion_gain_points",
                                         "f1_modality_dropout", "f1_auxiliary_vit_loss", "f1_vit_trained_alone_first",
                                         "clip_attention")),
    "04_vit_fer_finetuning": ("fer.yml", ("f1_head", "f1_full", "f1_progressive")),
    "05_rgb_thermal_fusion": ("fusion.yml", ("f1_rgb_only", "f1_thermal_only", "f1_early_concat", "f1_early_add",
                                             "f1_late_concat", "f1_late_attention", "f1_late_prediction",
                                             "fusion_gain_points", "attention_thermal_weight_span")),
}


def _best(m: dict, keys: tuple[str, ...]) -> float:
    return max(m[k] for k in keys)


SINGLES_05 = ("f1_rgb_only", "f1_thermal_only")
FUSIONS_05 = ("f1_early_concat", "f1_early_add", "f1_late_concat", "f1_late_attention", "f1_late_prediction")

# What each notebook's text states as a result ("text"), as a test on its metrics.json, and
# comparisons the text does not claim but a reader asks about ("measured": shown, never flagged).
TEXT_CLAIMS: dict[str, list[tuple[str, str, Callable[[dict], bool]]]] = {
    "03_hybrid_vit_clip": [
        ("CLIP's linear probe beats the ViT trained from scratch (\"usually, not always\")", "measured",
         lambda m: m["f1_clip"] > m["f1_vit"]),
        ("the attention fusion attends more to the CLIP token (\"expect the CLIP token to draw more attention\")", "text",
         lambda m: m["clip_attention"] > 0.5),
        ("plain concat fusion beats the better single branch (\"above it on some seeds, below it on others\")", "measured",
         lambda m: m["f1_concat"] > max(m["f1_vit"], m["f1_clip"])),
        ("plain attention fusion beats the better single branch", "measured",
         lambda m: m["f1_attention"] > max(m["f1_vit"], m["f1_clip"])),
    ],
    "04_vit_fer_finetuning": [
        ("full fine-tuning beats head only (\"on most seeds … the two swap\")", "measured",
         lambda m: m["f1_full"] > m["f1_head"]),
        ("progressive unfreezing beats full fine-tuning", "measured", lambda m: m["f1_progressive"] > m["f1_full"]),
        ("gradient checkpointing makes a training step slower (\"trades a slower step\")", "text", lambda m: m["checkpointing_time_ratio"] > 1),
    ],
    "05_rgb_thermal_fusion": [
        ("every fusion beats the best single modality", "measured",
         lambda m: min(m[k] for k in FUSIONS_05) > _best(m, SINGLES_05)),
        ("late attention fusion beats the best single modality", "measured",
         lambda m: m["f1_late_attention"] > _best(m, SINGLES_05)),
        ("late attention fusion is within 5 points of late concat", "measured",
         lambda m: m["f1_late_attention"] >= m["f1_late_concat"] - 0.05),
        ("thermal alone beats RGB alone", "measured", lambda m: m["f1_thermal_only"] > m["f1_rgb_only"]),
    ],
}


def _gain_03(key: str) -> Callable[[dict], float]:
    return lambda m: 100 * (m[key] - max(m["f1_vit"], m["f1_clip"]))


# Paired differences (same seed) whose spread the closing numbers need: gains in macro-F1 points.
DERIVED: dict[str, dict[str, Callable[[dict], float]]] = {
    "03_hybrid_vit_clip": {f"gain_{k[3:]} (points over the better branch)": _gain_03(k) for k in
                           ("f1_concat", "f1_attention", "f1_modality_dropout", "f1_auxiliary_vit_loss",
                            "f1_vit_trained_alone_first")},
    "05_rgb_thermal_fusion": {
        "gain_late_attention (points over the best single modality)":
            lambda m: 100 * (m["f1_late_attention"] - _best(m, SINGLES_05)),
        "gain_late_concat (points over the best single modality)":
            lambda m: 100 * (m["f1_late_concat"] - _best(m, SINGLES_05)),
    },
}


def run_one(notebook: str, seed_offset: int, workdir: Path, timeout: int) -> dict:
    """Execute ``notebook`` in a fresh copy of the repository with its config's seed moved by
    ``seed_offset``; returns the runner's row plus the recorded outcome checks."""
    config, _ = NOTEBOOKS[notebook]
    clone = workdir / f"{notebook[:2]}-seed{seed_offset}"
    if clone.exists():
        shutil.rmtree(clone)
    copy_repo(clone, ROOT)
    if (ROOT / "checkpoints").is_dir():
        shutil.copytree(ROOT / "checkpoints", clone / "checkpoints", dirs_exist_ok=True)
    from lab_utils.config import _read_yaml   # the config's own seed, before the edit
    seed = int(_read_yaml(clone / "configs" / config)["seed"]) + seed_offset
    set_config_value(clone / "configs" / config, "seed", seed)
    env = {**os.environ, "LAB_PROFILE": "quick", "LAB_OUTCOME_CHECKS": "report", "LAB_ROOT": str(clone),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join([str(clone)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    subprocess.run([sys.executable, "-m", "lab_utils.run_notebooks", str(clone / "notebooks" / f"{notebook}.ipynb"),
                    "--timeout", str(timeout)], cwd=clone, env=env, check=False, capture_output=True)
    summary = clone / "outputs" / "summary.json"
    rows = json.loads(summary.read_text()) if summary.exists() else [{"status": "no summary", "metrics": {}}]
    record = clone / "outputs" / notebook / "outcome_checks.json"
    row = {**rows[0], "notebook": notebook, "seed": seed,
           "outcome_checks": json.loads(record.read_text()) if record.exists() else []}
    shutil.rmtree(clone, ignore_errors=True)
    print(f"  {notebook} seed {seed}: {row['status']} in {row.get('seconds', 0):.0f} s", flush=True)
    return row


def summarise(runs: list[dict]) -> str:
    """The markdown table: per notebook, every claim's hit rate and every metric's mean ± std."""
    out = []
    for notebook, (_, metrics) in NOTEBOOKS.items():
        rows = sorted((r for r in runs if r["notebook"] == notebook), key=lambda r: r["seed"])
        ok = [r for r in rows if r["status"] == "ok"]
        if not rows:
            continue
        seeds = ", ".join(str(r["seed"]) for r in rows)
        out += [f"### {notebook} — {len(ok)} of {len(rows)} runs completed (seeds {seeds})", "",
                "| claim | source | held | share |", "|---|---|---|---|"]
        claims: dict[tuple[str, str], list[bool]] = {}
        for r in ok:
            for c in r["outcome_checks"]:
                claims.setdefault((c["claim"], "check"), []).append(c["held"])
            for text, source, test in TEXT_CLAIMS.get(notebook, []):
                try:
                    claims.setdefault((text, source), []).append(bool(test(r["metrics"])))
                except KeyError:
                    pass   # a metric this run did not log (an older notebook)
        for (claim, source), held in claims.items():
            share = sum(held) / len(held)
            flag = " ✗" if share < BAR and source != "measured" else ""
            out.append(f"| {claim} | {source} | {sum(held)}/{len(held)} | {share:.0%}{flag} |")
        out += ["", "| metric | mean | std | min | max |", "|---|---|---|---|---|"]
        for key in metrics + tuple(k for k in sorted({k for r in ok for k in r["metrics"]}) if k not in metrics):
            values = [r["metrics"][key] for r in ok if isinstance(r["metrics"].get(key), (int, float))
                      and not isinstance(r["metrics"].get(key), bool)]
            if len(values) >= 2:
                out.append(f"| {key} | {statistics.mean(values):.3f} | {statistics.stdev(values):.3f} | "
                           f"{min(values):.3f} | {max(values):.3f} |")
        for key, fn in DERIVED.get(notebook, {}).items():
            values = []
            for r in ok:
                try:
                    values.append(fn(r["metrics"]))
                except KeyError:
                    pass
            if len(values) >= 2:
                out.append(f"| {key} | {statistics.mean(values):.1f} | {statistics.stdev(values):.1f} | "
                           f"{min(values):.1f} | {max(values):.1f} |")
        walls = [r["seconds"] for r in ok]
        if walls:
            out += ["", f"wall time per run: {statistics.mean(walls):.0f} s (max {max(walls):.0f} s)", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8, help="seeds per notebook: the config's seed + 0 … N-1")
    parser.add_argument("--notebooks", nargs="+", default=[n[:2] for n in NOTEBOOKS], help="e.g. 03 05")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (each pins its own threads)")
    parser.add_argument("--workdir", default=None, help="where the per-seed copies go (default: a temp dir)")
    parser.add_argument("--timeout", type=int, default=900, help="per-cell limit, seconds")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "robustness.json"), help="raw runs are saved here")
    parser.add_argument("--summary", default=None, help="only summarise the runs saved in this JSON file")
    args = parser.parse_args(argv)
    if args.summary:
        print(summarise(json.loads(Path(args.summary).read_text())))
        return 0
    chosen = [n for n in NOTEBOOKS if n[:2] in args.notebooks]
    if not chosen:
        parser.error(f"--notebooks {args.notebooks}: choose among {', '.join(n[:2] for n in NOTEBOOKS)}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="robustness-"))
    workdir.mkdir(parents=True, exist_ok=True)
    jobs = [(n, k) for n in chosen for k in range(args.seeds)]
    print(f"{len(jobs)} notebook runs ({', '.join(chosen)} × {args.seeds} seeds), {args.jobs} at a time, in {workdir}")
    runs: list[dict] = []

    def run_and_save(job: tuple[str, int]) -> None:
        row = run_one(*job, workdir, args.timeout)
        with lock:                          # saved after every run: an interrupted benchmark keeps its runs
            runs.append(row)
            Path(args.json).write_text(json.dumps(runs, indent=1, ensure_ascii=False) + "\n")

    lock = threading.Lock()
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(run_and_save, jobs))
    runs.sort(key=lambda r: (r["notebook"], r["seed"]))
    Path(args.json).write_text(json.dumps(runs, indent=1, ensure_ascii=False) + "\n")
    print(summarise(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
