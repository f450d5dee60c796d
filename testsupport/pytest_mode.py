"""A pytest plugin loaded first (``-p testsupport.pytest_mode`` in pyproject.toml), before
pytest-django reads the settings: tests run in "test" mode, with local defaults for
secrets and the embedded PostgreSQL unless DATABASE_URL is set (CI sets it)."""

import os

os.environ.setdefault("CHATAPI_ENV", "test")
# The test process keeps its own signal handling; servers the tests start get theirs back
# (testsupport.servers.LiveServer).
os.environ.setdefault("SHUTDOWN_HANDLE_SIGNALS", "false")
