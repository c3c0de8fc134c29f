# Two commands do everything from a fresh clone:
#   make lab    set up .venv, run every notebook (quick profile), print a summary
#   make test   set up .venv, run unit tests + nbval over the stored notebook outputs
# and for maintainers:
#   make notebooks   re-execute the notebooks in place to refresh their stored outputs
#   make rehearsal   the full (Colab) profile end to end, offline, on stand-in models and data
#   make compat      unit tests + rehearsal again with the oldest transformers supported (4.x)
# and for instructors (README, "For instructors"):
#   make student                      the student edition (exercises stubbed, hidden tests removed)
#                                     → outputs/student/release/lab/
#   make grade SUBMISSIONS=<folder>   grade a class (<folder>/<student>/NN_….ipynb) → outputs/grading/

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lab-installed

# Offline, CPU, quick profile, and no thread spinning when two processes share cores.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export OMP_WAIT_POLICY := PASSIVE
export LAB_PROFILE ?= quick
export PYTHONHASHSEED := 0

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: lab test unit nbval notebooks rehearsal compat venv clean student grade

venv: $(STAMP)

$(STAMP): requirements.txt requirements-instructor.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-instructor.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

lab: $(STAMP)
	$(PY) -m lab_utils.run_notebooks $(NOTEBOOKS)

test: $(STAMP)
	$(PY) -m pytest tests $(NOTEBOOKS) $(NBVAL) -p no:cacheprovider -q

unit: $(STAMP)
	$(PY) -m pytest tests -q

nbval: $(STAMP)
	$(PY) -m pytest $(NOTEBOOKS) $(NBVAL) -p no:cacheprovider -q

notebooks: $(STAMP)
	$(PY) -m lab_utils.run_notebooks $(NOTEBOOKS) --inplace

# Full profile, offline: stand-in hub + torch caches, small real-format data in a copy of the
# repo, two scenarios (data present / none). CUDA when the machine has it. See lab_utils/rehearsal.py.
rehearsal: $(STAMP)
	$(PY) -m lab_utils.rehearsal --timeout 300

# The oldest supported transformers (4.x module names, huggingface_hub < 1.0) installed beside
# .venv's packages and put first on PYTHONPATH: a second environment for the price of ~60 MB.
OLDEST := $(VENV)/oldest
$(OLDEST)/.installed: requirements-oldest.txt $(STAMP)
	$(PY) -m pip install --quiet --no-deps --upgrade --target $(OLDEST) -r requirements-oldest.txt
	@touch $@

compat: $(OLDEST)/.installed
	PYTHONPATH=$(OLDEST) $(PY) -c "import transformers; print('transformers', transformers.__version__)"
	PYTHONPATH=$(OLDEST) $(PY) -m pytest tests -q -p no:cacheprovider
	PYTHONPATH=$(OLDEST) $(PY) -m lab_utils.rehearsal --timeout 300

# The student edition: nbgrader's generate_assignment over notebooks/ (lab_utils/grading/course.py).
student: $(STAMP)
	$(PY) -m lab_utils.grading student

# Grade a class: run each submission (quick profile), autograde its exercises, write the report.
SUBMISSIONS ?=
GRADING_DIR ?= outputs/grading
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=<folder>   (<folder>/<student>/01_….ipynb …)"; exit 2; }
	$(PY) -m lab_utils.grading grade "$(SUBMISSIONS)" --out "$(GRADING_DIR)" $(GRADE_FLAGS)

clean:
	rm -rf outputs/*/ .pytest_cache
