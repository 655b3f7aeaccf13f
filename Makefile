# Every target sets up .venv first (once; again when pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARGS   ?=
# a worker per core; the tests of one SLURM cluster or one GPU on one of them (tests/conftest.py); --durations names
# where the time went
ON_EVERY_CORE := -n auto --dist loadgroup --durations=25

.PHONY: install install-dev train sweep report test test-fast bench bench-search figures screenshots tensorboard dashboard lint format clean

install: $(VENV)/.installed          ## what training, sweeps, evaluate and predict need
install-dev: $(VENV)/.installed-dev  ## and what tests, lint and benchmarks need (the loggers' extras too)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

train: install            ## train the default model on CIFAR-10 (downloads it into data/ once)
	$(PY) -m lit_cifar.train $(ARGS)

sweep: install            ## a multirun, e.g. make sweep ARGS="sweep=lr_bs_grid hydra/launcher=parallel"
	$(PY) -m lit_cifar.train --multirun $(ARGS)

report: install           ## a sweep's results table and plot again, e.g. make report DIR=multirun/DATE/TIME
	$(if $(DIR),,$(error make report needs DIR=multirun/DATE/TIME (a sweep dir or run dirs, quoted globs too)))
	$(PY) -m lit_cifar.report $(DIR) $(ARGS)

test: install-dev         ## the whole suite, slow tests included (what CI runs), on every core
	$(PY) -m pytest $(ON_EVERY_CORE) $(ARGS)

test-fast: install-dev    ## skip the slow end-to-end tests
	$(PY) -m pytest $(ON_EVERY_CORE) -m "not slow" $(ARGS)

bench: install-dev        ## speed figures (input pipeline, framework overhead, recipes) into bench/
	$(PY) -m benchmarks.bench $(ARGS)

bench-search: install-dev ## the lr x batch-size grid against the Optuna search with pruning, and the lr finder, on the slice
	$(PY) -m benchmarks.search_vs_grid $(ARGS)

figures: install-dev      ## every figure README and docs/expect.md quote, measured again into docs/figures.md, e.g. ARGS="--only first_run"
	$(PY) -m benchmarks.figures $(ARGS)

screenshots: install-dev  ## docs/dashboards.md's TensorBoard screenshots again, from a real run and sweep on the slice (needs chromium)
	$(PY) -m benchmarks.screenshots $(ARGS)

tensorboard: install      ## single runs and sweeps side by side
	$(VENV)/bin/tensorboard --logdir_spec outputs:outputs,multirun:multirun $(ARGS)

dashboard: install        ## optuna-dashboard on a search's study, live while it runs: make dashboard DIR=multirun/DATE/TIME
	$(if $(DIR),,$(error make dashboard needs DIR=multirun/DATE/TIME (the sweep dir of a hydra/sweeper=optuna search)))
	$(PY) -m pip install --quiet -e '.[dashboard]'
	$(VENV)/bin/optuna-dashboard --storage-class JournalFileStorage --host 127.0.0.1 $(DIR)/optuna.journal --port $(or $(PORT),8080)

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: install-dev
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:                    ## caches and build files; outputs/, multirun/ and data/ are yours and stay
	rm -rf build src/*.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
