"""Grade a class: ``make grade SUBMISSIONS=<folder>`` (= ``python -m lab_tools.grading grade``).

    <folder>/<student>/01_vit_patching.ipynb …   one sub-folder per student, any subset of the
                                                 notebooks, as downloaded from Colab

For every student and every lab notebook that anyone in the class handed in:

1. **run** (unless ``--no-execute``): the student's notebook is executed top to bottom in the
   quick profile, offline, in a fresh kernel, with the student's own ``outputs/`` and
   ``checkpoints/`` (``<out>/runs/<student>/``, reached through ``LAB_ROOT``), so their figures
   (stable names) and ``metrics.json`` are theirs. A failing exercise does not stop the run
   (exercise cells are allowed to raise); any other error does, and is reported with its cell.
   With ``--no-execute`` the status is read from the outputs stored in the notebook.
2. **autograde**: the student's exercise solutions, with the full tests (hidden ones included),
   are scored by ``nbgrader autograde`` in a fresh kernel (``lab_tools.grading.course``).

The class report goes to ``<out>/`` (default ``outputs/grading/``):

* ``class_report.csv`` and ``class_report.html``: one row per student — each notebook's status
  (``ok``, ``failed at cell N (id …): Error: …``, ``missing``), each exercise's score, the total,
  the headline metrics of each ``metrics.json``, and the flags;
* ``report.json``: the same, with each failing test's message, for scripts;
* ``figures/<notebook>/<figure>.html``: one contact sheet per figure, every student's version
  side by side, and ``figures/index.html``.

3. **read**: what each student wrote, without running it (``lab_tools.grading.answers``): an
   exercise whose solution calls the lab function it re-implements scores 0; the written answers
   go to one page per question (``questions/<grade_id>.html``) and ``manual_scores.csv``, which the
   instructor fills in (``lab_tools.grading.manual``).

Flags say what an instructor should look at, each in one line with its reason: a notebook that
did not run, a notebook that classmates handed in and this student did not, a solution that
calls the lab's own implementation, a metric far outside the class's spread (robust z-score >
3.5 against the median; wall-clock timings never: they measure the laptop), and an exercise
solved identically by several students beyond the code the notebook shows (three own lines or
more; the same short answer everyone writes is no flag).
"""
from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import shutil
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import pandas as pd

from lab_utils.paths import repo_root
from . import answers, course, manual
from .cells import EXERCISES, QUESTIONS, exercises_for

OUTLIER_Z = 3.5
"""A metric is flagged when |value − class median| > OUTLIER_Z × the class's robust spread."""
MIN_CLASS_FOR_OUTLIERS = 4
"""Below this many values a class has no spread worth comparing with."""

_NUMBER = re.compile(r"(?<!\d)(\d\d)_")


@dataclass
class NotebookResult:
    """What grading found for one student's notebook.

    ``status``: ``ok`` | ``failed`` | ``timeout`` | ``missing`` | ``unreadable`` | ``not run``
    (``--no-execute`` and no stored outputs); ``error`` names the cell and the error;
    ``exercises``: ``{grade_id: {"score", "max_score", "message"}}``; ``fingerprints``:
    ``{grade_id: [hash, own lines]}`` of the non-trivial solutions (``answers.fingerprint``);
    ``references``: ``{grade_id: [lab names the solution uses]}``; ``answers``: ``{question
    grade_id: the written answer}``; ``questions``: ``{question grade_id: score or "ungraded"}``."""

    student: str
    notebook: str
    status: str
    error: str = ""
    seconds: float | None = None
    metrics: dict = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    exercises: dict[str, dict] = field(default_factory=dict)
    fingerprints: dict[str, list] = field(default_factory=dict)
    references: dict[str, list[str]] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    questions: dict[str, float | str] = field(default_factory=dict)


# --------------------------------------------------------------------------- finding submissions
def lab_notebooks(root: Path | None = None) -> dict[str, Path]:
    """``{"01": notebooks/01_….ipynb, …}``: the lab's (solution) notebooks by number."""
    folder = (root or repo_root()) / "notebooks"
    found = {p.name[:2]: p for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}
    if not found:
        raise FileNotFoundError(f"no notebooks NN_….ipynb in {folder}: run from the lab's repository")
    return found


def find_submissions(folder: Path, lab: dict[str, Path]) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """``({student: {notebook stem: path}}, ignored files)`` from ``folder/<student>/*.ipynb``.

    A file counts as lab notebook ``NN`` when its name holds ``NN_`` (Colab's "Copy of
    01_vit_patching.ipynb" and a browser's "01_vit_patching (1).ipynb" included); with two
    files for one notebook, the most recently modified one is graded.

    Raises:
        FileNotFoundError / NotADirectoryError: ``folder`` is not a folder of student folders.
    """
    if not folder.is_dir():
        raise NotADirectoryError(f"SUBMISSIONS={folder} is not a folder. Give a folder with one sub-folder per "
                                 "student, each holding that student's notebooks (<folder>/<student>/01_….ipynb)")
    students: dict[str, dict[str, Path]] = {}
    ignored: list[str] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        mine: dict[str, Path] = {}
        for path in sorted(sub.rglob("*.ipynb"), key=lambda p: p.stat().st_mtime):
            if ".ipynb_checkpoints" in path.parts:
                continue
            match = _NUMBER.search(path.name)
            if match and match.group(1) in lab:
                mine[lab[match.group(1)].stem] = path
            else:
                ignored.append(str(path.relative_to(folder)))
        students[sub.name] = mine
    if not students:
        raise FileNotFoundError(f"{folder} has no student sub-folders; expected <folder>/<student>/01_….ipynb")
    return students, ignored


# --------------------------------------------------------------------------- running a notebook
def _first_error(nb: nbformat.NotebookNode, skip_exercises: bool = True) -> str:
    """``"cell N (id …): Error: message"`` for the first cell with an error output, or ``""``."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or (skip_exercises and course.is_exercise_cell(cell)):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                evalue = str(out.get("evalue", "")).strip().splitlines()
                return f"cell {index} (id {cell.get('id', '?')}): {out.get('ename')}: {evalue[0] if evalue else ''}"
    return ""


def stored_status(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """``(status, error)`` read from a notebook's stored outputs (``--no-execute``)."""
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    if not any(c.get("execution_count") for c in code):
        return "not run", "no stored outputs: run it (or grade without --no-execute)"
    error = _first_error(nb)
    return ("failed", error) if error else ("ok", "")


def _run_root(out: Path, student: str, lab_root: Path) -> Path:
    """``<out>/runs/<student>/``: the student's own outputs/ and checkpoints/, the lab's configs/ and data/."""
    root = out / "runs" / student
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "checkpoints").mkdir(exist_ok=True)
    for shared in ("configs", "data"):
        link = root / shared
        if not link.exists() and (lab_root / shared).exists():
            try:
                link.symlink_to((lab_root / shared).resolve(), target_is_directory=True)
            except OSError:          # no symlinks (some Windows set-ups): a copy does too
                shutil.copytree(lab_root / shared, link)
    return root


def run_submission(student: str, stem: str, nb: nbformat.NotebookNode, out: Path, lab_root: Path,
                   timeout: int) -> NotebookResult:
    """Execute one student's notebook (quick profile, the student's own outputs); see the module doc."""
    from ..run_notebooks import run_notebook

    root = _run_root(out, student, lab_root)
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if course.is_exercise_cell(cell):        # a wrong exercise must not hide the rest of the notebook
            tags = cell.metadata.setdefault("tags", [])
            if "raises-exception" not in tags:
                tags.append("raises-exception")
    path = root / "notebooks" / f"{stem}.ipynb"
    nbformat.write(nb, path)
    before = os.environ.get("LAB_ROOT")
    os.environ["LAB_ROOT"] = str(root.resolve())
    try:
        run = run_notebook(path, inplace=False, timeout=timeout)
    finally:
        if before is None:
            os.environ.pop("LAB_ROOT", None)
        else:
            os.environ["LAB_ROOT"] = before
    outputs = root / "outputs" / stem
    executed = outputs / f"{stem}.ipynb"
    error = run["error"]
    if run["status"] == "failed" and executed.exists():
        error = _first_error(nbformat.read(executed, as_version=4)) or error
    figures = {p.stem: str(p) for p in sorted(outputs.glob("*.png"))}
    return NotebookResult(student, stem, run["status"], error, run["seconds"], run["metrics"], figures)


def read_solutions(result: NotebookResult, nb: nbformat.NotebookNode, solution_nb: nbformat.NotebookNode,
                   shown: dict[str, set[str]]) -> None:
    """Fill in what the student wrote, read without running it: each exercise's fingerprint (when
    non-trivial; ``shown``: ``answers.shown_lines`` per exercise, the same for every student) and
    the lab names it leans on, and the written answers."""
    sources = course.student_solutions(nb, solution_nb)
    for ex in exercises_for(result.notebook):
        source = sources.get(f"{ex.grade_id}_solution", "")
        printed = answers.fingerprint(source, shown[ex.grade_id])
        if printed:
            result.fingerprints[ex.grade_id] = list(printed)
        used = answers.reference_uses(source, ex.reference)
        if used:
            result.references[ex.grade_id] = used
    result.answers = answers.written_answers(nb, [q.grade_id for q in QUESTIONS if q.notebook == result.notebook])


# --------------------------------------------------------------------------- the class
def _lab_solutions(lab: dict[str, Path], stems: list[str]) -> tuple[dict, dict[str, dict[str, set[str]]]]:
    """Each lab notebook of ``stems``, read once, and per exercise the lines it shows a student
    (``answers.shown_lines``): the same for every submission."""
    notebooks = {stem: nbformat.read(lab[stem[:2]], as_version=4) for stem in stems}
    shown = {stem: {ex.grade_id: answers.shown_lines(notebooks[stem], ex) for ex in exercises_for(stem)}
             for stem in stems}
    return notebooks, shown


def grade_class(submissions: Path, out: Path, execute: bool = True, timeout: int = 600,
                lab_root: Path | None = None) -> dict:
    """Grade every submission in ``submissions`` and write the report to ``out``; returns the
    report as a dict (``students``, ``notebooks``, ``exercises``, ``results``, ``flags``, ``ignored``)."""
    lab_root = (lab_root or repo_root()).resolve()
    lab = lab_notebooks(lab_root)
    students, ignored = find_submissions(submissions, lab)
    expected = sorted({stem for mine in students.values() for stem in mine})
    if not expected:
        raise FileNotFoundError(f"no lab notebook (NN_….ipynb) in any student folder of {submissions}")
    out.mkdir(parents=True, exist_ok=True)
    nbgrader_root = out / "nbgrader"
    if nbgrader_root.exists():
        shutil.rmtree(nbgrader_root)                 # a fresh gradebook for every grading run
    course.prepare_exercises([lab[stem[:2]] for stem in expected], nbgrader_root)

    solution_nbs, shown = _lab_solutions(lab, expected)
    results: list[NotebookResult] = []
    for student, mine in students.items():
        readable: dict[str, nbformat.NotebookNode] = {}
        for stem in expected:
            if stem not in mine:
                results.append(NotebookResult(student, stem, "missing", "not handed in", answers={
                    q.grade_id: "" for q in QUESTIONS if q.notebook == stem}))
                continue
            try:
                nb = nbformat.read(mine[stem], as_version=4)
            except Exception as err:  # noqa: BLE001 — any broken file is reported, not fatal
                results.append(NotebookResult(student, stem, "unreadable", f"{type(err).__name__}: {err}", answers={
                    q.grade_id: "" for q in QUESTIONS if q.notebook == stem}))
                continue
            readable[stem] = nb
            print(f"▶ {student} · {stem} …", flush=True)
            if execute:
                result = run_submission(student, stem, nb, out, lab_root, timeout)
            else:
                result = NotebookResult(student, stem, *stored_status(nb))
            read_solutions(result, nb, solution_nbs[stem], shown[stem])
            print(f"  {result.status}" + (f" — {result.error}" if result.error else ""), flush=True)
            results.append(result)
        scores = {}
        if readable:
            course.submit_exercises(student, readable, nbgrader_root)
            scores = course.autograde(student, nbgrader_root)
        for result in results:
            if result.student == student:
                result.exercises = _exercise_scores(result.notebook, scores.get(result.notebook), result.status)
                _zero_reference_calls(result)
    questions = {q.grade_id: q for q in QUESTIONS if q.notebook in expected}
    written: dict[str, dict[str, str]] = {}
    for r in results:
        written.setdefault(r.student, {}).update(r.answers)
    rows = manual.update_scores_file(out / manual.SCORES_FILE, written, questions)
    for r in results:
        r.questions = {g: manual.score(rows, r.student, g, text) for g, text in r.answers.items()}
    manual.write_question_pages(out, written, questions, rows)
    report = build_report(results, expected, ignored)
    write_report(report, out)
    return report


def _zero_reference_calls(result: NotebookResult) -> None:
    """An exercise whose solution calls the lab function it re-implements scores 0, with the reason."""
    for grade_id, used in result.references.items():
        score = result.exercises.get(grade_id)
        if score is not None:
            names = ", ".join(used)
            score.update(score=0.0, message=f"0 points: the solution uses the lab's {names}, which the exercise asks "
                                            "you to write yourself" + (f" (the tests said: {score['message']})"
                                                                       if score["message"] else ""))


def _exercise_scores(stem: str, scores: dict | None, status: str) -> dict[str, dict]:
    """Every exercise of ``stem`` with its score; exercises of a notebook not graded score 0."""
    table = {}
    for ex in exercises_for(stem):
        got = (scores or {}).get(ex.grade_id)
        table[ex.grade_id] = got or {"score": 0.0, "max_score": float(ex.points),
                                     "message": f"notebook {status}"}
    return table


# --------------------------------------------------------------------------- flags
def robust_outliers(values: dict[str, float], z: float = OUTLIER_Z) -> dict[str, float]:
    """``{student: robust z}`` for the values far from the class median.

    The spread is 1.4826 × the median absolute deviation (the standard deviation for normal
    data), or 1.2533 × the mean absolute deviation when more than half the class has the
    median value. Fewer than ``MIN_CLASS_FOR_OUTLIERS`` values: no outliers."""
    finite = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
    if len(finite) < MIN_CLASS_FOR_OUTLIERS:
        return {}
    median = statistics.median(finite.values())
    deviations = [abs(v - median) for v in finite.values()]
    spread = 1.4826 * statistics.median(deviations) or 1.2533 * statistics.fmean(deviations)
    if spread == 0:
        return {}
    return {k: round((v - median) / spread, 1) for k, v in finite.items() if abs(v - median) / spread > z}


def class_flags(results: list[NotebookResult]) -> dict[str, list[str]]:
    """``{student: [flag, …]}``: what an instructor should look at (see the module doc)."""
    flags: dict[str, list[str]] = {r.student: [] for r in results}
    for r in results:
        if r.status in ("failed", "timeout", "unreadable", "not run"):
            flags[r.student].append(f"{r.notebook} did not run ({r.status}: {r.error})")
        elif r.status == "missing":
            flags[r.student].append(f"{r.notebook} missing (handed in by classmates)")
    for r in results:
        for grade_id, used in sorted(r.references.items()):
            flags[r.student].append(f"{grade_id}: 0 points, the solution calls the lab's {', '.join(used)} "
                                    "(the function it is asked to write)")
    by_metric: dict[tuple[str, str], dict[str, float]] = {}
    for r in results:
        for key, value in _numeric(r.metrics).items():
            if not is_timing(key):             # a loaded laptop is not something to act on
                by_metric.setdefault((r.notebook, key), {})[r.student] = value
    for (stem, key), values in sorted(by_metric.items()):
        median = statistics.median(values.values()) if values else 0.0
        for student, zscore in robust_outliers(values).items():
            flags[student].append(f"{stem} {key} = {values[student]:.4g} is far from the class "
                                  f"(median {median:.4g}, robust z = {zscore:+.1f})")
    groups: dict[tuple[str, str, int], list[str]] = {}
    for r in results:
        for grade_id, (digest, lines) in sorted(r.fingerprints.items()):
            groups.setdefault((grade_id, digest, lines), []).append(r.student)
    for (grade_id, _, lines), same in sorted(groups.items()):
        if len(same) > 1:
            for student in same:
                others = ", ".join(s for s in same if s != student)
                flags[student].append(f"{grade_id}: solution identical to {others}'s "
                                      f"({lines} lines beyond the code the notebook shows)")
    return flags


_TIMING = re.compile(r"(^|_)(seconds|minutes|hours|time|per_s|s)($|_)")


def is_timing(key: str) -> bool:
    """A wall-clock figure (``train_seconds``, ``train_images_per_s``, ``seconds_clip_cache``):
    shown in the report, never tested for outliers — it measures the laptop, not the work."""
    return bool(_TIMING.search(key))


def _numeric(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# --------------------------------------------------------------------------- the report
def build_report(results: list[NotebookResult], expected: list[str], ignored: list[str]) -> dict:
    """The report as plain data: one row per student (a dict of columns), and the details."""
    flags = class_flags(results)
    exercises = [ex for ex in EXERCISES if ex.notebook in expected]
    questions = [q for q in QUESTIONS if q.notebook in expected]
    rows = []
    for student in dict.fromkeys(r.student for r in results):
        mine = {r.notebook: r for r in results if r.student == student}
        row: dict[str, object] = {"student": student}
        for stem in expected:
            r = mine[stem]
            row[stem] = "ok" if r.status == "ok" else (f"{r.status}: {r.error}" if r.error else r.status)
        total = maximum = 0.0
        for ex in exercises:
            score = mine[ex.notebook].exercises[ex.grade_id]
            row[f"{ex.grade_id} (/{ex.points:g})"] = score["score"]
            total, maximum = total + score["score"], maximum + score["max_score"]
        row["exercise points"] = total
        row["out of"] = maximum
        written = ungraded = 0.0
        for q in questions:
            given = mine[q.notebook].questions.get(q.grade_id, 0.0)
            row[f"{q.grade_id} (/{q.points:g} written)"] = given
            if given == manual.UNGRADED:
                ungraded += 1
            else:
                written += float(given)
        if questions:
            row["question points"] = written
            row["questions out of"] = float(sum(q.points for q in questions))
            row["ungraded answers"] = int(ungraded)
        for stem in expected:
            for key, value in _numeric(mine[stem].metrics).items():
                row[f"{stem}: {key}"] = value
        row["flags"] = "; ".join(flags[student])
        rows.append(row)
    return {"notebooks": expected, "exercises": [ex.grade_id for ex in exercises],
            "questions": [q.grade_id for q in questions], "rows": rows,
            "flags": flags, "results": [asdict(r) for r in results], "ignored": ignored}


def write_report(report: dict, out: Path) -> None:
    """``class_report.csv``, ``class_report.html``, ``report.json`` and the contact sheets in ``out``."""
    metrics = sorted({key for row in report["rows"] for key in row if key.split(": ")[0] in report["notebooks"]
                      and ": " in key})
    first = [key for key in report["rows"][0] if key not in metrics and key != "flags"] if report["rows"] else []
    table = pd.DataFrame(report["rows"], columns=first + metrics + ["flags"])
    table.to_csv(out / "class_report.csv", index=False)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    sheets = write_contact_sheets(report, out)
    details = []
    for r in report["results"]:
        failed = [f"<li><b>{html.escape(g)}</b>: {html.escape(s['message'])}</li>"
                  for g, s in r["exercises"].items() if s["score"] < s["max_score"] and s["message"]]
        if failed:
            details.append(f"<h3>{html.escape(r['student'])} · {html.escape(r['notebook'])}</h3><ul>{''.join(failed)}</ul>")
    flagged = table["flags"].astype(bool) if "flags" in table else pd.Series(dtype=bool)
    styled = table.style.apply(lambda row: ["background:#fde2e1" if flagged.loc[row.name] else "" for _ in row],
                               axis=1).hide(axis="index")
    links = "".join(f'<li><a href="{html.escape(rel)}">{html.escape(name)}</a></li>' for name, rel in sheets)
    ungraded = sum(int(row.get("ungraded answers", 0)) for row in report["rows"])
    questions = (f"<p>{ungraded} answers still ungraded. Read each question's answers side by side, then enter the "
                 f"scores in <code>{manual.SCORES_FILE}</code> and run <code>make grade</code> again:</p><ul>"
                 + "".join(f'<li><a href="questions/{html.escape(g)}.html">{html.escape(g)}</a></li>'
                           for g in report.get("questions", [])) + "</ul>"
                 if report.get("questions") else "<p>none</p>")
    page = f"""<!doctype html><meta charset="utf-8"><title>Class report</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top}}</style>
<h1>Class report</h1>
<p>{len(table)} students · notebooks {', '.join(report['notebooks'])} · rows with flags are red.</p>
{styled.to_html()}
<h2>Why exercises lost points</h2>{''.join(details) or '<p>none</p>'}
<h2>Written questions (graded by hand)</h2>{questions}
<h2>Contact sheets (every student's version of a figure)</h2><ul>{links or '<li>no figures (nothing was executed)</li>'}</ul>
<h2>Files not graded</h2><p>{html.escape(', '.join(report['ignored'])) or 'none'}</p>
"""
    (out / "class_report.html").write_text(page)


def write_contact_sheets(report: dict, out: Path) -> list[tuple[str, str]]:
    """One HTML page per figure (``figures/<notebook>/<figure>.html``) with every student's
    version side by side; returns ``[(notebook/figure, path relative to out)]``."""
    figures: dict[tuple[str, str], dict[str, str]] = {}
    students = list(dict.fromkeys(r["student"] for r in report["results"]))
    for r in report["results"]:
        for name, path in r["figures"].items():
            figures.setdefault((r["notebook"], name), {})[r["student"]] = path
    sheets = []
    for (stem, name), by_student in sorted(figures.items()):
        page = out / "figures" / stem / f"{name}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        cells = []
        for student in students:
            path = by_student.get(student)
            body = (f'<img src="{html.escape(os.path.relpath(path, page.parent))}" style="max-width:100%">'
                    if path else "<p>no figure</p>")
            cells.append(f'<figure style="flex:1 1 30%;min-width:280px;margin:6px">{body}'
                         f"<figcaption><b>{html.escape(student)}</b></figcaption></figure>")
        page.write_text(f"""<!doctype html><meta charset="utf-8"><title>{html.escape(stem)} · {html.escape(name)}</title>
<h1>{html.escape(stem)} · {html.escape(name)}</h1><div style="display:flex;flex-wrap:wrap">{''.join(cells)}</div>
""")
        sheets.append((f"{stem}/{name}", str(page.relative_to(out))))
    index = "".join(f'<li><a href="{html.escape(os.path.relpath(out / rel, out / "figures"))}">{html.escape(n)}</a></li>'
                    for n, rel in sheets)
    (out / "figures").mkdir(exist_ok=True)
    (out / "figures" / "index.html").write_text(f'<!doctype html><meta charset="utf-8"><h1>Figures</h1><ul>{index}</ul>\n')
    return sheets


def print_summary(report: dict) -> None:
    """The table's essentials on the console."""
    print(f"\nClass report ({len(report['rows'])} students):")
    for row in report["rows"]:
        notebooks = ", ".join(f"{stem[:2]} {str(row[stem]).split(':')[0]}" for stem in report["notebooks"])
        written = (f" · written {row['question points']:g}/{row['questions out of']:g}"
                   + (f" ({row['ungraded answers']} ungraded)" if row["ungraded answers"] else "")
                   if "question points" in row else "")
        print(f"  {row['student']:<16} {row['exercise points']:g}/{row['out of']:g} points{written} · {notebooks}"
              + (f"\n    ⚑ {row['flags']}" if row["flags"] else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, help="folder with one sub-folder per student")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default outputs/grading)")
    parser.add_argument("--no-execute", action="store_true",
                        help="do not run the notebooks: read their stored outputs (no figures, no metrics)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    for key, value in {"LAB_PROFILE": "quick", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "OMP_WAIT_POLICY": "PASSIVE", "PYTHONHASHSEED": "0"}.items():
        os.environ.setdefault(key, value)
    out = args.out or (repo_root() / "outputs" / "grading")
    report = grade_class(args.submissions, out, execute=not args.no_execute, timeout=args.timeout)
    print_summary(report)
    print(f"\nReport: {out / 'class_report.html'} (and class_report.csv, figures/index.html)")
    if report.get("questions"):
        print(f"Written answers: {out / 'questions'}/<question>.html; scores go in {out / manual.SCORES_FILE}, "
              "then run make grade again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
