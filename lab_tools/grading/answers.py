"""What a student wrote, read without running it: the lab names a solution leans on, the lines
that are the student's own, their written answers, and the notebook's imports that grading
puts back.

* ``reference_uses``: an exercise asks to write a piece the lab already has (``patchify``, the
  CLIP loss …); a solution that calls it, or imports from its module, scores 0
  (``Exercise.reference`` lists the names).
* ``own_lines`` / ``fingerprint``: the lines of a solution beyond the code the notebook and the
  task show (normalised: comments, docstrings and spacing dropped). Two students with the same
  non-trivial own lines are flagged; the same three lines every honest student writes are not.
* ``written_answers``: the markdown a student wrote in each written question's answer cell.
* ``notebook_imports``: the notebook's top-level imports, put in front of the exercises when
  they are graded alone, so a solution that uses ``torch`` or ``F`` as the notebook does scores
  as it does in the notebook.
"""
from __future__ import annotations

import ast
import hashlib
import re
from typing import Iterable, Sequence

import nbformat

from .cells import EXERCISE_TAG, Exercise

MIN_OWN_LINES = 3
"""Fewer own lines than this and two equal solutions are what anyone would write: no flag."""
UNANSWERED = "YOUR ANSWER HERE"
"""nbgrader's stub for a written answer in the student edition."""


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for an attribute chain on a name, else ``""``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def reference_uses(source: str, reference: Sequence[str]) -> list[str]:
    """The names of ``reference`` that ``source`` uses: a plain name (``"patchify"``) matches a
    call, an attribute (``models.patchify``) or an import of that name; a dotted module
    (``"lab_utils.models.vit"``) matches importing it, anything from it, or an attribute path
    into it. Source that does not parse uses nothing (its tests fail on their own)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    used: set[str] = set()
    names = {r for r in reference if "." not in r}
    modules = [r for r in reference if "." in r]
    for node in ast.walk(tree):
        found: list[str] = []
        if isinstance(node, ast.Name):
            found = [node.id]
        elif isinstance(node, ast.Attribute):
            found = [node.attr, _dotted(node)]
        elif isinstance(node, ast.Import):
            found = [a.name for a in node.names] + [a.name.rsplit(".", 1)[-1] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found = [node.module] + [a.name for a in node.names] + [f"{node.module}.{a.name}" for a in node.names]
        for item in found:
            if item in names:
                used.add(item)
            used.update(m for m in modules if item == m or item.startswith(m + "."))
    return sorted(used)


def _normalised(source: str) -> list[str]:
    """``source``'s code lines without comments, docstrings, blank lines and spacing."""
    try:
        tree = ast.parse(source)
        for node in ast.walk(tree):      # drop docstrings: they are the scaffold's, or prose
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                body.pop(0)
        source = ast.unparse(tree)
    except SyntaxError:
        pass
    lines = (re.sub(r"\s+", "", line.split("#", 1)[0]) for line in source.splitlines())
    return [line for line in lines if line]


def shown_lines(solution_nb: nbformat.NotebookNode, ex: Exercise) -> set[str]:
    """The code a student sees before writing ``ex``: the notebook's code cells that are not
    exercises, the code in the task's text and the solution cell's scaffold (normalised)."""
    shown: set[str] = set()
    for cell in solution_nb.cells:
        if cell.get("cell_type") == "code" and EXERCISE_TAG not in cell.get("metadata", {}).get("tags", []):
            shown.update(_normalised(cell.source))
    for block in re.findall(r"`([^`]+)`", ex.task):
        shown.update(_normalised(block))
    shown.update(_normalised(ex.scaffold("pass")))
    return shown


def own_lines(source: str, shown: Iterable[str]) -> list[str]:
    """The normalised lines of ``source`` that the notebook and the task do not show."""
    shown = set(shown)
    return [line for line in _normalised(source) if line not in shown and "NotImplementedError" not in line]


def fingerprint(source: str, shown: Iterable[str]) -> tuple[str, int] | None:
    """``(hash of the own lines, how many)``, or ``None`` when there are fewer than
    ``MIN_OWN_LINES`` (nothing beyond what the task shows, or a stub)."""
    mine = own_lines(source, shown)
    if len(mine) < MIN_OWN_LINES:
        return None
    return hashlib.sha256("\n".join(mine).encode()).hexdigest()[:16], len(mine)


def written_answers(student_nb: nbformat.NotebookNode, grade_ids: Iterable[str]) -> dict[str, str]:
    """``{question grade_id: the student's answer}`` (``""`` when not answered: the cell is
    missing or still nbgrader's stub). Found by the cell's nbgrader ``grade_id``, else (an editor
    dropped the metadata) by its id ``<grade id with ->-answer``."""
    wanted = set(grade_ids)
    found: dict[str, str] = {}
    for cell in student_nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id not in wanted:
            grade_id = next((g for g in wanted if cell.get("id") == f"{g.replace('_', '-')}-answer"), None)
        if grade_id and cell.get("cell_type") == "markdown":
            text = cell.source.strip()
            found[grade_id] = "" if text in ("", UNANSWERED) else text
    return {g: found.get(g, "") for g in sorted(wanted)}


def notebook_imports(nb: nbformat.NotebookNode) -> str:
    """The top-level ``import`` / ``from … import`` statements of the notebook's code cells that
    are not exercises, in order, each once (imports inside ``if`` blocks, e.g. Colab's set-up,
    are not top-level and stay out)."""
    seen: dict[str, None] = {}
    for cell in nb.cells:
        if cell.get("cell_type") != "code" or EXERCISE_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "module", None) != "__future__":
                seen[ast.unparse(node)] = None
    return "\n".join(seen)
