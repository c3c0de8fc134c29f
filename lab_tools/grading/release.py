"""The student release: a complete lab without the answers, ready to publish as its own repository.

``make student STUDENT_REPO=https://github.com/<you>/<course-lab>`` writes
``outputs/student/<course-lab>/``:

* ``notebooks/``: nbgrader's student edition (solutions replaced by the stub, hidden tests
  removed, outputs cleared, written answers replaced by "YOUR ANSWER HERE"), whose Colab set-up
  cell and badge point at ``STUDENT_REPO`` — never at the solutions' repository;
* ``lab_utils/``: the package the notebooks import, with ``lab_utils.exercises``, the checks
  the public test cells call (the solutions and hidden tests live in ``lab_tools/grading/cells.py``,
  and ``lab_tools`` is not part of the release);
* ``configs/``, ``data/README.md``, ``checkpoints/README.md``, ``requirements.txt``,
  ``environment.yml`` (without the instructor requirements), ``pyproject.toml``, a student
  ``README.md`` and a ``.gitignore``.

Before it returns, every file of the release is scanned for what must not ship
(``leaks``): nbgrader's solution and hidden-test markers, any line of a solution region or of a
hidden test, a model answer of a written question, and the solutions' repository URL.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat

from .cells import EXERCISES, QUESTIONS
from .course import generate_student_edition

SOLUTIONS_REPO = "https://github.com/vision-course-lab/vision-lab"
"""The repository these solution notebooks clone on Colab; a release must never point there."""

_REPO_URL = re.compile(r"^(https://|git@)[\w.\-]+[/:][\w.\-]+/[\w.\-]+?(\.git)?/?$")
_GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:)([\w.\-]+)/([\w.\-]+?)(?:\.git)?/?$")

COPIED = ("configs", "data/README.md", "checkpoints/README.md", "requirements.txt", "pyproject.toml")
"""What the release copies from the lab as it is (``lab_utils`` and ``environment.yml`` are filtered)."""


class ReleaseError(ValueError):
    """The release cannot be written as asked (no URL, the solutions' URL, an answer found in it)."""


def check_repo_url(url: str | None) -> str:
    """The ``STUDENT_REPO`` URL, validated: a git URL (``https://…/owner/name`` or
    ``git@host:owner/name``) that is not the solutions' repository."""
    how = ("Name the repository you will publish the student edition to: "
           "make student STUDENT_REPO=https://github.com/<you>/<course>-lab "
           "(an empty repository you create for the course; README, 'For instructors').")
    if not url or not url.strip():
        raise ReleaseError(f"make student needs STUDENT_REPO, the URL students will clone. {how}")
    url = url.strip()
    if not _REPO_URL.match(url):
        raise ReleaseError(f"STUDENT_REPO={url!r} is not a git repository URL. Allowed: https://<host>/<owner>/<name> "
                           f"or git@<host>:<owner>/<name>. {how}")
    if url.rstrip("/").removesuffix(".git").lower() == SOLUTIONS_REPO.lower():
        raise ReleaseError(f"STUDENT_REPO={url!r} is the solutions' repository: students who clone it get every "
                           f"answer. {how}")
    return url


def _clone_url(url: str) -> str:
    """What ``git clone`` on Colab gets: an ``https`` URL (Colab has no SSH key)."""
    github = _GITHUB.match(url)
    return f"https://github.com/{github[1]}/{github[2]}" if github else url


def point_at(nb: nbformat.NotebookNode, url: str) -> nbformat.NotebookNode:
    """Make the notebook's Colab set-up cell clone ``url`` and its "Open in Colab" badge open the
    notebook from there (GitHub URLs; for another host the badge, which only works for GitHub, goes)."""
    github = _GITHUB.match(url)
    for cell in nb.cells:
        cell.source = cell.source.replace(SOLUTIONS_REPO, _clone_url(url))
        if "colab.research.google.com/github/" in cell.source:
            if github:
                cell.source = re.sub(r"colab\.research\.google\.com/github/[\w.\-]+/[\w.\-]+/",
                                     f"colab.research.google.com/github/{github[1]}/{github[2]}/", cell.source)
            else:
                cell.source = re.sub(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n*", "", cell.source)
    return nb


def _answer_lines() -> tuple[set[str], set[str]]:
    """What only the instructor's notebooks hold, as stripped lines: ``(solution, secret)``.

    ``solution``: the lines of each solution region — the lab's package implements the same ideas
    (``patchify``, the stem, …; calling them scores 0), so these are looked for in notebooks only.
    ``secret``: the lines of each hidden test and each written question's model answer, looked
    for in every file."""
    def lines(regions: list[str]) -> set[str]:
        found = {line.strip() for region in regions for line in region.splitlines()}
        # short lines ("return x", "```") and the lines the student edition shows anyway are not answers
        return {line for line in found if len(line) >= 24 and line not in scaffold and not line.startswith("#")}

    scaffold = {line.strip() for ex in EXERCISES for line in ex.scaffold().splitlines()}
    solution = lines([r for ex in EXERCISES for r in ex.solution_regions()])
    secret = lines([r for ex in EXERCISES for r in ex.hidden_tests()] + [q.answer for q in QUESTIONS])
    return solution, secret


def leaks(folder: Path) -> list[str]:
    """``["path: what"]`` for every file under ``folder`` that holds something of the answers:
    nbgrader's solution / hidden-test markers or the solutions' URL (any file), a line of a
    hidden test or of a model answer (any file), a line of a solution region (notebooks)."""
    markers = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", SOLUTIONS_REPO)
    solution, secret = _answer_lines()
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        answers = secret
        if path.suffix == ".ipynb":            # compare cell sources, not their JSON-escaped form
            text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
            answers = secret | solution
        rel = path.relative_to(folder)
        found += [f"{rel}: {m!r}" for m in markers if m in text]
        stripped = {line.strip() for line in text.splitlines()}
        found += [f"{rel}: the answer line {line!r}" for line in sorted(answers & stripped)]
    return found


def _student_readme(url: str, notebooks: list[Path]) -> str:
    rows = "\n".join(f"| `notebooks/{p.name}` |" for p in notebooks)
    return f"""# Vision lab — student edition

Five notebooks on Vision Transformers, CLIP and RGB + thermal fusion for facial expression
recognition. Each holds exercises (a task, a cell for your solution, a test cell that checks
it) and written questions (a markdown cell for your answer).

| notebook |
|---|
{rows}

## Run it

* **Colab**: open a notebook from `notebooks/` (*File → Open notebook → GitHub*, paste
  `{url}`); its first cell clones this repository and installs it.
* **Your computer** (Python ≥ 3.10, no GPU needed):

  ```bash
  git clone {_clone_url(url)} lab && cd lab
  python -m venv .venv && . .venv/bin/activate
  pip install -r requirements.txt && pip install -e .
  jupyter lab notebooks/
  ```

The notebooks run in the *quick* profile on a CPU (synthetic data, small models, a few minutes
each) and in the *full* profile on a GPU (pretrained models, real datasets).

## Exercises

Write your code between the lines the cell marks, then run the test cell below it: `✓` means
the public tests pass; `✗` says what is wrong. Your instructor grades with more tests than the
notebook shows. A solution must be your own code: one that calls the lab function it
re-implements scores 0. Hand in each notebook **after a full run** (*File → Download → .ipynb*).
"""


def write_release(notebooks: list[Path], out: Path, url: str, lab_root: Path) -> Path:
    """Write the student release of ``notebooks`` to ``out`` (emptied first), pointing at
    ``url``; returns ``out``.

    Raises:
        ReleaseError: ``url`` is missing or the solutions' repository, or an answer leaked into
            the release (the message lists the files; nothing is left half-written to publish).
    """
    url = check_repo_url(url)
    lab_root = Path(lab_root).resolve()
    if out.exists():
        shutil.rmtree(out)
    edition = generate_student_edition(notebooks, out.parent / f".{out.name}-nbgrader")
    (out / "notebooks").mkdir(parents=True)
    for path in edition:
        nbformat.write(point_at(nbformat.read(path, as_version=4), url), out / "notebooks" / path.name)
    for name in COPIED:
        source = lab_root / name
        if source.is_dir():
            shutil.copytree(source, out / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, out / name)
    shutil.copytree(lab_root / "lab_utils", out / "lab_utils",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    env = (lab_root / "environment.yml").read_text()
    (out / "environment.yml").write_text("".join(line for line in env.splitlines(keepends=True)
                                                 if "requirements-instructor" not in line))
    (out / "README.md").write_text(_student_readme(url, edition))
    (out / ".gitignore").write_text(".venv/\n__pycache__/\n*.egg-info/\noutputs/\ncheckpoints/*\n!checkpoints/README.md\n")
    shutil.rmtree(out.parent / f".{out.name}-nbgrader")
    found = leaks(out)
    if found:
        shutil.rmtree(out)
        raise ReleaseError("the student release would contain answers, so it was not written:\n  "
                           + "\n  ".join(found[:20]) + "\nMove them into a solution region "
                           "(### BEGIN SOLUTION … ### END SOLUTION) or a hidden test of lab_tools/grading/cells.py.")
    return out


def release_name(url: str) -> str:
    """The folder name of the release: the repository's name (``…/prof/vision-lab-2027`` →
    ``vision-lab-2027``)."""
    return re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]) or "student-lab"
