"""Written questions, graded by hand: one page per question with every student's answer side by
side, and a scores file the instructor fills in.

``make grade`` writes, under its report folder:

* ``questions/<grade_id>.html``: the question, the model answer and rubric (instructor's
  notebooks), then each student's answer in a box of its own;
* ``manual_scores.csv``: one row per student and question (``student, question, points, score,
  comment``). Fill in ``score`` (0 … points) and run ``make grade`` again: the class report adds
  the scores. The file is never overwritten: rows for new students or questions are appended,
  filled rows are kept as they are. A question a student left unanswered scores 0 by itself; an
  answered one with no score yet is shown as ``ungraded``.
"""
from __future__ import annotations

import csv
import html
from pathlib import Path

from .cells import Question

SCORES_FILE = "manual_scores.csv"
COLUMNS = ("student", "question", "points", "score", "comment")
UNGRADED = "ungraded"


class ManualScoresError(ValueError):
    """``manual_scores.csv`` holds something that is not a score."""


def read_scores(path: Path, questions: dict[str, Question]) -> dict[tuple[str, str], dict]:
    """``{(student, question): row}`` from the scores file (``{}`` when there is none).

    Raises:
        ManualScoresError: a score that is not a number in [0, points], or a file without the
            expected columns (the message names the line and what is allowed).
    """
    if not path.exists():
        return {}
    rows: dict[tuple[str, str], dict] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManualScoresError(f"{path}: columns {missing} are missing (found {reader.fieldnames}). Expected "
                                    f"{', '.join(COLUMNS)}; delete the file to get a fresh one (your scores would be lost: "
                                    "rename it instead).")
        for line, row in enumerate(reader, start=2):
            key = (row["student"], row["question"])
            score = (row["score"] or "").strip()
            if score:
                question = questions.get(row["question"])
                maximum = question.points if question else float(row["points"] or 0)
                try:
                    value = float(score)
                except ValueError:
                    value = float("nan")
                if not 0 <= value <= maximum:
                    raise ManualScoresError(f"{path}, line {line}: score {score!r} for {row['student']} · "
                                            f"{row['question']} is not a number from 0 to {maximum:g}. Correct it "
                                            "and run make grade again (leave it empty while ungraded).")
            rows[key] = dict(row)
    return rows


def update_scores_file(path: Path, answers: dict[str, dict[str, str]], questions: dict[str, Question]
                       ) -> dict[tuple[str, str], dict]:
    """Add a row for each (student, question) the file lacks and return every row; existing
    rows, filled or not, are kept as they are. ``answers``: ``{student: {question: text}}``."""
    rows = read_scores(path, questions)
    added = False
    for student, mine in answers.items():
        for grade_id in mine:
            if (student, grade_id) not in rows:
                rows[(student, grade_id)] = {"student": student, "question": grade_id,
                                             "points": f"{questions[grade_id].points:g}", "score": "", "comment": ""}
                added = True
    if added or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows.values())
        tmp.replace(path)
    return rows


def score(rows: dict[tuple[str, str], dict], student: str, grade_id: str, answer: str) -> float | str:
    """The score of one answer: the instructor's, 0 when unanswered, else ``UNGRADED``."""
    given = (rows.get((student, grade_id), {}).get("score") or "").strip()
    if given:
        return float(given)
    return 0.0 if not answer else UNGRADED


def write_question_pages(out: Path, answers: dict[str, dict[str, str]], questions: dict[str, Question],
                         rows: dict[tuple[str, str], dict]) -> list[tuple[str, str]]:
    """``questions/<grade_id>.html`` for each question anyone was asked; returns
    ``[(grade_id, path relative to out)]``."""
    pages = []
    folder = out / "questions"
    folder.mkdir(parents=True, exist_ok=True)
    for grade_id, question in questions.items():
        boxes = []
        for student, mine in answers.items():
            if grade_id not in mine:
                continue
            text = mine[grade_id]
            given = score(rows, student, grade_id, text)
            status = "no answer (0)" if not text else (f"score {given:g}/{question.points:g}"
                                                       if given != UNGRADED else UNGRADED)
            body = html.escape(text) if text else "<i>no answer</i>"
            boxes.append(f'<section style="border:1px solid #bbb;margin:8px;padding:8px">'
                         f"<h3>{html.escape(student)} · {html.escape(status)}</h3>"
                         f'<div style="white-space:pre-wrap">{body}</div></section>')
        page = folder / f"{grade_id}.html"
        page.write_text(f"""<!doctype html><meta charset="utf-8"><title>{html.escape(grade_id)}</title>
<style>body{{font-family:sans-serif;max-width:60em}}</style>
<h1>{html.escape(grade_id)} ({question.notebook}, {question.points:g} points)</h1>
<div style="white-space:pre-wrap">{html.escape(question.prompt)}</div>
<details open><summary><b>Model answer and rubric</b></summary>
<div style="white-space:pre-wrap;background:#f4f4f4;padding:6px">{html.escape(question.answer)}</div></details>
<p>Scores go in <code>{SCORES_FILE}</code> (column <code>score</code>, 0 to {question.points:g}); then run
<code>make grade</code> again.</p>
<h2>Answers</h2>{''.join(boxes) or '<p>nobody was asked this question</p>'}
""")
        pages.append((grade_id, str(page.relative_to(out))))
    return pages
