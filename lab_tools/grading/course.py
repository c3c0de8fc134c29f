"""nbgrader, driven from Python: the student edition and the autograding of exercises.

nbgrader (https://nbgrader.readthedocs.io) works on a *course directory*::

    <root>/source/<assignment>/NN_….ipynb              the solution notebooks
    <root>/release/<assignment>/NN_….ipynb             the student edition (generate_assignment)
    <root>/submitted/<student>/<assignment>/NN_….ipynb  what students handed in
    <root>/autograded/<student>/<assignment>/…          executed and scored (autograde)
    <root>/gradebook.db                                 scores, in a SQLite file

Two assignments use it:

* ``lab`` (``make student``): the whole notebooks. ``generate_assignment`` replaces each
  ``### BEGIN SOLUTION`` … ``### END SOLUTION`` region with ``STUB`` (it raises a clear
  error), removes the ``### BEGIN HIDDEN TESTS`` parts, locks the test cells and clears the
  outputs. Nothing of nbgrader is needed to open or run the result (on Colab too): its
  marks are cell metadata.
* ``exercises`` (``make grade``): only the cells tagged ``exercise``. The exercises are
  self-contained (they import what they use and compare with ``lab_utils``), so
  ``autograde`` scores a student's solutions in a fresh kernel in seconds, instead of
  re-running the whole notebook; the whole notebook is run once, separately, for its
  figures and metrics (``lab_tools.grading.grade``).
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

import nbformat

from .answers import notebook_imports
from .cells import EXERCISE_TAG, QUESTION_TAG

IMPORTS_CELL = "lab-imports"
"""Id of the cell that puts the notebook's imports in front of its exercises when they are graded alone."""

STUB = '# YOUR CODE HERE\nraise NotImplementedError("not implemented yet — see the hint above")'
"""What a solution region becomes in the student edition (nbgrader's ``ClearSolutions.code_stub``)."""

LAB_ASSIGNMENT = "lab"
EXERCISES_ASSIGNMENT = "exercises"


class GradingError(RuntimeError):
    """nbgrader could not do a step; the message carries the end of its log."""


def _nbgrader_api(root: Path):
    """An ``NbGraderAPI`` on course directory ``root`` with the lab's stub, quiet logs."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    # nbgrader upgrades its gradebook by running the `alembic` command: make the one installed
    # beside this Python findable even when the virtual environment is not activated.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    config = Config()
    config.CourseDirectory.root = str(root.resolve())
    config.CourseDirectory.course_id = "vision-lab"
    config.Exchange.root = str((root / "exchange").resolve())   # unused (no JupyterHub), but must be writable
    config.ClearSolutions.code_stub = {"python": STUB}
    config.Execute.timeout = 300
    return NbGraderAPI(config=config)


def _checked(result: dict, what: str) -> dict:
    if not result.get("success"):
        log = (result.get("error") or "") + "\n" + (result.get("log") or "")
        raise GradingError(f"nbgrader {what} failed:\n{log.strip()[-3000:]}")
    return result


def is_exercise_cell(cell: nbformat.NotebookNode) -> bool:
    """A cell tagged ``exercise`` or carrying nbgrader marks, or (for a notebook whose cell
    metadata an editor dropped) a test cell, recognised by its import of the checks. Written
    questions (tag ``question``) are not: they are graded by hand (``lab_tools.grading.manual``)."""
    meta = cell.get("metadata", {})
    if QUESTION_TAG in meta.get("tags", []):
        return False
    return (EXERCISE_TAG in meta.get("tags", []) or ("nbgrader" in meta and cell.get("cell_type") == "code")
            or (cell.get("cell_type") == "code" and "lab_utils.exercises" in cell.get("source", "")))


_DEF = re.compile(r"^def (\w+)\(", re.MULTILINE)


def student_solutions(student_nb: nbformat.NotebookNode, solution_nb: nbformat.NotebookNode) -> dict[str, str]:
    """``{grade_id: source}`` of the student's solution cells: found by their nbgrader
    ``grade_id``, else (metadata lost on the way) by the function the exercise asks for
    (``def my_patchify(`` …), the last cell that defines it."""
    found: dict[str, str] = {}
    for cell in student_nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id"):
            found[meta["grade_id"]] = cell.source
    for cell in solution_nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if not meta.get("solution") or grade_id in found:
            continue
        names = _DEF.findall(cell.source)
        defining = [c.source for c in student_nb.cells if c.get("cell_type") == "code" and names
                    and re.search(rf"^def {re.escape(names[0])}\(", c.source, re.MULTILINE)]
        if defining:
            found[grade_id] = defining[-1]
    return found


def generate_student_edition(notebooks: list[Path], root: Path) -> list[Path]:
    """Write the student edition of ``notebooks`` to ``root/release/lab/`` (nbgrader
    ``generate_assignment``); returns the written notebooks.

    Raises:
        FileNotFoundError: a notebook does not exist.
        GradingError: nbgrader refused a notebook (its log says which cell).
    """
    source = root / "source" / LAB_ASSIGNMENT
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    for nb in notebooks:
        if not nb.exists():
            raise FileNotFoundError(f"{nb} does not exist; pass the lab's notebooks (notebooks/NN_….ipynb)")
        shutil.copy(nb, source / nb.name)
    _checked(_nbgrader_api(root).generate_assignment(LAB_ASSIGNMENT, force=True), "generate_assignment")
    return sorted((root / "release" / LAB_ASSIGNMENT).glob("*.ipynb"))


def exercise_extract(nb: nbformat.NotebookNode, solutions_from: nbformat.NotebookNode | None = None
                     ) -> nbformat.NotebookNode:
    """The exercise cells of ``nb`` as a notebook of their own (outputs cleared), after a first
    cell with the notebook's imports (``notebook_imports``; kept as it is when ``nb`` is already
    an extract), so that a solution using ``torch`` or ``F`` runs as it does in the notebook.

    With ``solutions_from`` (a student's notebook), each solution cell's source is the
    student's (``student_solutions``); a solution the student deleted becomes ``STUB`` (it
    scores 0). Test cells always come from ``nb``: nbgrader restores
    their hidden parts from its gradebook anyway."""
    student = student_solutions(solutions_from, nb) if solutions_from is not None else {}
    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    imports = next((c for c in nb.cells if c.get("id") == IMPORTS_CELL), None)
    out.cells.append(copy.deepcopy(imports) if imports is not None else nbformat.v4.new_code_cell(
        "# The notebook's imports: a solution may use them as it does in the notebook\n" + notebook_imports(nb),
        id=IMPORTS_CELL))
    for cell in nb.cells:
        if not is_exercise_cell(cell):
            continue
        cell = copy.deepcopy(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            meta = cell.metadata.get("nbgrader", {})
            if solutions_from is not None and meta.get("solution"):
                cell.source = student.get(meta.get("grade_id"), STUB)
        out.cells.append(cell)
    return out


def prepare_exercises(notebooks: list[Path], root: Path) -> None:
    """Register the exercise extracts of the solution ``notebooks`` as nbgrader's
    ``exercises`` assignment in ``root`` (its gradebook then knows every test and its points)."""
    source = root / "source" / EXERCISES_ASSIGNMENT
    source.mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        nbformat.write(exercise_extract(nbformat.read(path, as_version=4)), source / path.name)
    _checked(_nbgrader_api(root).generate_assignment(EXERCISES_ASSIGNMENT, force=True), "generate_assignment")


def submit_exercises(student: str, submitted: dict[str, nbformat.NotebookNode], root: Path) -> None:
    """Place a student's exercise extracts (``{notebook stem: their notebook}``) where
    ``nbgrader autograde`` looks for them."""
    folder = root / "submitted" / student / EXERCISES_ASSIGNMENT
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for stem, student_nb in submitted.items():
        solution_nb = nbformat.read(root / "source" / EXERCISES_ASSIGNMENT / f"{stem}.ipynb", as_version=4)
        nbformat.write(exercise_extract(solution_nb, solutions_from=student_nb), folder / f"{stem}.ipynb")


def autograde(student: str, root: Path) -> dict[str, dict[str, dict]]:
    """Run ``nbgrader autograde`` on a student's submitted exercises and read the gradebook.

    Returns ``{notebook stem: {grade_id: {"score", "max_score", "message"}}}``; ``message`` is
    the first lines of the error a failing test cell raised (``""`` when it passed)."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():        # nbgrader's own SQLAlchemy session notices, not ours to act on
        warnings.filterwarnings("ignore", message=".*not in session.*")
        _checked(_nbgrader_api(root).autograde(EXERCISES_ASSIGNMENT, student, force=True, create=True), "autograde")
    scores: dict[str, dict[str, dict]] = {}
    with Gradebook(f"sqlite:///{(root / 'gradebook.db').resolve()}") as gradebook:
        submission = gradebook.find_submission(EXERCISES_ASSIGNMENT, student)
        for notebook in submission.notebooks:
            messages = _test_messages(root / "autograded" / student / EXERCISES_ASSIGNMENT / f"{notebook.name}.ipynb")
            scores[notebook.name] = {
                grade.name: {"score": float(grade.score), "max_score": float(grade.max_score),
                             "message": messages.get(grade.name, "")}
                for grade in notebook.grades}
    return scores


def _test_messages(path: Path) -> dict[str, str]:
    """``{grade_id: "Error: message"}`` for each test cell of an autograded notebook that raised."""
    if not path.exists():
        return {}
    messages = {}
    for cell in nbformat.read(path, as_version=4).cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and grade_id:
                messages[grade_id] = f"{out.get('ename')}: {out.get('evalue')}".strip()
    return messages
