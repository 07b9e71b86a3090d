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

## set up and run the whole test suite (slow tests included, as CI does). Phase 1: the `long` tests (minutes of wall
## clock, little CPU: the 10-minute session, WS drops every 30 s, the audit's edge cases) in a pytest process of their
## own, beside all the others in $(PYTEST_WORKERS) parallel workers; tests/live and tests/chaos run once per mock
## dialect preset, a module's tests of one preset on one worker (module fixtures such as a shared mock exchange stay
## shared), the units holding slow tests first. Phase 2: the heavy or timing-sensitive ones (Docker, real systemd,
## rate pacing) alone.
PYTEST_WORKERS ?= 4
LONG_WORKERS ?= 3
test: setup
	@long_log=$$(mktemp); \
	$(BIN)/pytest -q -n $(LONG_WORKERS) -m "long and not docker and not serial" >"$$long_log" 2>&1 & long_pid=$$!; \
	trap 'kill $$long_pid 2>/dev/null; rm -f "$$long_log"' EXIT; \
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder \
	  -m "not long and not docker and not serial"; rc=$$?; \
	wait $$long_pid; long_rc=$$?; echo "--- the long tests (their own pytest process):"; cat "$$long_log"; \
	test $$rc -eq 0 && test $$long_rc -eq 0
	$(BIN)/pytest -q -m "docker or serial"

## the live and chaos suites alone, once per mock dialect preset (as `make test` runs them); LA_MOCK_DIALECT=NAME
## runs every test (of any directory) against that one preset instead
test-dialects: setup
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder tests/live tests/chaos

## the fast subset, for the edit-test loop
test-fast: setup
	$(BIN)/pytest -q -m "not slow and not docker"

## benchmarks (issue 7): prints a table, writes bench/results/*.json; BENCH_ARGS=--quick for 100k candles
bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
