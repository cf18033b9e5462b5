# Excel Async Bridge: two commands for a fresh machine.
#   make run   - install what is missing, start Azurite, the Graph emulator, a webhook receiver and the app
#   make test  - install, lint, type-check and run every test (the fault matrix as a subset: one failure per call)
#   make faults - the whole storage fault matrix (every call of every step failed 1, 2 and 3 times) and the probes
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint typecheck unit bench faults clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v < (3, 13) else "Python 3.11 or 3.12 is needed (the code uses asyncio.timeout and datetime.UTC; azure-functions 1.x stops at 3.12), found %d.%d: set PYTHON=python3.11 or python3.12" % v)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: install
	$(PY) -m devhost.stack

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest tests/unit -q

test: install lint typecheck
	$(VENV)/bin/pytest

faults: install
	FAULTS_FULL=1 $(VENV)/bin/pytest tests/faults -q -s

bench: install
	$(PY) -m bench.poll_cost

clean:
	rm -rf $(VENV) node_modules .azurite .run .pytest_cache .mypy_cache .ruff_cache
