# The two commands a newcomer needs: `make run` and `make test` (see README.md).
.DEFAULT_GOAL := help
.PHONY: help run stop token superuser test lint format typecheck pytest pytest-rls pytest-embedded venv clean bench bench-full soak chaos fuzz

PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

help:
	@echo "make run    start the API on http://$(HOST):$(PORT) (embedded PostgreSQL unless DATABASE_URL is set);"
	@echo "            another port: make run PORT=8001; Ctrl-C stops the server and the embedded PostgreSQL"
	@echo "make token  print a 24-hour access token for the running server (EMAIL=you@example.com)"
	@echo "make superuser   create an account for the admin (/admin/)"
	@echo "make stop   stop the embedded PostgreSQL (make run does it when it stops)"
	@echo "make test   lint, format check, type check and the test suite"
	@echo "make bench  the quick benchmark (under 5 minutes); make bench-full for the full one"
	@echo "make soak   200 concurrent streams for 3 minutes: no errors, all stored, flat memory"
	@echo "make chaos  200 streams on two servers while one is killed, PostgreSQL restarts and Redis drops"
	@echo "make fuzz   a long Schemathesis run against the API (make test runs a short one)"

venv:
	@scripts/ensure-venv

# A busy port ends it at once; stopping it stops the embedded PostgreSQL (scripts/run_dev.py).
run: export CHATAPI_ENV ?= development
run: venv
	@$(PY) scripts/run_dev.py $(HOST) $(PORT)

# For a second shell, with make run's settings (development mode) and no export needed;
# the token alone on stdout: TOKEN=$(make token).
EMAIL ?= you@example.com
token: export CHATAPI_ENV ?= development
# dev_token reads no database: a URL that is never connected to keeps the settings from
# starting the embedded PostgreSQL just for it.
token: export DATABASE_URL ?= postgres://unused@127.0.0.1:1/unused
token: venv
	@$(PY) manage.py dev_token --email "$(EMAIL)" --ttl 86400

superuser: export CHATAPI_ENV ?= development
superuser: venv
	@$(PY) manage.py migrate --no-input -v 0
	@$(PY) manage.py createsuperuser

stop: venv
	@$(PY) scripts/run_dev.py stop

test: export CHATAPI_ENV ?= test
test: venv lint typecheck pytest

lint: venv
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .

format: venv
	@.venv/bin/ruff check --fix .
	@.venv/bin/ruff format .

typecheck: venv
	@.venv/bin/mypy .

pytest: venv
	@.venv/bin/pytest -n 2

# The API's tests again with every authenticated request run as the `authenticated` role
# (CI runs it after `make test`), in two pytest-xdist workers.
pytest-rls: export CHATAPI_ENV ?= test
pytest-rls: venv
	@DB_RLS_PER_REQUEST=true .venv/bin/pytest -n 2 conversations messaging usage accounts

# The tests that start servers against the test database, or copy it, run against the embedded
# PostgreSQL whatever DATABASE_URL says: where the database lives must not matter to them (CI
# runs this after `make test`, which uses CI's server).
pytest-embedded: export CHATAPI_ENV ?= test
pytest-embedded: venv
	@env -u DATABASE_URL .venv/bin/pytest -n 2 -m live_database

# The fuzz test of `make test` with many more examples and a fresh seed (printed, so a failure
# can be replayed with FUZZ_SEED=<seed>). Needs DATABASE_URL like `make test`.
fuzz: export CHATAPI_ENV ?= test
fuzz: export FUZZ_EXAMPLES ?= 200
fuzz: export FUZZ_SEED ?= $(shell date +%s)
fuzz: venv
	@echo "fuzz: FUZZ_EXAMPLES=$$FUZZ_EXAMPLES FUZZ_SEED=$$FUZZ_SEED"
	@.venv/bin/pytest -p no:cacheprovider chatapi/tests/test_fuzz.py

bench: venv
	@.venv/bin/python -m bench.run

bench-full: venv
	@.venv/bin/python -m bench.run --full

soak: venv
	@.venv/bin/python -m bench.soak

# Faults under load (bench/chaos.py, about 3 minutes; not in CI). Needs DATABASE_URL's server
# (or the embedded one) only to build the database it copies into a cluster of its own.
chaos: venv
	@.venv/bin/python -m bench.chaos

clean:
	rm -rf .venv .devdata staticfiles .mypy_cache .ruff_cache .pytest_cache
