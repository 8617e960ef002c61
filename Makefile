# The two commands of the README: `make demo` (the main job) and `make test` (the default test suite).
# Both create or reuse .venv by themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch first, pinned: an unpinned torch (or one pulled in by SB3) resolves to a multi-GB CUDA build.
TORCH := torch==2.13.0
SAFETY_GYMNASIUM := safety-gymnasium==1.0.0
PYTEST_ARGS ?= -n 2

.PHONY: install demo test test-all lint format type check bench docs clean

$(STAMP): setup.cfg setup.py pyproject.toml zoo_hook/_sb3_metasaclag_zoo_hook.py zoo_hook/sb3_metasaclag_zoo.pth
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[all]"
	# Without its stale pins (see setup.cfg, extra `safety`); sb3_metasaclag's compatibility layer makes it import.
	$(PY) -m pip install --quiet --no-deps $(SAFETY_GYMNASIUM)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m sb3_metasaclag.demo

test: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check sb3_metasaclag tests examples scripts zoo_hook setup.py
	$(PY) -m black --check sb3_metasaclag tests examples scripts zoo_hook setup.py

format: install
	$(PY) -m ruff check --fix sb3_metasaclag tests examples scripts zoo_hook setup.py
	$(PY) -m black sb3_metasaclag tests examples scripts zoo_hook setup.py

type: install
	$(PY) -m mypy sb3_metasaclag

check: lint type test

bench: install
	$(PY) scripts/bench_envs.py

docs: install
	$(PY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .mypy_cache .ruff_cache
