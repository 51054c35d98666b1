# The two commands: `make demo` and `make test`. Both create .venv and install
# safestream into it on first use (needs Python >= 3.11 and a C++ compiler:
# pdqhash is built from source).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-install
PYTEST_WORKERS ?= 2

.PHONY: install ffmpeg-program demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian's `ffmpeg` program for the tests that use it (installed as root; else they are
# skipped, saying so). Only for the tests: the demo needs no ffmpeg program.
ffmpeg-program:
	sh scripts/ensure-ffmpeg

demo: install
	$(VENV)/bin/safestream demo

test: install lint typecheck pytest

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy

pytest: install ffmpeg-program
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q

bench: install
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/index.py
	$(PY) bench/hashing.py
	$(PY) bench/robustness.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
