# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install
# what they need; nothing has to be installed beforehand but Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit integration install bench-core bench-ingest bench-ingest-alerts bench-api bench-replay bench-authz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ledger run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

bench-core: $(STAMP)
	$(BIN)/python -m bench.bench_core

bench-ingest: $(STAMP)
	$(BIN)/python -m bench.bench_ingest

# The spread scenario alternately without and with alerting wallet policies (relay running).
bench-ingest-alerts: $(STAMP)
	BENCH_ALERTS_AB=1 $(BIN)/python -m bench.bench_ingest

bench-replay: $(STAMP)
	$(BIN)/python -m bench.bench_replay

# Read-path latency (500 req/s for 30 s, then rising) next to /healthz and a bare asyncpg
# SELECT, and event-to-read-model lag at 2,000 events/s. Takes about three minutes.
bench-api: $(STAMP)
	$(BIN)/python -m bench.bench_api

# Pre-send authorization at 500 req/s (allowed and denied) next to /healthz; about 3 minutes.
bench-authz: $(STAMP)
	$(BIN)/python -m bench.bench_authz

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
