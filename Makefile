# Every target sets up .venv first (once; again when pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARGS   ?=

.PHONY: install train sweep report test test-fast bench bench-search tensorboard lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

train: install            ## train the default model on CIFAR-10 (downloads it into data/ once)
	$(PY) -m lit_cifar.train $(ARGS)

sweep: install            ## a multirun, e.g. make sweep ARGS="sweep=lr_bs_grid hydra/launcher=parallel"
	$(PY) -m lit_cifar.train --multirun $(ARGS)

report: install           ## a sweep's results table and plot again, e.g. make report DIR=multirun/DATE/TIME
	$(if $(DIR),,$(error make report needs DIR=multirun/DATE/TIME (a sweep dir or run dirs, quoted globs too)))
	$(PY) -m lit_cifar.report $(DIR) $(ARGS)

test: install             ## the whole suite, slow tests included (what CI runs)
	$(PY) -m pytest $(ARGS)

test-fast: install        ## skip the slow end-to-end tests
	$(PY) -m pytest -m "not slow" $(ARGS)

bench: install            ## speed figures (input pipeline, framework overhead, recipes) into bench/
	$(PY) -m benchmarks.bench $(ARGS)

bench-search: install     ## the lr x batch-size grid against the Optuna search with pruning, and the lr finder, on the slice
	$(PY) -m benchmarks.search_vs_grid $(ARGS)

tensorboard: install      ## single runs and sweeps side by side
	$(VENV)/bin/tensorboard --logdir_spec outputs:outputs,multirun:multirun $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: install
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:                    ## caches and build files; outputs/, multirun/ and data/ are yours and stay
	rm -rf build src/*.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
