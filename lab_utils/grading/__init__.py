"""Student edition and class grading (nbgrader): exercises, their checks, and the class report."""
