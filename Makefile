# Two commands do all the set-up: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CORE_STAMP := $(VENV)/.core-installed-stamp
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
DEVICE ?= auto
PYTEST_ARGS ?=

.PHONY: demo lab test test-package test-all notebooks workshop-prep lint bench env clean-venv

# `make demo` needs only the package; tests and notebooks add their extras on top (same pins).
$(CORE_STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) and installing joimternet-lite with its tested pins (a few minutes, once)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e .
	@touch $(CORE_STAMP)

$(STAMP): $(CORE_STAMP)
	@echo "==> adding the test, notebook and test-data extras to $(VENV)"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,notebooks,testdata]"
	@touch $(STAMP)

demo: $(CORE_STAMP)
	$(PY) -m joimternet_lite demo --config demo_grounding train.device=$(DEVICE)

# `make lab`: the notebook extra when missing (`make test` installs it too), the course's JupyterLab
# defaults (no prompt to fetch Jupyter news: the course runs offline), then JupyterLab on notebooks/.
LAB_STAMP := $(VENV)/.notebooks-installed-stamp
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/joimternet-course.json

$(LAB_STAMP): $(CORE_STAMP)
	@if [ ! -f $(STAMP) ]; then \
		echo "==> adding the notebook extra to $(VENV)"; \
		$(PY) -m pip install --quiet -c constraints.txt -e ".[notebooks]"; \
	fi
	@touch $(LAB_STAMP)

$(LAB_OVERRIDES): notebooks/.jupyter/overrides.json $(LAB_STAMP)
	@mkdir -p $(dir $@)
	cp $< $@

lab: $(LAB_OVERRIDES)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

# Package tests, then every notebook and solution notebook in smoke mode (nbmake), in one run.
test: $(STAMP)
	JOIMTERNET_SMOKE=1 $(PY) -m pytest -m "not slow" tests --nbmake --nbmake-timeout=180 notebooks $(PYTEST_ARGS)

# The package alone (tests/package mirrors joimternet_lite/): no notebook, no browser; a few minutes.
test-package: $(STAMP)
	$(PY) -m pytest -m "not slow" tests/package $(PYTEST_ARGS)

test-all: $(STAMP)
	JOIMTERNET_SMOKE=1 $(PY) -m pytest tests --nbmake --nbmake-timeout=180 notebooks $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(PY) notebooks/run_notebooks.py

# `make workshop-prep`, once before a workshop on the machine it will use: draws the course data and
# trains the models notebooks 09-11 share (the course model; for 11 also the paper's recipe at the
# same size), printing each time. The notebooks then load them instead of training in a slot.
workshop-prep: $(STAMP)
	$(PY) notebooks/workshop_prep.py

lint: $(STAMP)
	$(VENV)/bin/ruff check joimternet_lite data_scripts tests bench notebooks/run_notebooks.py notebooks/workshop_prep.py notebooks/figures

bench: $(STAMP)
	$(PY) bench/local_similarity.py
	$(PY) bench/data_pipeline.py
	$(PY) bench/train_throughput.py

env: $(STAMP)
	$(PY) -m joimternet_lite env

clean-venv:
	rm -rf $(VENV)
