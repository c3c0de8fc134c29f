# Two commands do everything from a fresh clone:
#   make lab    set up .venv, run every notebook (quick profile), print a summary
#   make test   set up .venv, run unit tests + nbval over the stored notebook outputs
# and one for maintainers:
#   make notebooks   re-execute the notebooks in place to refresh their stored outputs

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

.PHONY: lab test unit nbval notebooks venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
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

clean:
	rm -rf outputs/*/ .pytest_cache
