"""Grading an instructor can trust: the student release holds no answer, a solution that calls the
lab's own implementation scores 0 with a flag, a solution is graded with the notebook's imports,
flags fire only where there is something to act on, written answers are graded by hand."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lab_tools.grading import answers as A
from lab_tools.grading import manual
from lab_tools.grading.cells import EXERCISES, QUESTIONS
from lab_tools.grading.course import IMPORTS_CELL, exercise_extract
from lab_tools.grading.grade import NotebookResult, class_flags, is_timing
from lab_tools.grading.release import SOLUTIONS_REPO, ReleaseError, check_repo_url, leaks, write_release

ROOT = Path(__file__).resolve().parents[1]
URL = "https://github.com/prof-x/vision-lab-2027"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _hidden_and_solution_lines() -> tuple[set[str], set[str]]:
    """An independent list of what must not ship: every line (≥ 16 characters) of each hidden test
    and model answer, and of each solution region."""
    def lines(texts):
        return {ln.strip() for t in texts for ln in t.splitlines() if len(ln.strip()) >= 16}
    hidden = lines([t for ex in EXERCISES for t in re.findall(r"BEGIN HIDDEN TESTS\n(.*?)### END", ex.tests, re.S)]
                   + [q.answer for q in QUESTIONS])
    solution = lines([t for ex in EXERCISES for t in re.findall(r"BEGIN SOLUTION\n(.*?)### END", ex.solution, re.S)])
    lesson = set()        # lines the lesson itself shows (``with torch.no_grad():``) prove nothing
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if not {"exercise", "question"} & set(cell.metadata.get("tags", [])):
                lesson.update(line.strip() for line in cell.source.splitlines())
    return hidden, solution - lesson


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_release(NOTEBOOKS, tmp_path_factory.mktemp("student") / "vision-lab-2027", URL, ROOT)


def test_the_release_is_a_complete_lab_without_the_answers(release):
    files = sorted(str(p.relative_to(release)) for p in release.rglob("*") if p.is_file())
    assert [f"notebooks/{p.name}" for p in NOTEBOOKS] == [f for f in files if f.startswith("notebooks/")]
    for needed in ("README.md", "requirements.txt", "environment.yml", "pyproject.toml", "configs/fusion.yml",
                   "data/README.md", "lab_utils/config.py", "lab_utils/exercises.py"):
        assert needed in files
    assert not [f for f in files if f.startswith(("tests/", "benchmarks/", ".ci/", "lab_tools/"))]  # no cells.py:
    assert not [f for f in files if "grading" in f]                       # no solutions, no hidden tests
    assert "requirements-instructor" not in (release / "environment.yml").read_text()

    hidden, solution = _hidden_and_solution_lines()
    assert hidden and solution
    for path in (release / f for f in files):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            nb = nbformat.reads(text, as_version=4)
            text = "\n".join(c.source for c in nb.cells)
            assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", SOLUTIONS_REPO):
            assert marker not in text, (path, marker)
        lines = {line.strip() for line in text.splitlines()}
        assert not hidden & lines, path
        if path.suffix == ".ipynb":
            assert not solution & lines, path                                 # no solved notebook
    assert leaks(release) == []


def test_the_release_clones_the_student_repository_and_changes_nothing_else(release):
    for path in NOTEBOOKS:
        lab = nbformat.read(path, as_version=4)
        mine = nbformat.read(release / "notebooks" / path.name, as_version=4)
        assert [c.get("id") for c in mine.cells] == [c.get("id") for c in lab.cells]
        text = "\n".join(c.source for c in mine.cells)
        assert f'"git", "clone", "-q", "{URL}"' in text
        assert f"colab.research.google.com/github/prof-x/vision-lab-2027/blob/main/notebooks/{path.name}" in text
        tagged = ("exercise", "question")
        changed = [c.id for c, m in zip(lab.cells, mine.cells) if c.source != m.source
                   and not set(tagged) & set(c.metadata.get("tags", []))]
        assert len(changed) == 2, changed            # the badge cell and the Colab set-up cell only


def test_the_release_imports_on_its_own(release):
    code = ("import lab_utils.config, lab_utils.exercises, lab_utils.cost; "
            "import sys; assert not [m for m in sys.modules if m.split('.')[0] in ('lab_tools', 'nbgrader')]; "
            "import os; assert os.path.abspath(lab_utils.exercises.__file__).startswith(os.getcwd()); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=release, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(release), "HOME": str(release)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_an_answer_in_any_file_is_found(tmp_path):
    hidden, solution = _hidden_and_solution_lines()
    (tmp_path / "notes.py").write_text(f"# copied\n    {sorted(hidden)[0]}\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(sorted(solution)[0])])
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    (tmp_path / "README.md").write_text(f"clone {SOLUTIONS_REPO}\n")
    found = leaks(tmp_path)
    assert any(f.startswith("notes.py: the answer line") for f in found)
    assert any(f.startswith("01_x.ipynb: the answer line") for f in found)
    assert any(f.startswith("README.md:") and SOLUTIONS_REPO in f for f in found)


@pytest.mark.parametrize("url, message", [
    (None, "make student needs STUDENT_REPO"),
    ("  ", "make student needs STUDENT_REPO"),
    ("my-course", "is not a git repository URL"),
    (SOLUTIONS_REPO + ".git", "is the solutions' repository"),
])
def test_a_bad_student_repo_is_refused_with_what_to_do(url, message):
    with pytest.raises(ReleaseError, match=message) as err:
        check_repo_url(url)
    assert "make student STUDENT_REPO=https://github.com/<you>/<course>-lab" in str(err.value)


# --------------------------------------------------------------------------- what a solution uses
@pytest.mark.parametrize("source, reference, used", [
    ("def f(x, p):\n    return patchify(x, p)", ("patchify",), ["patchify"]),
    ("from lab_utils.models import patchify as cut\ndef f(x, p):\n    return cut(x, p)", ("patchify",), ["patchify"]),
    ("import lab_utils.models.vit as v\ndef f(x, p):\n    return v.patchify(x, p)", ("patchify",), ["patchify"]),
    ("import lab_utils\ndef f(x, p):\n    return lab_utils.models.vit.something(x)", ("lab_utils.models.vit",),
     ["lab_utils.models.vit"]),
    ("from lab_utils.training import *\n", ("lab_utils.training",), ["lab_utils.training"]),
    ("def f(x, p):\n    my_patchify = 1\n    return x.reshape(2, -1)  # not patchify", ("patchify",), []),
    ("def f(x:\n", ("patchify",), []),
])
def test_reference_uses_finds_the_lab_function_however_it_is_reached(source, reference, used):
    assert A.reference_uses(source, reference) == used


def test_every_exercise_names_what_it_reimplements_and_its_own_solution_uses_none():
    for ex in EXERCISES:
        assert ex.reference, f"{ex.grade_id}: Exercise.reference is empty"
        assert A.reference_uses(ex.solution, ex.reference) == [], ex.grade_id


def test_the_extract_puts_the_notebooks_imports_first():
    solved = nbformat.read(ROOT / "notebooks" / "01_vit_patching.ipynb", as_version=4)
    extract = exercise_extract(solved)
    first = extract.cells[0]
    assert first.id == IMPORTS_CELL and "import torch" in first.source
    assert all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.parse(first.source).body)
    assert "google.colab" not in first.source               # inside an if: not a top-level import
    again = exercise_extract(extract)                       # an extract of an extract keeps the same cell
    assert again.cells[0].source == first.source and [c.id for c in again.cells] == [c.id for c in extract.cells]


def test_a_solution_without_its_own_imports_runs_with_the_notebooks():
    solved = nbformat.read(ROOT / "notebooks" / "01_vit_patching.ipynb", as_version=4)
    extract = exercise_extract(solved)
    namespace: dict = {}
    exec(extract.cells[0].source, namespace)  # noqa: S102 — the lab's own imports
    exec("def uses_torch(x):\n    return torch.as_tensor(x).sum()", namespace)  # noqa: S102
    assert float(namespace["uses_torch"]([1, 2])) == 3.0


# --------------------------------------------------------------------------- flags
def _result(student, notebook="01_vit_patching", **kwargs):
    return NotebookResult(student, notebook, "ok", **kwargs)


def test_identical_solutions_are_flagged_per_exercise_and_only_beyond_the_shown_code():
    solved = nbformat.read(ROOT / "notebooks" / "01_vit_patching.ipynb", as_version=4)
    ex = next(e for e in EXERCISES if e.grade_id == "ex01_patchify")
    shown = A.shown_lines(solved, ex)
    own = ("import torch\ndef my_patchify(images, patch_size):\n    B, C, H, W = images.shape\n    p = patch_size\n"
           "    if H % p or W % p:\n        raise ValueError('no')\n    x = images.unfold(2, p, p).unfold(3, p, p)\n"
           "    return x.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * p * p)")
    printed = A.fingerprint(own, shown)
    assert printed is not None and printed[1] >= A.MIN_OWN_LINES
    same_spaced = own.replace("    p = patch_size", "    p = patch_size   # the side").replace(" * ", "*")
    assert A.fingerprint(same_spaced, shown) == printed                     # comments and spacing do not count
    trivial = ex.solution.split("### BEGIN SOLUTION")[0] + "return images"
    assert A.fingerprint(trivial, shown) is None                            # nothing beyond what everyone has
    flags = class_flags([_result("amy", fingerprints={"ex01_patchify": list(printed)}),
                         _result("eve", fingerprints={"ex01_patchify": list(printed)}),
                         _result("kim", fingerprints={}), _result("lou", fingerprints={})])
    lines = printed[1]
    assert flags == {"amy": [f"ex01_patchify: solution identical to eve's ({lines} lines beyond the code the notebook shows)"],
                     "eve": [f"ex01_patchify: solution identical to amy's ({lines} lines beyond the code the notebook shows)"],
                     "kim": [], "lou": []}


def test_timings_never_raise_a_flag_but_results_do():
    times = {"ann": 30.0, "ben": 31.0, "cat": 29.0, "dan": 30.5, "eli": 900.0}
    accs = {"ann": 0.61, "ben": 0.64, "cat": 0.59, "dan": 0.63, "eli": 0.12}
    results = [_result(s, metrics={"train_seconds": t, "train_images_per_s": 1e4 / t, "seconds_clip_cache": t,
                                   "val_acc": accs[s]}) for s, t in times.items()]
    flags = class_flags(results)
    assert flags["eli"] == ["01_vit_patching val_acc = 0.12 is far from the class (median 0.61, robust z = -16.5)"]
    assert all(not flags[s] for s in ("ann", "ben", "cat", "dan"))
    assert is_timing("train_seconds") and is_timing("train_images_per_s") and not is_timing("test_macro_f1")


def test_a_reference_call_is_flagged_with_its_reason():
    flags = class_flags([_result("amy", references={"ex01_patchify": ["patchify"]})])
    assert flags["amy"] == ["ex01_patchify: 0 points, the solution calls the lab's patchify "
                            "(the function it is asked to write)"]


# --------------------------------------------------------------------------- written questions
def test_every_notebook_has_written_questions_with_a_rubric():
    by_notebook = {p.stem: [q for q in QUESTIONS if q.notebook == p.stem] for p in NOTEBOOKS}
    assert all(1 <= len(qs) <= 2 for qs in by_notebook.values()), {k: len(v) for k, v in by_notebook.items()}
    for q in QUESTIONS:
        assert q.prompt.strip() and "rubric" in q.answer.lower(), q.grade_id


def test_written_answers_are_read_and_the_stub_is_no_answer():
    q = QUESTIONS[0]
    cell = nbformat.v4.new_markdown_cell("Because the heads …", id=f"{q.grade_id.replace('_', '-')}-answer")
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert A.written_answers(nb, [q.grade_id]) == {q.grade_id: "Because the heads …"}
    cell.source = A.UNANSWERED
    assert A.written_answers(nb, [q.grade_id]) == {q.grade_id: ""}
    assert A.written_answers(nbformat.v4.new_notebook(), [q.grade_id]) == {q.grade_id: ""}


def test_the_scores_file_keeps_what_the_instructor_wrote(tmp_path):
    q1, q2 = QUESTIONS[0], QUESTIONS[1]
    questions = {q.grade_id: q for q in (q1, q2)}
    path = tmp_path / manual.SCORES_FILE
    rows = manual.update_scores_file(path, {"amy": {q1.grade_id: "text"}}, questions)
    assert manual.score(rows, "amy", q1.grade_id, "text") == manual.UNGRADED
    text = path.read_text().replace(f"amy,{q1.grade_id},{q1.points:g},,", f"amy,{q1.grade_id},{q1.points:g},1,")
    path.write_text(text)
    rows = manual.update_scores_file(path, {"amy": {q1.grade_id: "text", q2.grade_id: ""},
                                            "bo": {q1.grade_id: "other"}}, questions)
    assert manual.score(rows, "amy", q1.grade_id, "text") == 1.0            # kept
    assert manual.score(rows, "amy", q2.grade_id, "") == 0.0                # unanswered scores 0
    assert manual.score(rows, "bo", q1.grade_id, "other") == manual.UNGRADED
    assert len(path.read_text().strip().splitlines()) == 4
    path.write_text(path.read_text().replace(f"amy,{q1.grade_id},{q1.points:g},1,", f"amy,{q1.grade_id},{q1.points:g},9,"))
    with pytest.raises(manual.ManualScoresError, match=r"line 2: score '9' .* is not a number from 0 to"):
        manual.update_scores_file(path, {}, questions)
    assert "amy" in path.read_text()                                       # nothing lost


def test_question_pages_put_the_answers_side_by_side(tmp_path):
    q = QUESTIONS[0]
    answers = {"amy": {q.grade_id: "The <b>heads</b> differ"}, "bo": {q.grade_id: ""}}
    rows = manual.update_scores_file(tmp_path / manual.SCORES_FILE, answers, {q.grade_id: q})
    [(grade_id, rel)] = manual.write_question_pages(tmp_path, answers, {q.grade_id: q}, rows)
    page = (tmp_path / rel).read_text()
    assert grade_id == q.grade_id and "The &lt;b&gt;heads&lt;/b&gt; differ" in page
    assert "amy · ungraded" in page and "bo · no answer (0)" in page and "Model answer and rubric" in page


def test_report_rows_carry_question_scores_and_the_ungraded_count():
    from lab_tools.grading.grade import _exercise_scores, build_report
    q = next(q for q in QUESTIONS if q.notebook == "01_vit_patching")
    scores = _exercise_scores("01_vit_patching", None, "ok")
    results = [_result("amy", questions={q.grade_id: manual.UNGRADED}, exercises=scores),
               _result("bo", questions={q.grade_id: 1.0}, exercises=scores)]
    rows = {r["student"]: r for r in build_report(results, ["01_vit_patching"], [])["rows"]}
    column = f"{q.grade_id} (/{q.points:g} written)"
    assert rows["amy"][column] == "ungraded" and rows["amy"]["ungraded answers"] == 1
    assert rows["bo"][column] == 1.0 and rows["bo"]["question points"] == 1.0 and rows["bo"]["ungraded answers"] == 0
    assert json.dumps(rows)                                                   # plain data


def test_the_readme_lists_every_exercise_and_question_with_its_points():
    readme = (ROOT / "README.md").read_text()
    for item in (*EXERCISES, *QUESTIONS):
        assert f"| {item.notebook[:2]} | `{item.grade_id}` ({item.points:g}) |" in readme, item.grade_id
    total = sum(e.points for e in EXERCISES), sum(q.points for q in QUESTIONS)
    assert f"{len(EXERCISES)} exercises ({total[0]:g} points, autograded) and {len(QUESTIONS)} written questions " \
           f"({total[1]:g} points, graded by hand)" in readme
