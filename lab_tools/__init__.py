"""The lab's tools for maintainers and instructors; the notebooks never import them.

* ``run_notebooks``: executes notebooks (``make lab``, ``make notebooks``) and prints a summary;
* ``rehearsal`` and ``standins``: the full (Colab) profile end to end, offline, on stand-in hub
  models and real-format data (``make rehearsal``);
* ``grading``: the exercises' cells, the student edition and class grading (``make student``,
  ``make grade``; needs ``requirements-instructor.txt``, i.e. nbgrader).

What a notebook imports (including the exercises' checks, ``lab_utils.exercises``) lives in
``lab_utils``, which installs without any of these tools' dependencies.
"""
