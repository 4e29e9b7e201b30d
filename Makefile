# Two commands: `make demo` and `make test`. Both set up .venv from pyproject.toml first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# minutes of training in `make demo` (a wall-clock budget, not an epoch count)
DEMO_MINUTES ?= 5

.PHONY: demo test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m musicrgan.demo --minutes $(DEMO_MINUTES)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 --durations=12

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow --durations=12

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) data results runs bench/out
