PY ?= .venv/bin/python

.PHONY: check lint types test bench
check: lint types test

lint:
	$(PY) -m ruff check ledger projections tests scripts
	$(PY) -m ruff format --check ledger projections tests scripts

types:
	$(PY) -m mypy

test:
	$(PY) -m pytest -q -n 2

bench:
	$(PY) scripts/bench.py --events 100000
