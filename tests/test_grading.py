"""The student edition and class grading (lab_utils.grading): each exercise's checks, the
hints typical mistakes get, nbgrader's student edition, the flags, and `make grade` on a
generated class (one correct, one typical mistake, one crash, one missing notebook)."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lab_utils.grading import exercises as X
from lab_utils.grading.cells import EXERCISES, exercise_cells
from lab_utils.grading.course import STUB, exercise_extract, generate_student_edition
from lab_utils.grading.grade import (NotebookResult, build_report, class_flags, find_submissions, lab_notebooks,
                                     robust_outliers, solution_fingerprint, stored_status, write_report)

ROOT = Path(__file__).resolve().parents[1]


def _solution(ex, body: str | None = None) -> str:
    """The exercise's solution cell with its solution region kept, or replaced by ``body``."""
    head, rest = ex.solution.split("### BEGIN SOLUTION", 1)
    region, tail = rest.split("### END SOLUTION", 1)
    indent = head.rsplit("\n", 1)[-1]
    if body is None:
        return head + region.strip("\n").lstrip() + tail
    return head + body.replace("\n", "\n" + indent) + tail


def _run(source: str, tests: str) -> dict:
    namespace: dict = {}
    exec(source, namespace)   # noqa: S102 — the lab's own exercise cells
    exec(tests, namespace)    # noqa: S102
    return namespace


@pytest.mark.parametrize("ex", EXERCISES, ids=[e.grade_id for e in EXERCISES])
def test_each_solution_passes_its_public_and_hidden_tests(ex, capsys):
    _run(_solution(ex), ex.tests)
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("✓") for line in lines)


@pytest.mark.parametrize("ex", EXERCISES, ids=[e.grade_id for e in EXERCISES])
def test_the_stub_fails_with_the_clear_error(ex):
    with pytest.raises(NotImplementedError, match="not implemented yet — see the hint above"):
        _run(_solution(ex, STUB), ex.tests)


def _one_sided(img, txt, scale):
    logits = scale * img @ txt.T
    return F.cross_entropy(logits, torch.arange(len(logits)))


def _copied_w(conv):
    new = nn.Conv2d(6, conv.out_channels, conv.kernel_size, conv.stride, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(torch.cat([conv.weight, conv.weight], dim=1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _no_permute(x, p):
    B, C, H, W = x.shape
    return x.reshape(B, (H // p) * (W // p), C * p * p)


def _cls_last(tokens, cls, pos):
    return torch.cat([tokens, cls.expand(len(tokens), -1, -1)], dim=1) + pos


def _same_rate(model, lr, scale=0.1):
    named = list(model.named_parameters())
    return [{"name": "backbone", "params": [p for n, p in named if n.startswith("vit.")], "lr": lr},
            {"name": "head", "params": [p for n, p in named if not n.startswith("vit.")], "lr": lr}]


def _frozen_included(model, lr, scale=0.1):
    named = list(model.named_parameters())
    return [{"name": "backbone", "params": [p for n, p in named if n.startswith("vit.")], "lr": lr * scale},
            {"name": "head", "params": [p for n, p in named if not n.startswith("vit.")], "lr": lr}]


def _first_token(vit, clip, proj, attention):
    tokens = torch.stack([vit, proj(clip)], dim=1)
    return attention(tokens, tokens, tokens)[0][:, 0]


def _recall_columns(sim, k):
    return (sim.T.topk(k, dim=1).indices == torch.arange(len(sim))[:, None]).any(dim=1).float().mean().item()


def _recall_smallest(sim, k):
    return (sim.topk(k, dim=1, largest=False).indices == torch.arange(len(sim))[:, None]).any(dim=1).float().mean()


def _standardize_leaky(train, embeds):
    return (embeds - embeds.mean(0)) / (embeds.std(0) + 1e-6)


def _standardize_rows(train, embeds):
    return (embeds - embeds.mean(1, keepdim=True)) / (embeds.std(1, keepdim=True) + 1e-6)


def _standardize_no_eps(train, embeds):
    return (embeds - train.mean(0)) / train.std(0)


def _lr_no_warmup(step, warmup, total):
    return 0.5 * (1 + math.cos(math.pi * step / total))


def _lr_cosine_from_zero(step, warmup, total):
    return step / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * step / total))


def _lr_unguarded(step, warmup, total):
    ramp, progress = step / warmup, (step - warmup) / (total - warmup)      # ZeroDivisionError without a warm-up
    return ramp if step < warmup else 0.5 * (1 + math.cos(math.pi * progress))


def _train_vs_test(subjects_by_split):
    return subjects_by_split["train"] & subjects_by_split["test"]


def _with_unknown(subjects_by_split):
    seen = [s for subjects in subjects_by_split.values() for s in subjects]
    return {s for s in seen if seen.count(s) > 1}


@pytest.mark.parametrize("check, wrong, kwargs, hint", [
    (X.check_contrastive_loss, _one_sided, {}, "image→text half only"),
    (X.check_contrastive_symmetric, _one_sided, {}, "symmetric loss gives the same number"),
    (X.check_six_channel_stem, _copied_w, {}, "W was copied into both halves"),
    (X.check_patchify, _no_permute, {}, "permute(0, 2, 4, 1, 3, 5)"),
    (X.check_patchify_rejects, _no_permute, {}, "raise ValueError"),
    (X.check_cls_and_positions, _cls_last, {}, "[CLS] was put at the end"),
    (X.check_param_groups, _same_rate, {}, "both groups have the same rate"),
    (X.check_param_groups, _frozen_included, {"freeze_first": True}, "holds frozen weights"),
    (X.check_attention_fuse, _first_token, {}, "only the first token's output"),
    (X.check_recall_at_k, _recall_columns, {}, "you ranked each column"),
    (X.check_recall_at_k, _recall_smallest, {}, "the k smallest similarities"),
    (X.check_standardize, _standardize_leaky, {}, "from the TRAINING embeddings only"),
    (X.check_standardize, _standardize_rows, {}, "each row (image) was normalised"),
    (X.check_standardize, _standardize_no_eps, {"constant_feature": True}, "divide by (std + 1e-6)"),
    (X.check_lr_multiplier, _lr_no_warmup, {}, "there is no warm-up"),
    (X.check_lr_multiplier, _lr_cosine_from_zero, {}, "already decays during the warm-up"),
    (X.check_lr_multiplier, _lr_unguarded, {"warmup_steps": 0, "total_steps": 20}, "max(1, warmup_steps)"),
    (X.check_leaked_subjects, _train_vs_test, {}, "compared train with test only"),
    (X.check_leaked_subjects, _with_unknown, {"subjects_by_split": {"train": {-1, 1}, "test": {-1, 2}}},
     "-1 means 'subject unknown'"),
], ids=["one-sided loss", "one-sided loss (hidden)", "W in both halves", "no permute", "no ValueError",
        "CLS last", "one learning rate", "frozen weights", "ViT token only", "recall by columns",
        "recall of the k smallest", "test statistics", "rows standardised", "no epsilon (hidden)",
        "no warm-up", "cosine during the warm-up", "no warm-up guard (hidden)", "train vs test only",
        "unknown subject (hidden)"])
def test_a_typical_mistake_fails_with_a_hint(check, wrong, kwargs, hint):
    with pytest.raises(AssertionError) as err:
        check(wrong, **kwargs)
    message = str(err.value)
    assert message.startswith("✗") and hint in message


def test_checks_leave_the_notebooks_random_stream_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    for ex in EXERCISES:
        _run(_solution(ex), ex.tests)
    assert torch.equal(torch.rand(3), expected)


def test_every_exercise_sits_in_its_notebook_as_written_in_cells_py():
    for ex in EXERCISES:
        nb = nbformat.read(ROOT / "notebooks" / f"{ex.notebook}.ipynb", as_version=4)
        ids = [c.get("id") for c in nb.cells]
        want = exercise_cells(ex)
        at = ids.index(want[0].id)
        assert ids[at - 1] == ex.after
        for got, cell in zip(nb.cells[at:at + 3], want):
            assert (got.id, got.source, got.metadata["tags"]) == (cell.id, cell.source, ["exercise"])
            assert got.metadata.get("nbgrader") == cell.metadata.get("nbgrader")


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
    # everything that is not an exercise is the lab's notebook, unchanged
    assert all(by_id[c.id].source == c.source for c in original.cells if "exercise" not in c.metadata.get("tags", []))


def test_solutions_are_found_even_when_an_editor_dropped_the_cell_metadata():
    solved = nbformat.read(ROOT / "notebooks" / "01_vit_patching.ipynb", as_version=4)
    student = nbformat.from_dict(json.loads(json.dumps(solved)))
    for cell in student.cells:
        cell.metadata = {}
        if cell.get("id") == "ex01-patchify-solution":
            cell.source = cell.source.replace("x.permute(0, 2, 4, 1, 3, 5)", "x.permute(0, 2, 4, 3, 5, 1)")
    student.cells = [c for c in student.cells if c.get("id") != "ex01-cls-positions-solution"]
    extract = exercise_extract(solved, solutions_from=student)
    by_id = {c.id: c for c in extract.cells}
    assert [c.id for c in extract.cells] == ["ex01-patchify-task", "ex01-patchify-solution", "ex01-patchify-tests",
                                             "ex01-cls-positions-task", "ex01-cls-positions-solution",
                                             "ex01-cls-positions-tests"]
    assert "x.permute(0, 2, 4, 3, 5, 1)" in by_id["ex01-patchify-solution"].source
    assert by_id["ex01-cls-positions-solution"].source == STUB               # deleted: nothing to grade
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


def test_flags_identical_solutions_missing_notebooks_and_crashes():
    solved = nbformat.read(ROOT / "notebooks" / "01_vit_patching.ipynb", as_version=4)
    own = nbformat.from_dict(json.loads(json.dumps(solved)))
    for cell in own.cells:
        if cell.get("id") == "ex01-cls-positions-solution":
            cell.source = cell.source.replace("cls = cls_token", "first = cls_token").replace("[cls, tokens]", "[first, tokens]")
    stubbed = exercise_extract(solved, solutions_from=nbformat.v4.new_notebook())
    assert solution_fingerprint(stubbed) is None                       # nothing written: nothing to compare
    results = [
        NotebookResult("amy", "01_vit_patching", "ok", fingerprint=solution_fingerprint(solved)),
        NotebookResult("eve", "01_vit_patching", "ok", fingerprint=solution_fingerprint(solved)),
        NotebookResult("kim", "01_vit_patching", "ok", fingerprint=solution_fingerprint(own)),
        NotebookResult("amy", "02_clip_contrastive", "ok"),
        NotebookResult("eve", "02_clip_contrastive", "missing", "not handed in"),
        NotebookResult("kim", "02_clip_contrastive", "failed", "cell 9 (id 873c62b9): NameError: name 'model' is not defined"),
    ]
    flags = class_flags(results)
    assert flags["amy"] == ["01_vit_patching: exercise solutions identical to eve"]
    assert flags["eve"] == ["02_clip_contrastive missing (handed in by classmates)",
                            "01_vit_patching: exercise solutions identical to amy"]
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
                  "ex01_cls_positions": {"score": 1.0, "max_score": 1.0, "message": ""}}
        results.append(NotebookResult(student, "01_vit_patching", "ok", metrics=metrics, exercises=scores,
                                      figures={"patch_grid": str(figure)} if student != "cat" else {}))
    report = build_report(results, ["01_vit_patching"], ignored=[])
    write_report(report, tmp_path)
    csv = (tmp_path / "class_report.csv").read_text().splitlines()
    assert csv[0] == ("student,01_vit_patching,ex01_patchify (/2),ex01_cls_positions (/1),exercise points,out of,"
                      "01_vit_patching: extra,01_vit_patching: val_acc,flags")
    assert csv[5] == ('eli,ok,0.0,1.0,1.0,3.0,1.0,0.12,"01_vit_patching val_acc = 0.12 is far from the class '
                      '(median 0.61, robust z = -16.5)"')
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


def test_make_grade_without_a_folder_says_how_to_call_it(tmp_path):
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    stamp = tmp_path / "venv-ready"
    stamp.touch()
    done = subprocess.run([make, "-s", "-C", str(ROOT), "grade", f"PY={sys.executable}", f"STAMP={stamp}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage: make grade SUBMISSIONS=<folder>" in done.stdout


# --------------------------------------------------------------------------- make grade, end to end
def _class(folder: Path) -> None:
    """alice: notebook 01 solved; bob: patchify without the permute; carol: alice's solutions, but
    she deleted the config cell (the notebook crashes); dave: handed in no lab notebook."""
    solved = nbformat.read(ROOT / "notebooks" / "01_vit_patching.ipynb", as_version=4)
    for cell in solved.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None

    def save(student, nb, name="01_vit_patching.ipynb"):
        (folder / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / student / name)

    save("alice", solved)
    bob = nbformat.from_dict(json.loads(json.dumps(solved)))
    patchify = next(e for e in EXERCISES if e.grade_id == "ex01_patchify")
    wrong = "B, C, H, W = images.shape\np = patch_size\nreturn images.reshape(B, (H // p) * (W // p), C * p * p)"
    next(c for c in bob.cells if c.get("id") == "ex01-patchify-solution").source = _solution(patchify, wrong)
    save("bob", bob, "Copy of 01_vit_patching.ipynb")
    carol = nbformat.from_dict(json.loads(json.dumps(solved)))
    carol.cells = [c for c in carol.cells if c.get("id") != "8b48f8dd"]      # the cell that loads cfg
    save("carol", carol)
    (folder / "dave").mkdir()
    (folder / "dave" / "Untitled.ipynb").write_text(json.dumps(nbformat.v4.new_notebook()))


def test_make_grade_reports_a_class(tmp_path):
    _class(tmp_path / "class")
    env = {k: v for k, v in os.environ.items() if k not in ("LAB_ROOT", "LAB_NOTEBOOK")}
    make = shutil.which("make")
    stamp = tmp_path / "venv-ready"      # the running environment is the lab's: make need not build one
    stamp.touch()
    command = ([make, "-s", "-C", str(ROOT), "grade", f"PY={sys.executable}", f"STAMP={stamp}",
                f"SUBMISSIONS={tmp_path / 'class'}", f"GRADING_DIR={tmp_path / 'report'}"] if make else
               [sys.executable, "-m", "lab_utils.grading", "grade", str(tmp_path / "class"), "--out",
                str(tmp_path / "report")])
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "report"
    report = json.loads((out / "report.json").read_text())
    rows = {row["student"]: row for row in report["rows"]}
    assert list(rows) == ["alice", "bob", "carol", "dave"]
    assert report["notebooks"] == ["01_vit_patching"]
    assert report["ignored"] == ["dave/Untitled.ipynb"]
    patch, cls = "ex01_patchify (/2)", "ex01_cls_positions (/1)"

    alice = rows["alice"]
    assert (alice["01_vit_patching"], alice[patch], alice[cls], alice["exercise points"], alice["out of"]) == ("ok", 2, 1, 3, 3)
    assert 0 <= alice["01_vit_patching: val_acc"] <= 1
    assert alice["flags"] == "01_vit_patching: exercise solutions identical to carol"   # both kept the lab's solutions

    bob = rows["bob"]                       # the wrong exercise costs its points, the notebook still runs
    assert (bob["01_vit_patching"], bob[patch], bob[cls]) == ("ok", 0, 1)
    bob_patchify = next(r for r in report["results"] if r["student"] == "bob")["exercises"]["ex01_patchify"]
    assert "AssertionError" in bob_patchify["message"] and "permute(0, 2, 4, 1, 3, 5)" in bob_patchify["message"]

    carol = rows["carol"]                   # crashed, but her exercises are still graded
    assert carol["01_vit_patching"].startswith("failed: cell ") and "NameError: name 'cfg' is not defined" in carol["01_vit_patching"]
    assert (carol[patch], carol[cls]) == (2, 1)
    assert carol["flags"].startswith("01_vit_patching did not run (failed: cell ")
    assert carol["flags"].endswith("; 01_vit_patching: exercise solutions identical to alice")
    assert _absent(carol.get("01_vit_patching: val_acc"))

    dave = rows["dave"]
    assert (dave["01_vit_patching"], dave["exercise points"]) == ("missing: not handed in", 0)
    assert dave["flags"] == "01_vit_patching missing (handed in by classmates)"

    csv = (out / "class_report.csv").read_text().splitlines()
    assert len(csv) == 5 and csv[0].startswith("student,01_vit_patching,ex01_patchify (/2)")
    page = (out / "class_report.html").read_text()
    assert "permute(0, 2, 4, 1, 3, 5)" in page and "figures/01_vit_patching/patch_grid.html" in page
    sheet = (out / "figures" / "01_vit_patching" / "patch_grid.html").read_text()
    for student in ("alice", "bob"):
        assert f"runs/{student}/outputs/01_vit_patching/patch_grid.png" in sheet
        assert (out / "runs" / student / "outputs" / "01_vit_patching" / "patch_grid.png").exists()
    assert sheet.count("no figure") == 2                      # carol (crashed first) and dave


def _absent(value) -> bool:
    """A metric that a crashed run never wrote: missing from the row, or NaN."""
    return value is None or value != value
