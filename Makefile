# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install
# what they need; nothing has to be installed beforehand but Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every package, direct and transitive, pinned with its hashes; regenerate with `make lock`.
LOCK := requirements.lock
PIP_VERSION := 26.3

.PHONY: run test lint unit integration install lock bench-core bench-ingest bench-ingest-alerts bench-api bench-replay bench-authz bench-holds soak clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Re-resolve the lock from pyproject.toml's pins (after changing a dependency); pip-tools runs
# from a throwaway virtualenv so it is not one of the service's dependencies.
lock:
	$(PYTHON) -m venv .lock-tools
	.lock-tools/bin/pip install --quiet pip-tools==7.6.2
	.lock-tools/bin/pip-compile --quiet --generate-hashes --extra dev --strip-extras \
		--no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml
	rm -rf .lock-tools

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

bench-holds: $(STAMP)
	$(BIN)/python -m bench.bench_holds $(ARGS)

bench-replay: $(STAMP)
	$(BIN)/python -m bench.bench_replay

# Read-path latency (500 req/s for 30 s, then rising) next to /healthz and a bare asyncpg
# SELECT, and event-to-read-model lag at 2,000 events/s. Takes about three minutes.
bench-api: $(STAMP)
	$(BIN)/python -m bench.bench_api

# Pre-send authorization at 500 req/s (allowed and denied) next to /healthz; about 3 minutes.
bench-authz: $(STAMP)
	$(BIN)/python -m bench.bench_authz

# Faults under load (consumer and projector SIGKILLs, PostgreSQL restarts) against a private
# PostgreSQL, checked against the soak's own reference; not part of `make test`. 10-30 minutes
# with the defaults; e.g. ARGS="--events 20000 --wallets 100" for a short one.
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
