"""``python -m lab_utils.grading student [--out DIR]`` (``make student``) and
``python -m lab_utils.grading grade SUBMISSIONS [--out DIR]`` (``make grade``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..paths import repo_root


def student(argv: list[str]) -> int:
    """Write the student edition of every lab notebook (see ``lab_utils.grading.course``)."""
    from .course import generate_student_edition
    from .grade import lab_notebooks

    parser = argparse.ArgumentParser(prog="python -m lab_utils.grading student",
                                     description="Write the student edition (solutions replaced by stubs, "
                                                 "hidden tests removed, outputs cleared).")
    parser.add_argument("--out", type=Path, default=None,
                        help="nbgrader course folder (default outputs/student); the edition lands in OUT/release/lab/")
    args = parser.parse_args(argv)
    root = args.out or repo_root() / "outputs" / "student"
    written = generate_student_edition(list(lab_notebooks().values()), root)
    print("Student edition:")
    for path in written:
        print(f"  {path}")
    print("Hand these out (or upload them to your course page); students run them on Colab or locally "
          "and hand back the .ipynb files. Grade them with: make grade SUBMISSIONS=<folder>")
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
