# The two commands a newcomer needs: `make run` and `make test` (see README.md).
.DEFAULT_GOAL := help
.PHONY: help run test lint format typecheck pytest pytest-rls pytest-embedded venv clean bench bench-full soak chaos fuzz

PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

help:
	@echo "make run    start the API on http://$(HOST):$(PORT) (embedded PostgreSQL unless DATABASE_URL is set)"
	@echo "make test   lint, format check, type check and the test suite"
	@echo "make bench  the quick benchmark (under 5 minutes); make bench-full for the full one"
	@echo "make soak   200 concurrent streams for 3 minutes: no errors, all stored, flat memory"
	@echo "make chaos  200 streams on two servers while one is killed, PostgreSQL restarts and Redis drops"
	@echo "make fuzz   a long Schemathesis run against the API (make test runs a short one)"

venv:
	@scripts/ensure-venv

run: export CHATAPI_ENV ?= development
run: venv
	@$(PY) manage.py migrate --no-input -v 0
	@TOKEN=$$($(PY) manage.py dev_token --email you@example.com --ttl 86400); \
	echo ""; \
	echo "chatapi: http://$(HOST):$(PORT)/api/v1   docs: http://$(HOST):$(PORT)/docs   admin: http://$(HOST):$(PORT)/admin/"; \
	echo "In another shell:    export CHATAPI_ENV=development   (manage.py then reads make run's settings)"; \
	echo "Get a token (24 h):  TOKEN=\$$($(PY) manage.py dev_token --email you@example.com --ttl 86400)"; \
	echo "Try it:              curl -H \"Authorization: Bearer $$TOKEN\" http://$(HOST):$(PORT)/api/v1/auth/me"; \
	echo "Admin account:       $(PY) manage.py createsuperuser"; \
	echo ""
	@$(PY) manage.py runserver $(HOST):$(PORT)

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
	@.venv/bin/pytest

# The API's tests again with every authenticated request run as the `authenticated` role.
pytest-rls: venv
	@DB_RLS_PER_REQUEST=true .venv/bin/pytest conversations messaging usage accounts

# The tests that start servers against the test database, or copy it, run against the embedded
# PostgreSQL whatever DATABASE_URL says: where the database lives must not matter to them (CI
# runs this after `make test`, which uses CI's server).
pytest-embedded: export CHATAPI_ENV ?= test
pytest-embedded: venv
	@env -u DATABASE_URL .venv/bin/pytest -m live_database

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
