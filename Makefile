# Two commands from a fresh clone:  `make paper` (set up + run a paper session)  and  `make test`.
VENV     ?= .venv
PYTHON   ?= python3
DURATION ?= 10
BIN      := $(VENV)/bin

.PHONY: setup paper lint test test-fast test-dialects bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

## set up, check the environment, and paper-trade on the built-in mock data for $(DURATION) minutes
paper: setup
	$(BIN)/la doctor --fix
	$(BIN)/la run --mode live-session --duration $(DURATION) --source mock --async

## lint and types (CI runs this before the tests; run it before every landing): ruff on src and tests,
## mypy --strict with the pydantic plugin on src (settings in pyproject.toml)
lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/mypy

## set up and run the whole test suite (slow tests included, as CI does): most tests in three parallel workers
## (one test file per worker, so module fixtures such as a shared mock exchange stay shared), then the heavy or
## timing-sensitive ones (Docker, real systemd, rate pacing) alone
PYTEST_WORKERS ?= 3
test: setup
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not docker and not serial"
	$(BIN)/pytest -q -m "docker or serial"

## the whole live suite once per mock dialect preset (CI runs only the `dialects`-marked tests per preset)
test-dialects: setup
	for d in docs ccxt community hostile; do LA_MOCK_DIALECT=$$d $(BIN)/pytest -q tests/live || exit 1; done

## the fast subset, for the edit-test loop
test-fast: setup
	$(BIN)/pytest -q -m "not slow and not docker"

## benchmarks (issue 7): prints a table, writes bench/results/*.json; BENCH_ARGS=--quick for 100k candles
bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
