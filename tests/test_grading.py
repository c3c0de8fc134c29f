"""The student edition and class grading (lab_tools.grading): nbgrader's student edition, the
flags, and `make grade` on a generated class (one correct, one typical mistake, one crash, one missing notebook)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lab_tools.grading.cells import EXERCISES
from lab_tools.grading.course import STUB, exercise_extract, generate_student_edition
from lab_tools.grading.grade import (NotebookResult, build_report, class_flags, find_submissions, lab_notebooks,
                                     robust_outliers, stored_status, write_report)

from _solutions import solution_cell as _solution

ROOT = Path(__file__).resolve().parents[1]


def test_student_edition_stubs_solutions_hides_tests_and_clears_outputs(tmp_path):
    notebook = ROOT / "notebooks" / "01_vit_patching.ipynb"
    [released] = generate_student_edition([notebook], tmp_path / "course")
    original = nbformat.read(notebook, as_version=4)
    student = nbformat.read(released, as_version=4)
    assert [c.get("id") for c in student.cells] == [c.get("id") for c in original.cells]
    text = json.dumps([c.source for c in student.cells])
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "seed=10", "must be multiples of the patch size"):
        assert marker not in text
    by_id = {c.id: c for c in student.cells}
    assert 'raise NotImplementedError("not implemented yet — see the hint above")' in by_id["ex01-patchify-solution"].source
    assert by_id["ex01-patchify-tests"].source.rstrip().endswith("check_patchify_rejects(my_patchify)")
    assert by_id["ex01-patchify-tests"].metadata["editable"] is False
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    answer = by_id["q01-attention-maps-answer"]                           # a written question: the model answer goes
    assert answer.source.strip() == "YOUR ANSWER HERE" and answer.metadata["nbgrader"]["grade"] is True
    # everything that is not an exercise or a question is the lab's notebook, unchanged
    assert all(by_id[c.id].source == c.source for c in original.cells
               if not {"exercise", "question"} & set(c.metadata.get("tags", [])))


def test_solutions_are_found_even_when_an_editor_dropped_the_cell_metadata():
    solved = nbformat.read(ROOT / "notebooks" / "01_vit_patching.ipynb", as_version=4)
    student = nbformat.from_dict(json.loads(json.dumps(solved)))
    for cell in student.cells:
        cell.metadata = {}
        if cell.get("id") == "ex01-patchify-solution":
            cell.source = cell.source.replace("x.permute(0, 2, 4, 1, 3, 5)", "x.permute(0, 2, 4, 3, 5, 1)")
    student.cells = [c for c in student.cells if c.get("id") != "ex01-self-attention-solution"]
    extract = exercise_extract(solved, solutions_from=student)
    by_id = {c.id: c for c in extract.cells}
    assert [c.id for c in extract.cells] == ["lab-imports", "ex01-patchify-task", "ex01-patchify-solution",
                                             "ex01-patchify-tests", "ex01-self-attention-task",
                                             "ex01-self-attention-solution", "ex01-self-attention-tests"]
    assert "x.permute(0, 2, 4, 3, 5, 1)" in by_id["ex01-patchify-solution"].source
    assert by_id["ex01-self-attention-solution"].source == STUB              # deleted: nothing to grade
    assert by_id["ex01-patchify-tests"].source == next(c for c in solved.cells if c.get("id") == "ex01-patchify-tests").source
    assert by_id["ex01-patchify-tests"].metadata["nbgrader"]["points"] == 2


def test_submissions_are_found_by_notebook_number(tmp_path):
    for name in ("ann/Copy of 01_vit_patching.ipynb", "ann/notes.ipynb", "ben/02_clip_contrastive (1).ipynb",
                 "cid/README.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    students, ignored = find_submissions(tmp_path, lab_notebooks(ROOT))
    assert students == {"ann": {"01_vit_patching": tmp_path / "ann/Copy of 01_vit_patching.ipynb"},
                        "ben": {"02_clip_contrastive": tmp_path / "ben/02_clip_contrastive (1).ipynb"},
                        "cid": {}}
    assert ignored == ["ann/notes.ipynb"]
    with pytest.raises(NotADirectoryError, match="one sub-folder per"):
        find_submissions(tmp_path / "nope", lab_notebooks(ROOT))


def test_outliers_are_far_from_the_class_median():
    accs = {"a": 0.61, "b": 0.64, "c": 0.59, "d": 0.63, "e": 0.12}
    assert list(robust_outliers(accs)) == ["e"]
    same = {"a": 0.6, "b": 0.6, "c": 0.6, "d": 0.6, "e": 0.9}       # no median spread: the mean deviation serves
    assert robust_outliers(same) == {"e": pytest.approx(4.0, abs=0.1)}
    assert robust_outliers({"a": 0.6, "b": 0.1, "c": 0.6}) == {}          # too few to have a spread
    assert robust_outliers({k: 0.5 for k in "abcd"}) == {}


def test_flags_missing_notebooks_and_crashes():
    results = [
        NotebookResult("amy", "02_clip_contrastive", "ok"),
        NotebookResult("eve", "02_clip_contrastive", "missing", "not handed in"),
        NotebookResult("kim", "02_clip_contrastive", "failed", "cell 9 (id 873c62b9): NameError: name 'model' is not defined"),
    ]
    flags = class_flags(results)
    assert flags["amy"] == []
    assert flags["eve"] == ["02_clip_contrastive missing (handed in by classmates)"]
    assert flags["kim"] == ["02_clip_contrastive did not run (failed: cell 9 (id 873c62b9): NameError: "
                            "name 'model' is not defined)"]


def test_report_table_contact_sheets_and_outlier_flag(tmp_path):
    png = tmp_path / "runs"
    png.mkdir()
    results = []
    for i, (student, acc) in enumerate({"ann": 0.61, "ben": 0.64, "cat": 0.59, "dan": 0.63, "eli": 0.12}.items()):
        figure = png / f"{student}.png"
        figure.write_bytes(b"png")
        metrics = {"val_acc": acc, "note": "text is not a metric"} | ({"extra": 1.0} if student == "eli" else {})
        scores = {"ex01_patchify": {"score": 2.0 * (i % 2), "max_score": 2.0, "message": "" if i % 2 else "AssertionError: ✗ no"},
                  "ex01_self_attention": {"score": 2.0, "max_score": 2.0, "message": ""}}
        written = {"q01_position_embeddings": 1.0, "q01_attention_maps": "ungraded"}
        results.append(NotebookResult(student, "01_vit_patching", "ok", metrics=metrics, exercises=scores, questions=written,
                                      figures={"patch_grid": str(figure)} if student != "cat" else {}))
    report = build_report(results, ["01_vit_patching"], ignored=[])
    write_report(report, tmp_path)
    csv = (tmp_path / "class_report.csv").read_text().splitlines()
    assert csv[0] == ("student,01_vit_patching,ex01_patchify (/2),ex01_self_attention (/2),exercise points,out of,"
                      "q01_position_embeddings (/2 written),q01_attention_maps (/2 written),question points,"
                      "questions out of,ungraded answers,01_vit_patching: extra,01_vit_patching: val_acc,flags")
    assert csv[5] == ('eli,ok,0.0,2.0,2.0,4.0,1.0,ungraded,1.0,4.0,1,1.0,0.12,"01_vit_patching val_acc = 0.12 is far '
                      'from the class (median 0.61, robust z = -16.5)"')
    assert [row["flags"] == "" for row in report["rows"]] == [True, True, True, True, False]
    page = (tmp_path / "class_report.html").read_text()
    red = page.split("{\n  background: #fde2e1;")[0].rsplit("<style", 1)[1]     # the cells painted red
    assert re.findall(r"_row(\d+)_col\d+", red) == ["4"] * len(csv[0].split(","))   # eli's row, every cell
    assert "AssertionError: ✗ no" in page
    sheet = (tmp_path / "figures" / "01_vit_patching" / "patch_grid.html").read_text()
    assert sheet.count("<img") == 4 and sheet.count("no figure") == 1 and '../../runs/ann.png' in sheet


def test_stored_outputs_tell_whether_a_notebook_ran():
    ran = nbformat.read(ROOT / "notebooks" / "01_vit_patching.ipynb", as_version=4)
    assert stored_status(ran) == ("ok", "")
    wrong = nbformat.from_dict(json.loads(json.dumps(ran)))
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue="✗ my_patchify: wrong values", traceback=[])
    next(c for c in wrong.cells if c.get("id") == "ex01-patchify-tests").outputs = [error]
    assert stored_status(wrong) == ("ok", "")                           # a failed exercise is scored, not a crash
    next(c for c in wrong.cells if c.get("id") == "f586914d").outputs = [
        nbformat.v4.new_output("error", ename="NameError", evalue="name 'cfg' is not defined", traceback=[])]
    index = [c.get("id") for c in wrong.cells].index("f586914d")
    assert stored_status(wrong) == ("failed", f"cell {index} (id f586914d): NameError: name 'cfg' is not defined")
    for cell in wrong.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    assert stored_status(wrong)[0] == "not run"


@pytest.mark.parametrize("target, usage", [("grade", "usage: make grade SUBMISSIONS=<folder>"),
                                           ("student", "usage: make student STUDENT_REPO=https://github.com/")])
def test_make_without_its_setting_says_how_to_call_it(tmp_path, target, usage):
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    stamp = tmp_path / "venv-ready"
    stamp.touch()
    done = subprocess.run([make, "-s", "-C", str(ROOT), target, f"PY={sys.executable}", f"STAMP={stamp}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and usage in done.stdout


# --------------------------------------------------------------------------- make grade, end to end
def _class(folder: Path) -> None:
    """alice: notebook 01 solved, one written answer; bob: patchify without the permute; carol:
    alice's solutions, but her patchify uses torch without importing it (the notebook does) and she
    deleted the config cell (the notebook crashes); dave: handed in no lab notebook; erin: her
    patchify calls the lab's."""
    solved = nbformat.read(ROOT / "notebooks" / "01_vit_patching.ipynb", as_version=4)
    for cell in solved.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if cell.get("id", "").endswith("-answer"):          # the student edition's empty answer cells
            cell.source = "YOUR ANSWER HERE"

    def save(student, nb, name="01_vit_patching.ipynb"):
        (folder / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / student / name)

    def copy():
        return nbformat.from_dict(json.loads(json.dumps(solved)))

    def cell(nb, cell_id):
        return next(c for c in nb.cells if c.get("id") == cell_id)

    patchify = next(e for e in EXERCISES if e.grade_id == "ex01_patchify")
    alice = copy()
    cell(alice, "q01-attention-maps-answer").source = "The heads look at <different> patches."
    save("alice", alice)
    bob = copy()
    wrong = "B, C, H, W = images.shape\np = patch_size\nreturn images.reshape(B, (H // p) * (W // p), C * p * p)"
    cell(bob, "ex01-patchify-solution").source = _solution(patchify, wrong)
    save("bob", bob, "Copy of 01_vit_patching.ipynb")
    carol = copy()
    uses_torch = _solution(patchify).replace("import torch\n", "").replace(
        "B, C, H, W = images.shape", "images = torch.as_tensor(images)\n    B, C, H, W = images.shape")
    assert "import torch" not in uses_torch and "torch.as_tensor" in uses_torch
    cell(carol, "ex01-patchify-solution").source = uses_torch
    carol.cells = [c for c in carol.cells if c.get("id") != "8b48f8dd"]      # the cell that loads cfg
    save("carol", carol)
    (folder / "dave").mkdir()
    (folder / "dave" / "Untitled.ipynb").write_text(json.dumps(nbformat.v4.new_notebook()))
    erin = copy()
    cell(erin, "ex01-patchify-solution").source = _solution(
        patchify, "from lab_utils.models import patchify\nreturn patchify(images, patch_size)")
    save("erin", erin)


def test_make_grade_reports_a_class(tmp_path):
    _class(tmp_path / "class")
    env = {k: v for k, v in os.environ.items() if k != "LAB_ROOT"}
    make = shutil.which("make")
    stamp = tmp_path / "venv-ready"      # the running environment is the lab's: make need not build one
    stamp.touch()
    command = ([make, "-s", "-C", str(ROOT), "grade", f"PY={sys.executable}", f"STAMP={stamp}",
                f"SUBMISSIONS={tmp_path / 'class'}", f"GRADING_DIR={tmp_path / 'report'}"] if make else
               [sys.executable, "-m", "lab_tools.grading", "grade", str(tmp_path / "class"), "--out",
                str(tmp_path / "report")])
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "report"
    report = json.loads((out / "report.json").read_text())
    rows = {row["student"]: row for row in report["rows"]}
    assert list(rows) == ["alice", "bob", "carol", "dave", "erin"]
    assert report["notebooks"] == ["01_vit_patching"]
    assert report["ignored"] == ["dave/Untitled.ipynb"]
    patch, attn = "ex01_patchify (/2)", "ex01_self_attention (/2)"
    maps, positions = "q01_attention_maps (/2 written)", "q01_position_embeddings (/2 written)"

    alice = rows["alice"]
    assert (alice["01_vit_patching"], alice[patch], alice[attn], alice["exercise points"], alice["out of"]) == ("ok", 2, 2, 4, 4)
    assert (alice[maps], alice[positions], alice["ungraded answers"]) == ("ungraded", 0, 1)
    assert 0 <= alice["01_vit_patching: val_acc"] <= 1
    assert "ex01_self_attention: solution identical to bob, carol, erin's (" in alice["flags"]   # all kept the lab's
    assert "ex01_patchify: solution identical to" not in alice["flags"]        # carol's and erin's differ

    bob = rows["bob"]                       # the wrong exercise costs its points, the notebook still runs
    assert (bob["01_vit_patching"], bob[patch], bob[attn]) == ("ok", 0, 2)
    bob_patchify = next(r for r in report["results"] if r["student"] == "bob")["exercises"]["ex01_patchify"]
    assert "AssertionError" in bob_patchify["message"] and "permute" in bob_patchify["message"]

    carol = rows["carol"]                   # crashed, but her exercises are still graded, torch from the notebook
    assert carol["01_vit_patching"].startswith("failed: cell ") and "NameError: name 'cfg' is not defined" in carol["01_vit_patching"]
    assert (carol[patch], carol[attn]) == (2, 2)
    assert carol["flags"].startswith("01_vit_patching did not run (failed: cell ")
    assert _absent(carol.get("01_vit_patching: val_acc"))

    dave = rows["dave"]
    assert (dave["01_vit_patching"], dave["exercise points"], dave["ungraded answers"]) == ("missing: not handed in", 0, 0)
    assert dave["flags"] == "01_vit_patching missing (handed in by classmates)"

    erin = rows["erin"]                     # passes the tests, but by calling the lab: 0 and a flag with the reason
    assert (erin["01_vit_patching"], erin[patch], erin[attn]) == ("ok", 0, 2)
    assert erin["flags"].startswith("ex01_patchify: 0 points, the solution calls the lab's patchify")
    erin_patchify = next(r for r in report["results"] if r["student"] == "erin")["exercises"]["ex01_patchify"]
    assert erin_patchify["message"].startswith("0 points: the solution uses the lab's patchify")

    csv = (out / "class_report.csv").read_text().splitlines()
    assert len(csv) == 6 and csv[0].startswith("student,01_vit_patching,ex01_patchify (/2)")
    page = (out / "class_report.html").read_text()
    assert "permute" in page and "figures/01_vit_patching/patch_grid.html" in page
    assert "questions/q01_attention_maps.html" in page and "answers still ungraded" in page
    sheet = (out / "figures" / "01_vit_patching" / "patch_grid.html").read_text()
    for student in ("alice", "bob"):
        assert f"runs/{student}/outputs/01_vit_patching/patch_grid.png" in sheet
        assert (out / "runs" / student / "outputs" / "01_vit_patching" / "patch_grid.png").exists()
    assert sheet.count("no figure") == 2                      # carol (crashed first) and dave
    question = (out / "questions" / "q01_attention_maps.html").read_text()
    assert "The heads look at &lt;different&gt; patches." in question and "bob · no answer (0)" in question
    scores = (out / "manual_scores.csv").read_text().splitlines()
    assert scores[0] == "student,question,points,score,comment" and len(scores) == 1 + 5 * 2


def _absent(value) -> bool:
    """A metric that a crashed run never wrote: missing from the row, or NaN."""
    return value is None or value != value
