"""Do the notebooks' conclusions hold on another seed and another machine? Run them and count.

Each notebook draws conclusions — in its checks and in its text — from one seeded run of the
quick profile. A student runs the same seed on another CPU (other kernels, other rounding, and
training amplifies the last bits), an instructor may ask for another seed, and both must reach
the same conclusions. This benchmark executes the core notebooks (03, 04, 05) top to bottom in
the quick profile for several seeds (the config's ``seed`` key: it seeds the data — which faces,
which subjects are held out — the initialisation and the shuffling) on several **emulated
machines** (:data:`MACHINES`: environment variables that make PyTorch, MKL and oneDNN take
another CPU's numerical paths, and another thread count), and reports, for every claim, on how
many of the seed × machine runs it held, and every headline metric's mean ± std, overall and
per machine.

Claims come from two places:

* the notebook's **outcome checks** (``check(..., outcome=True)``): every outcome check is
  recorded held or not (``outputs/<notebook>/outcome_checks.json``); a run never stops on one;
* the notebook's **text**: :data:`TEXT_CLAIMS` restates each sentence that states a result as
  a test on the metrics the notebook logs (``outputs/<notebook>/metrics.json``).

A claim must hold on ≥ 90 % of the runs (:data:`BAR`); the table marks the ones that do not
with ✗. Rows marked "measured" are comparisons the text does *not* claim (a reader asks them:
which modality is better alone?); they are shown, never flagged.

Usage (from the repository root, in the lab's venv)::

    python benchmarks/robustness.py --seeds 8 --jobs 2                 # 8 seeds × 3 machines
    python benchmarks/robustness.py --seeds 8 --machines default avx2-1t --notebooks 05
    python benchmarks/robustness.py --summary benchmarks/robustness.json   # re-read saved runs

Each run gets its own copy of the repository (``--workdir``) with the config's seed edited in
place, as a student would, and its own process with the machine's variables set. What notebooks
03 and 04 load from ``checkpoints/`` — notebook 02's CLIP image encoder, notebook 04's stand-in
for a pretrained backbone — is made on each machine as a student's machine makes it: first, per
machine, notebooks 02 and 04 run once at their configs' seeds (notebook 02's outcome checks are
counted too), and every run of that machine starts from those checkpoints. So a machine changes
everything a student's computer changes; a seed changes the experiment, not its frozen inputs.
Runs are saved to ``--json`` after each one; ``--resume`` skips those already there.
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

from lab_tools.rehearsal import copy_repo, set_config_value  # noqa: E402

BAR = 0.9   # a claim a notebook states must hold on at least this share of the seed × machine runs

# Emulated machines: name → (environment, what it stands for). The variables select the numerical
# paths another CPU would take on this one: ATen's vectorised kernels (ATEN_CPU_CAPABILITY:
# default = no SIMD, avx2, avx512), MKL's matrix products (MKL_CBWR: the code path of an older
# instruction set, COMPATIBLE = the most portable one), oneDNN's (ONEDNN_MAX_CPU_ISA) and the
# thread count (LAB_THREADS overrides each notebook's pinned count; it decides how sums split).
MACHINES: dict[str, tuple[dict[str, str], str]] = {
    "default": ({}, "this CPU's own kernels, each notebook's thread count"),
    "avx2-1t": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "LAB_THREADS": "1"},
                "an AVX2 laptop (no AVX-512), one thread"),
    "compat-2t": ({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41",
                   "LAB_THREADS": "2"},
                  "a CPU with none of those instruction sets (MKL's and oneDNN's portable paths, "
                  "ATen unvectorised), two threads"),
}

# notebook → (its config file, the headline metrics its metrics.json logs)
PREPARE = "02_clip_contrastive"      # run once per machine: its checkpoint feeds notebook 03
NEED_CHECKPOINTS = ("03_hybrid_vit_clip", "04_vit_fer_finetuning")
NOTEBOOKS = {
    PREPARE: ("clip.yml", ("i2t_r1", "t2i_r1", "zero_shot_acc", "compare_i2t_r1", "compare_zero_shot_acc")),
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
EARLY_05 = ("f1_early_concat", "f1_early_add")
LATE_05 = ("f1_late_concat", "f1_late_attention", "f1_late_prediction")
FUSIONS_05 = EARLY_05 + LATE_05

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
        ("the ViT trained alone first lifts the plain fusion (\"lifted the fusion on every run\")", "text",
         lambda m: m["f1_vit_trained_alone_first"] > m["f1_concat"]),
        ("the auxiliary ViT loss lifts the plain fusion (\"lifted it on most runs: 22 of 24 …\")", "measured",
         lambda m: m["f1_auxiliary_vit_loss"] > m["f1_concat"]),
        ("modality dropout lifts the plain fusion (\"less than the run-to-run spread\")", "measured",
         lambda m: m["f1_modality_dropout"] > m["f1_concat"]),
        ("the ViT trained alone first beats the auxiliary loss (\"yours may swap them\")", "measured",
         lambda m: m["f1_vit_trained_alone_first"] > m["f1_auxiliary_vit_loss"]),
        ("the ViT trained alone first beats the plain fusion given twice the epochs (\"stayed below the staged remedy\")",
         "text",
         lambda m: m["f1_vit_trained_alone_first"] > m["f1_plain_twice_the_epochs"]),
        ("twice the epochs lifts the plain fusion", "measured",
         lambda m: m["f1_plain_twice_the_epochs"] > m["f1_concat"]),
        ("CLIP's nearest neighbours share the expression above chance (\"a same-expression share above 1/7\")", "text",
         lambda m: m["neighbours_expression_clip"] > 1 / 7),
        ("CLIP's nearest neighbours share the person at ≥ 3× chance (\"several times its chance\")", "text",
         lambda m: m["neighbours_person_clip"] >= 3 * 13 / 559),
        ("the fusion's ViT branch carries less expression than the CLIP features (\"learns little of its own\")", "text",
         lambda m: m["neighbours_expression_vit"] < m["neighbours_expression_clip"]),
    ],
    "04_vit_fer_finetuning": [
        ("full fine-tuning beats head only (\"expect full fine-tuning ahead of head only\")", "text",
         lambda m: m["f1_full"] > m["f1_head"]),
        ("progressive unfreezing beats head only (\"above head only on N of 12 runs\")", "measured",
         lambda m: m["f1_progressive"] > m["f1_head"]),
        ("full fine-tuning beats progressive unfreezing (\"below full fine-tuning on N of 12\")", "measured",
         lambda m: m["f1_full"] > m["f1_progressive"]),
        ("gradient checkpointing makes a training step slower (wall clock on a shared CPU: \"the ratio ranged …\")",
         "measured",
         lambda m: m["checkpointing_time_ratio"] > 1),
        ("the best model was over-confident on validation (\"the temperature … was above 1\")", "text",
         lambda m: m["calibration_temperature"] > 1),
        ("temperature scaling lowers the best model's test ECE (\"lower on N of 12 runs, higher on the rest\")",
         "measured",
         lambda m: m["ece_best_scaled"] < m["ece_best"]),
    ],
    "05_rgb_thermal_fusion": [
        ("thermal alone beats RGB alone (\"thermal alone beat RGB alone on 23 runs of 24\")", "text",
         lambda m: m["f1_thermal_only"] > m["f1_rgb_only"]),
        ("the best late fusion beats the best early fusion (\"late fusion beat early fusion\")", "text",
         lambda m: max(m[k] for k in LATE_05) > max(m[k] for k in EARLY_05)),
        ("hiding either modality costs every fusion ≥ 5 points (\"all of them use both modalities\")", "text",
         lambda m: min(m[f"{k[3:]}_points_lost_{h}_hidden"] for k in FUSIONS_05 for h in ("rgb", "thermal")) >= 5),
        ("late attention is the best fusion (\"the best fusion on 18 runs of 24\")", "measured",
         lambda m: m["f1_late_attention"] == max(m[k] for k in FUSIONS_05)),
        ("every fusion beats the best single modality", "measured",
         lambda m: min(m[k] for k in FUSIONS_05) > _best(m, SINGLES_05)),
        ("late attention fusion beats the best single modality", "measured",
         lambda m: m["f1_late_attention"] > _best(m, SINGLES_05)),
        ("every late fusion beats both one-modality ensembles of two encoders (\"every late fusion still beat …\")",
         "text",
         lambda m: min(m[k] for k in LATE_05) > max(m["f1_rgb_only_2_encoders"], m["f1_thermal_only_2_encoders"])),
        ("a second encoder lifts the better single modality (two-encoder ensemble vs one)", "measured",
         lambda m: max(m["f1_rgb_only_2_encoders"], m["f1_thermal_only_2_encoders"]) > _best(m, SINGLES_05)),
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


def provenance() -> dict[str, str]:
    """What the runs were measured with: the commit of this repository (``+changes`` when the
    working tree differs from it) and the date (UTC)."""
    import datetime

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""
    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/*.json")
    return {"commit": commit + ("+changes" if changed else ""),
            "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}


def config_of(clone: Path, notebook: str) -> str:
    """The fingerprint of ``notebook``'s config in ``clone`` as the quick profile loads it
    (``lab_utils.config.config_fingerprint``: every key but the seed)."""
    from lab_utils.config import config_fingerprint, load_config

    return config_fingerprint(load_config(clone / "configs" / NOTEBOOKS[notebook][0], profile="quick"))


def _environment(machine: str, clone: Path) -> dict[str, str]:
    """The process environment of a run in ``clone`` on ``machine``: the quick profile, offline,
    outcome checks warning (every claim recorded), and the machine's variables."""
    inherited = {k: v for k, v in os.environ.items() if k not in EMULATION_VARIABLES}
    return {**inherited, **MACHINES[machine][0], "LAB_PROFILE": "quick", "LAB_OUTCOME_CHECKS": "warn",
            "LAB_ROOT": str(clone), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
            "PYTHONHASHSEED": "0",
            "PYTHONPATH": os.pathsep.join([str(clone)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}


def _execute(clone: Path, machine: str, notebooks: list[str], timeout: int) -> list[dict]:
    """Run ``notebooks`` of ``clone`` in order, in one process on ``machine``; the runner's rows."""
    subprocess.run([sys.executable, "-m", "lab_tools.run_notebooks",
                    *(str(clone / "notebooks" / f"{n}.ipynb") for n in notebooks), "--timeout", str(timeout)],
                   cwd=clone, env=_environment(machine, clone), check=False, capture_output=True)
    summary = clone / "outputs" / "summary.json"
    rows = json.loads(summary.read_text()) if summary.exists() else []
    rows += [{"notebook": n, "status": "no summary", "metrics": {}} for n in notebooks[len(rows):]]
    for row in rows:
        row.setdefault("outcome_checks", [])
        row.setdefault("comparisons", [])
    return rows


def prepare_machine(machine: str, workdir: Path, timeout: int) -> tuple[Path, dict]:
    """Notebooks 02 and 04 once on ``machine`` (their configs' seeds): the checkpoints its runs
    start from (02's CLIP image encoder, 04's stand-in backbone). Returns the checkpoint folder
    and notebook 02's row."""
    clone = workdir / f"prepare-{machine}"
    if clone.exists():
        shutil.rmtree(clone)
    copy_repo(clone, ROOT)
    rows = _execute(clone, machine, [PREPARE, "04_vit_fer_finetuning"], timeout)
    from lab_utils.config import _read_yaml
    seed = int(_read_yaml(clone / "configs" / NOTEBOOKS[PREPARE][0]).get("seed", 0))
    row = {**rows[0], "notebook": PREPARE, "seed": seed, "machine": machine, "config": config_of(clone, PREPARE),
           **provenance()}
    print(f"  {machine}: checkpoints made (notebook 02 {rows[0]['status']} in {rows[0].get('seconds', 0):.0f} s, "
          f"04 {rows[1]['status']})", flush=True)
    return clone / "checkpoints", row


def run_one(notebook: str, seed_offset: int, machine: str, workdir: Path, timeout: int,
            checkpoints: Path) -> dict:
    """Execute ``notebook`` in a fresh copy of the repository with its config's seed moved by
    ``seed_offset``, in a process with ``machine``'s variables set, starting from the machine's
    ``checkpoints``; returns the runner's row (status, seconds, metrics, outcome checks) with the
    notebook, seed and machine."""
    config, _ = NOTEBOOKS[notebook]
    clone = workdir / f"{notebook[:2]}-seed{seed_offset}-{machine}"
    if clone.exists():
        shutil.rmtree(clone)
    copy_repo(clone, ROOT)
    shutil.copytree(checkpoints, clone / "checkpoints", dirs_exist_ok=True)
    from lab_utils.config import _read_yaml   # the config's own seed, before the edit
    seed = int(_read_yaml(clone / "configs" / config)["seed"]) + seed_offset
    set_config_value(clone / "configs" / config, "seed", seed)
    row = {**_execute(clone, machine, [notebook], timeout)[0], "notebook": notebook, "seed": seed, "machine": machine,
           "config": config_of(clone, notebook), **provenance()}
    shutil.rmtree(clone, ignore_errors=True)
    print(f"  {notebook} seed {seed} on {machine}: {row['status']} in {row.get('seconds', 0):.0f} s", flush=True)
    return row


EMULATION_VARIABLES = sorted({k for env, _ in MACHINES.values() for k in env})


def _claims(notebook: str, run: dict) -> list[tuple[str, str, bool]]:
    """(claim, source, held) of one completed run: its outcome checks, then its text claims."""
    out = [(c["claim"], "check", bool(c["held"])) for c in run["outcome_checks"]]
    for text, source, test in TEXT_CLAIMS.get(notebook, []):
        try:
            out.append((text, source, bool(test(run["metrics"]))))
        except KeyError:
            pass   # a metric this run did not log (an older notebook)
    return out


def comparison_table(runs: list[dict], machines: list[str]) -> list[str]:
    """How often each comparison the notebook printed (``⇄`` lines, ``comparisons.json``) came out
    each way over the runs: A ahead / cannot tell / B ahead, overall and per machine, and the
    difference's mean ± std (points)."""
    per: dict[tuple[str, str, str], list[tuple[str, str, float]]] = {}
    for r in runs:
        for c in r.get("comparisons") or []:
            per.setdefault((c["a"], c["b"], c["metric"]), []).append(
                (r.get("machine", "default"), c["verdict"], 100 * c["difference"]))
    if not per:
        return []
    out = ["| A − B | metric | A ahead | cannot tell | B ahead | difference (points): mean ± std | "
           + " | ".join(f"{m}: A / tie / B" for m in machines) + " |",
           "|---|---|---|---|---|---|" + "---|" * len(machines)]
    for (a, b, metric), got in per.items():
        def counts(rows): return [sum(v == k for _, v, _ in rows) for k in ("a", "tie", "b")]
        n = len(got)
        total = counts(got)
        cells = " | ".join("/".join(map(str, counts([g for g in got if g[0] == m]))) for m in machines)
        out.append(f"| {a} − {b} | {metric} | {total[0]}/{n} | {total[1]}/{n} | {total[2]}/{n} | "
                   f"{_mean_std([d for _, _, d in got], 1)} | {cells} |")
    return out


def _numbers(runs: list[dict], notebook: str, key: str) -> list[float]:
    fn = DERIVED.get(notebook, {}).get(key)
    values = []
    for r in runs:
        try:
            value = fn(r["metrics"]) if fn else r["metrics"][key]
        except KeyError:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values.append(float(value))
    return values


def _wall_clock(key: str) -> bool:
    """Timings (and the seeds count) say how loaded the machine was, not what the notebook found."""
    return key == "seeds" or "seconds" in key or key.endswith("_per_s")


def _mean_std(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def summarise(runs: list[dict]) -> str:
    """The markdown tables: per notebook, every claim's hit rate over seeds × machines (and per
    machine), every metric's mean ± std, and how far each machine moves the numbers."""
    out = []
    machines = [m for m in MACHINES if any(r.get("machine", "default") == m for r in runs)]
    machines += sorted({r.get("machine", "default") for r in runs} - set(machines))
    for notebook, (_, metrics) in NOTEBOOKS.items():
        rows = sorted((r for r in runs if r["notebook"] == notebook), key=lambda r: (r["seed"], r.get("machine", "")))
        ok = [r for r in rows if r["status"] == "ok"]
        if not rows:
            continue
        by_machine = {m: [r for r in ok if r.get("machine", "default") == m] for m in machines}
        seeds = sorted({r["seed"] for r in rows})
        made = {k: sorted({str(r.get(k, "not recorded")) for r in rows}) for k in ("commit", "measured", "config")}
        out += [f"### {notebook} — {len(ok)} of {len(rows)} runs completed "
                f"(seeds {seeds[0]}–{seeds[-1]} × machines {', '.join(machines)})", "",
                f"Measured at commit {', '.join(made['commit'])} on {', '.join(made['measured'])}, "
                f"config fingerprint {', '.join(made['config'])}.", "",
                "| claim | source | held | share | " + " | ".join(machines) + " |",
                "|---|---|---|---|" + "---|" * len(machines)]
        claims: dict[tuple[str, str], dict[str, list[bool]]] = {}
        for r in ok:
            for claim, source, held in _claims(notebook, r):
                claims.setdefault((claim, source), {}).setdefault(r.get("machine", "default"), []).append(held)
        for (claim, source), per in claims.items():
            held = [h for m in machines for h in per.get(m, [])]
            share = sum(held) / len(held)
            flag = " ✗" if share < BAR and source != "measured" else ""
            cells = " | ".join(f"{sum(per[m])}/{len(per[m])}" if m in per else "–" for m in machines)
            out.append(f"| {claim} | {source} | {sum(held)}/{len(held)} | {share:.0%}{flag} | {cells} |")
        verdicts = comparison_table(ok, machines)
        if verdicts:
            out += ["", "How each comparison the run printed came out (its ⇄ line's verdict):", ""] + verdicts
        keys = list(metrics) + [k for k in sorted({k for r in ok for k in r["metrics"]})
                                if k not in metrics and not _wall_clock(k)]
        keys += list(DERIVED.get(notebook, {}))
        out += ["", "| metric | all runs: mean ± std | min | max | " + " | ".join(machines) + " |",
                "|---|---|---|---|" + "---|" * len(machines)]
        for key in keys:
            values = _numbers(ok, notebook, key)
            if len(values) < 2:
                continue
            digits = 1 if key in DERIVED.get(notebook, {}) or "points" in key else 3
            cells = " | ".join(_mean_std(_numbers(by_machine[m], notebook, key), digits) for m in machines)
            out.append(f"| {key} | {_mean_std(values, digits)} | {min(values):.{digits}f} | "
                       f"{max(values):.{digits}f} | {cells} |")
        out += ["", _machine_effect(notebook, ok, machines, metrics)]
        walls = {m: [r["seconds"] for r in by_machine[m]] for m in machines}
        out += ["", "wall time per run: " + ", ".join(f"{m} {statistics.mean(w):.0f} s (max {max(w):.0f} s)"
                                                    for m, w in walls.items() if w), ""]
    return "\n".join(out)


def _machine_effect(notebook: str, ok: list[dict], machines: list[str], metrics: tuple[str, ...]) -> str:
    """Does each emulated machine really move the numbers? Paired with the default machine on the
    same seed: on how many seeds the headline metrics differ at all, and by how much."""
    if "default" not in machines or len(machines) < 2:
        return ""
    base = {r["seed"]: r["metrics"] for r in ok if r.get("machine", "default") == "default"}
    lines = [f"Same seed, another machine: runs whose {len(metrics)} headline metrics differ from the default "
             "machine's, and the mean |difference| (macro-F1 points, over those metrics).", "",
             "| machine | seeds with any difference | mean \\|Δ\\| (points) | largest \\|Δ\\| (points) |",
             "|---|---|---|---|"]
    for m in machines:
        if m == "default":
            continue
        differ, deltas = 0, []
        pairs = [(r["metrics"], base[r["seed"]]) for r in ok if r.get("machine") == m and r["seed"] in base]
        for got, ref in pairs:
            d = [abs(got[k] - ref[k]) * (1 if "points" in k else 100) for k in metrics
                 if isinstance(got.get(k), (int, float)) and isinstance(ref.get(k), (int, float))]
            differ += any(x > 0 for x in d)
            deltas += d
        if pairs:
            lines.append(f"| {m} | {differ}/{len(pairs)} | {statistics.mean(deltas):.1f} | {max(deltas):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8, help="seeds per notebook: the config's seed + 0 … N-1")
    parser.add_argument("--machines", nargs="+", default=list(MACHINES), choices=list(MACHINES),
                        help="emulated machines (default: all): " + "; ".join(f"{k}: {d}" for k, (_, d) in MACHINES.items()))
    parser.add_argument("--notebooks", nargs="+", default=[n[:2] for n in NOTEBOOKS if n != PREPARE],
                        help="e.g. 03 05 (notebook 02 runs once per machine anyway: it makes 03's input)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (each pins its own threads)")
    parser.add_argument("--workdir", default=None, help="where the per-run copies go (default: a temp dir)")
    parser.add_argument("--timeout", type=int, default=900, help="per-cell limit, seconds")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "robustness.json"), help="raw runs are saved here")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --json and skip them")
    parser.add_argument("--summary", default=None, help="only summarise the runs saved in this JSON file")
    args = parser.parse_args(argv)
    if args.summary:
        print(summarise(json.loads(Path(args.summary).read_text())))
        return 0
    chosen = [n for n in NOTEBOOKS if n[:2] in args.notebooks and n != PREPARE]
    if not chosen:
        parser.error(f"--notebooks {args.notebooks}: choose among {', '.join(n[:2] for n in NOTEBOOKS)}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="robustness-"))
    workdir.mkdir(parents=True, exist_ok=True)
    runs: list[dict] = json.loads(Path(args.json).read_text()) if args.resume and Path(args.json).exists() else []
    from lab_utils.config import _read_yaml
    base_seed = {n: int(_read_yaml(ROOT / "configs" / NOTEBOOKS[n][0])["seed"]) for n in chosen}
    done = {(r["notebook"], r["seed"], r.get("machine", "default")) for r in runs if r["status"] == "ok"}
    jobs = [(n, k, m) for m in args.machines for k in range(args.seeds) for n in chosen
            if (n, base_seed[n] + k, m) not in done]
    runs = [r for r in runs if (r["notebook"], r["seed"], r.get("machine", "default")) in done]
    print(f"{len(jobs)} notebook runs ({', '.join(chosen)} × {args.seeds} seeds × machines "
          f"{', '.join(args.machines)}; {len(runs)} kept from {args.json}), {args.jobs} at a time, in {workdir}")
    lock = threading.Lock()

    def save(row: dict) -> None:
        with lock:                          # saved after every run: an interrupted benchmark keeps its runs
            runs[:] = [r for r in runs if (r["notebook"], r["seed"], r.get("machine")) !=
                       (row["notebook"], row["seed"], row["machine"])] + [row]
            Path(args.json).write_text(json.dumps(runs, indent=1, ensure_ascii=False) + "\n")

    machines = sorted({m for n, _, m in jobs if n in NEED_CHECKPOINTS}, key=list(MACHINES).index)
    with ThreadPoolExecutor(args.jobs) as pool:       # each machine's checkpoints, made on that machine
        prepared = dict(zip(machines, pool.map(lambda m: prepare_machine(m, workdir, args.timeout), machines)))
    for _, row in prepared.values():
        save(row)
    empty = workdir / "no-checkpoints"                # notebook 05 loads nothing from checkpoints/
    empty.mkdir(exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: save(run_one(*job, workdir, args.timeout,
                                               prepared[job[2]][0] if job[0] in NEED_CHECKPOINTS else empty)), jobs))
    runs.sort(key=lambda r: (r["notebook"], r["seed"], list(MACHINES).index(r.get("machine", "default"))))
    Path(args.json).write_text(json.dumps(runs, indent=1, ensure_ascii=False) + "\n")
    print(summarise(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
