# The two commands: `make demo` and `make test`. Both work on a fresh machine with
# Python 3.11, pip and Debian's packages, and are fast when nothing changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

PG_URL ?= postgresql+psycopg://loopline:loopline@127.0.0.1:5432/loopline_test
# Two workers, whole files each (so module fixtures stay in one process), handed out
# longest first (tests/conftest.py orders them; --no-loadscope-reorder keeps that order):
# about 12 minutes on two cores.
TEST_WORKERS ?= 2

.PHONY: demo test unit check lint format typecheck services bench clean

demo: $(STAMP)
	$(BIN)/loopline demo

test: $(STAMP) services
	$(MAKE) --no-print-directory check
	LOOPLINE_TEST_POSTGRES_URL="$(PG_URL)" LOOPLINE_REQUIRE_POSTGRES=1 \
		$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# Unit and contract tests without any service: no PostgreSQL, no S3 server, no Ray, no subprocess
# of the command (tests/conftest.py marks those), none of the slow ones; well under a
# minute. The test plugins of schemathesis and hypothesis (used by tests/integration only)
# are not loaded. A selection that runs nothing exits 5, and fails, like any other error.
UNIT_MARKERS := not postgres and not s3 and not e2e and not slow and not ray

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/contract -m "$(UNIT_MARKERS)" \
		-p no:schemathesis -p no:hypothesispytest $(PYTEST_ARGS)

# (Re)install only when the dependency declarations change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Debian packages and servers the tests use: installed when missing, started when stopped.
services:
	bash scripts/services.sh

check: lint typecheck
	$(BIN)/lint-imports

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format:
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck:
	$(BIN)/mypy

# Each prints a table comparing loopline with the tool it replaces, measured in the same
# run (MLflow is installed on first use in its own venv under ~/.cache/loopline-bench).
bench: $(STAMP)
	$(BIN)/python bench/cli_start.py
	$(BIN)/python bench/objects.py
	$(BIN)/python bench/profile.py
	$(BIN)/python bench/tracking.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/loop.py
	$(BIN)/python bench/ui.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
