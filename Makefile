# jkoic: two commands on a fresh machine
#   make paper   -> installs what is missing, fills data/, regenerates tables and figures (PROFILE=cpu)
#   make test    -> installs what is missing, runs the unit tests and the notebooks under nbval
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.jkoic-installed
PROFILE ?= cpu
RESULTS ?= results/$(PROFILE)
# make paper runs JOBS jobs (notebook executions) at once with PAPER_THREADS torch threads each (on
# 2 cores, two notebooks of one thread each beat one of two threads: the 2-D networks are too small)
JOBS ?= 2
PAPER_THREADS ?= 1
# SCHEDULER: empty (local processes; $DASK_SCHEDULER_ADDRESS if set), local-dask (a Dask cluster on
# 127.0.0.1, JOBS workers) or tcp://HOST:PORT (an existing Dask scheduler; docs/cluster.md)
SCHEDULER ?=
# FORCE=1: re-run the jobs already done (default: a job done with the same settings and code is skipped)
FORCE ?=
# ONLY=gmm20,funnel: run these targets (run names or job ids: `make jobs`) and the assemble notebook; the
# other targets' rows come from their results in results/$(PROFILE)/ (for cpu: the committed ones)
ONLY ?=
comma := ,
export JKOIC_DATA_DIR ?= $(CURDIR)/data
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0
# the reproduction package (reproduce/) is imported from the checkout, by the runner and the notebooks
export PYTHONPATH := $(CURDIR)

.PHONY: install data lint test unit nbval smoke paper jobs bench clean help

help:
	@echo "make test             ruff lint + format check, unit tests, notebooks (smoke profile) under nbval"
	@echo "make paper            every table and figure, PROFILE=cpu (smoke | cpu | full | paper): one job per target and run,"
	@echo "                      JOBS=2 at once with PAPER_THREADS=1 torch thread each, assemble last; jobs done before"
	@echo "                      are skipped (FORCE=1 re-runs); SCHEDULER=local-dask | tcp://HOST:PORT runs them on Dask"
	@echo "                      ONLY=gmm20 runs that target and the assemble notebook (the others' results are kept)"
	@echo "make jobs             the jobs of PROFILE with their resources"
	@echo "make smoke            regenerate notebooks/smoke/*.ipynb (the nbval copies) with the smoke profile"
	@echo "make data             fill $(JKOIC_DATA_DIR) from ../shared/data or the public sources"
	@echo "make bench            speed / memory benchmarks (prints a table)"

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	# torch first, exactly the tested version, so pip takes the local CPU wheel where one exists (no
	# CUDA download); the project itself only requires a minimum torch, which this satisfies
	$(PYTHON) -m pip install -q torch==2.13.0
	# paper-sinkhorn: geomloss, the authors' Sinkhorn solver for Table 5 (its tests in tests/test_metrics.py)
	$(PYTHON) -m pip install -q -e ".[test,notebooks,baselines,cluster,paper-sinkhorn]"
	touch $(STAMP)

install: $(STAMP)

data: $(STAMP)
	$(PYTHON) -c "import sys; from jkoic.bench.data import main; sys.exit(main())" --dest "$(JKOIC_DATA_DIR)"

unit: install data
	$(PYTHON) -m pytest -q tests

# nbval re-executes the committed smoke-profile notebooks (notebooks/smoke/NN_*.ipynb, in order, the
# assemble notebook last) and compares their stored outputs; results/smoke is cleared first so that
# a fresh clone and a used work tree give the same outputs.
nbval: install data
	@if compgen -G "notebooks/smoke/*.ipynb" > /dev/null; then \
	  rm -rf results/smoke; \
	  $(PYTHON) -m pytest -q -p no:cacheprovider --nbval notebooks/smoke --nbval-sanitize-with notebooks/sanitize.cfg; \
	else echo "no smoke notebooks yet"; fi

# regenerate the nbval copies after changing a notebook or the library (then commit notebooks/smoke)
smoke: install data
	rm -rf results/smoke
	$(PYTHON) -m reproduce smoke

# ruff (configured in pyproject.toml): lint rules and the formatting of every Python file
lint: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test: lint unit nbval

# make paper [PROFILE=cpu|paper|smoke] [JOBS=2] [PAPER_THREADS=1] [SCHEDULER=] [FORCE=]: the profile's
# job grid (one notebook execution per target and run, reproduce/grid.py), JOBS at once; a job done
# before with the same settings and code is skipped, so a killed run started again runs what is
# missing; a failed job is retried once. The assemble notebook (tables, figures) runs last, also when
# a job failed (its cells show '-'); the exit status reports any failure. Results, executed
# notebooks and logs: results/$(PROFILE)/{runs,notebooks,logs}/. On a GPU: make paper PROFILE=paper
# JOBS=1 PAPER_THREADS=0; on a cluster: docs/cluster.md.
paper: install data
	JKOIC_THREADS=$(PAPER_THREADS) $(PYTHON) -m reproduce run --profile $(PROFILE) --jobs $(JOBS) \
	  $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(FORCE),--force) $(if $(ONLY),--only $(ONLY)$(comma)assemble)

jobs: install
	$(PYTHON) -m reproduce jobs --profile $(PROFILE)

bench: install data
	$(PYTHON) benchmarks/bench.py

clean:
	rm -rf results/smoke .pytest_cache
