# Two commands for a newcomer: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-slow test-browser test-fuzz screenshots bench loadtest lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/patron serve

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# The admin page in headless Chromium: needs the system's chromium (Debian: apt-get install chromium;
# elsewhere set PATRON_TEST_CHROMIUM to its path). Playwright drives it; it downloads no browser.
test-browser: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,browser]'
	$(BIN)/python -m pytest -m browser

# The same run, keeping its screenshots of the admin page in docs/admin/.
screenshots: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,browser]'
	PATRON_TEST_SCREENSHOTS=docs/admin $(BIN)/python -m pytest -m browser

# Schemathesis at length: 40 cases per operation and mode instead of the default run's 3.
test-fuzz: $(STAMP)
	$(BIN)/python -m pytest -m fuzz -s

# Options after BENCH_ARGS, e.g. make bench BENCH_ARGS="--servers granian --duration 5"
bench: $(STAMP)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

# A headless Locust run against a local Patron (or LOADTEST_ARGS="--target URL --admin-token T"),
# e.g. make loadtest LOADTEST_ARGS="--users 50 --duration 120"; the report goes to loadtest-results/.
LOAD_STAMP := $(VENV)/.installed-load-stamp
$(LOAD_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,load]'
	touch $(LOAD_STAMP)

loadtest: $(LOAD_STAMP)
	$(BIN)/python deploy/loadtest/run.py $(LOADTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .patron .pytest_cache .mypy_cache .ruff_cache loadtest-results
