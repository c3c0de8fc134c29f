"""What the grading tests hand in: an exercise's solution cell, answered or not (shared by
test_exercises.py and test_grading.py)."""
import re

_REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION[ \t]*$", re.S | re.M)


def solution_cell(ex, body: str | None = None) -> str:
    """The exercise's solution cell with each solution region kept (``body=None``: the model
    answer), or replaced by ``body`` indented like the region, as nbgrader's student edition does."""
    def region(match):
        indent = match.group(1)
        return match.group(2).rstrip("\n") if body is None else indent + body.replace("\n", "\n" + indent)
    return _REGION.sub(region, ex.solution)
