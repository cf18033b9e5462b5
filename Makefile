# Excel Async Bridge: two commands for a fresh machine.
#   make run   - install what is missing, start Azurite, the Graph emulator, a webhook receiver and the app
#   make test  - install, lint, type-check and run every test (the fault matrix as a subset: one failure per call)
#   make faults - the whole storage fault matrix (every call of every step failed 1, 2 and 3 times) and the probes
# and a few more:
#   make lint  - ruff, and bandit over the shipped code (function_app.py shared/)
#   make coverage - the unit tests (tests/unit) with branch coverage of shared/, a terminal report
#   make fuzz  - a longer schemathesis run against a devhost (FUZZ_EXAMPLES per operation), with its figures
#   make audit - pip-audit of the locked runtime dependencies (needs network; fails if it could not check)
#   make lock  - recompile requirements.txt (pinned, hashed) from requirements.in
#   make browser - Debian's chromium and chromedriver for the console's browser test (tests/e2e/test_console.py)
#   make console-screenshots - the console's browser test, saving its screenshots to docs/
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test test-fast lint typecheck unit coverage bench bench-list faults clean fuzz audit lock browser \
	console-screenshots

FUZZ_EXAMPLES ?= 500
FUZZ_SECONDS ?=

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v < (3, 13) else "Python 3.11 or 3.12 is needed (the code uses asyncio.timeout and datetime.UTC; azure-functions 1.x stops at 3.12), found %d.%d: set PYTHON=python3.11 or python3.12" % v)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	@# the lock's pins (without its hashes: pip turns on hash-checking for every requirement of a run that reads
	@# a hash, and the dev tools are not hashed) keep the dev install from moving a runtime package
	sed -e '/--hash=/d' -e 's/ \\$$//' requirements.txt > $(VENV)/runtime-pins.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c $(VENV)/runtime-pins.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: install
	$(PY) -m devhost.stack

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -q -r function_app.py shared/

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest tests/unit -q

# The edit-test loop: ruff and the in-process tests (no servers, no subprocesses). make test stays the one full run.
test-fast: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest tests/unit -q -p no:cacheprovider

coverage: install
	$(VENV)/bin/pytest tests/unit -q -p no:cacheprovider --cov --cov-branch --cov-report=term-missing:skip-covered

# The suite on TEST_WORKERS parallel workers (pytest-xdist), a test file per worker at a time (--dist loadfile:
# a module's fixtures and order stay together). Each worker is a pytest session with its own Azurite, emulator
# and bridges (tests/conftest.py), so workers share nothing but the machine. The e2e tests mostly wait (for
# polls, leases, retries), so three workers fit two cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3
test: install lint typecheck browser
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

# Idempotent, and never fails the build: nothing to do when chromium and chromedriver are there; else, as root with
# apt-get, Debian's packages (no browser download by Selenium Manager or Playwright). When they cannot be installed
# the console's browser test skips, naming what is missing.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver) || echo "chromium could not be installed: the console's browser test will skip"; \
	else \
		echo "no /usr/bin/chromium and not root with apt-get: the console's browser test will skip"; \
	fi

console-screenshots: install browser
	CONSOLE_SCREENSHOTS=docs $(VENV)/bin/pytest tests/e2e/test_console.py -q

fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SECONDS=$(FUZZ_SECONDS) $(VENV)/bin/pytest tests/e2e/test_api_schema.py -q -s --timeout=0

audit: install
	$(PY) -m tools.audit requirements.txt

lock: install
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
		--no-emit-index-url --output-file requirements.txt requirements.in
faults: install
	FAULTS_FULL=1 $(VENV)/bin/pytest tests/faults -q -s

bench: install
	$(PY) -m bench.poll_cost
	$(PY) -m bench.list_latency
	$(PY) -m bench.schedule --plot docs/schedule.png
	$(PY) -m bench.history_burst
	$(PY) -m bench.real_run
	$(PY) -m bench.real_run --prior 64
	$(PY) -m bench.lane

bench-list: install
	$(PY) -m bench.list_latency

clean:
	rm -rf $(VENV) node_modules .azurite .run .pytest_cache .mypy_cache .ruff_cache .coverage
