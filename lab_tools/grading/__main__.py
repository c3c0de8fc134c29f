"""``python -m lab_tools.grading student --repo URL [--out DIR]`` (``make student STUDENT_REPO=URL``) and
``python -m lab_tools.grading grade SUBMISSIONS [--out DIR]`` (``make grade``)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lab_utils.paths import repo_root


def student(argv: list[str]) -> int:
    """Write the student release: the lab without the answers, to publish as its own repository
    (see ``lab_tools.grading.release``)."""
    from .grade import lab_notebooks
    from .release import ReleaseError, release_name, write_release

    parser = argparse.ArgumentParser(prog="python -m lab_tools.grading student",
                                     description="Write the student release (solutions replaced by stubs, hidden "
                                                 "tests and model answers removed, outputs cleared), a folder to "
                                                 "publish as its own repository.")
    parser.add_argument("--repo", default=os.environ.get("STUDENT_REPO"),
                        help="the URL students will clone (make student STUDENT_REPO=…); never the solutions' repository")
    parser.add_argument("--out", type=Path, default=None,
                        help="release folder (default outputs/student/<repository name>)")
    args = parser.parse_args(argv)
    try:
        out = args.out or repo_root() / "outputs" / "student" / release_name(args.repo or "")
        written = write_release(list(lab_notebooks().values()), out, args.repo, repo_root())
    except ReleaseError as err:
        print(f"make student: {err}", file=sys.stderr)
        return 2
    print(f"Student release for {args.repo}: {written}")
    for path in sorted((written / "notebooks").glob("*.ipynb")):
        print(f"  notebooks/{path.name}")
    print("Scanned: no solution, hidden test or model answer in any file.\nPublish it:\n"
          f"  cd {written} && git init -b main && git add -A && git commit -m 'Student edition' "
          f"&& git remote add origin {args.repo} && git push -u origin main\n"
          "Students open the notebooks from there (Colab or a clone) and hand back the .ipynb files; "
          "grade them with: make grade SUBMISSIONS=<folder>")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("student", "grade"):
        print(__doc__)
        return 2
    if argv[0] == "student":
        return student(argv[1:])
    from .grade import main as grade_main
    return grade_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
