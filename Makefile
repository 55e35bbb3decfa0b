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
export JKOIC_DATA_DIR ?= $(CURDIR)/data
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: install data test unit nbval paper bench clean help

help:
	@echo "make test             unit tests + notebooks (smoke profile) under nbval"
	@echo "make paper            every table and figure, PROFILE=cpu (smoke | cpu | paper)"
	@echo "make data             fill $(JKOIC_DATA_DIR) from ../shared/data or the public sources"
	@echo "make bench            speed / memory benchmarks (prints a table)"

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	# torch is pinned so pip takes the local CPU wheel where one exists (no CUDA download)
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[test,notebooks,baselines]"
	touch $(STAMP)

install: $(STAMP)

data: $(STAMP)
	$(PYTHON) -m jkoic.data --dest "$(JKOIC_DATA_DIR)"

unit: install data
	$(PYTHON) -m pytest -q tests

# nbval re-executes the committed smoke-profile notebooks and compares their stored outputs
nbval: install data
	@if compgen -G "notebooks/smoke/*.ipynb" > /dev/null; then \
	  $(PYTHON) -m pytest -q -p no:cacheprovider --nbval notebooks/smoke --sanitize-with notebooks/sanitize.cfg; \
	else echo "no smoke notebooks yet"; fi

test: unit nbval

paper: install data
	$(PYTHON) -m jkoic.paper run --profile $(PROFILE) --jobs $(or $(JOBS),1)

bench: install data
	$(PYTHON) benchmarks/bench.py

clean:
	rm -rf results/smoke .pytest_cache
