"""The exercises' and written questions' cells (with their solutions and hidden tests), the
student edition and class grading (nbgrader). The checks a student's test cell calls are
``lab_utils.exercises``: the notebooks import them without this package."""
