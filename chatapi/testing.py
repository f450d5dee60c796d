"""Assertions and helpers shared by the test suites of every app."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from django.db import connection
from django.http import HttpResponse
from django.test.utils import CaptureQueriesContext

from accounts.rls import ASSUME_SQL, CLEAR_SQL

REPO = Path(__file__).resolve().parent.parent


def assert_error(response: HttpResponse, status: int, error_type: str) -> dict[str, Any]:
    """The response is the API's error envelope with this status and type; returns its body."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()  # type: ignore[attr-defined]
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["request_id"] == response["request-id"]
    assert body["request_id"].startswith("req_")
    return body


def app_queries(context: CaptureQueriesContext) -> list[str]:
    """The SQL a request ran, without the statements of its caller transaction
    (DB_RLS_PER_REQUEST): the role and claims settings and, inside a test's transaction, the
    savepoint around them. Query-count tests then hold with the setting on or off."""
    sql = [query["sql"] for query in context.captured_queries]
    skip: set[int] = set()
    for index, statement in enumerate(sql):
        if statement.startswith(ASSUME_SQL.split("%s")[0]):
            skip.add(index)
            if index > 0 and sql[index - 1].startswith("SAVEPOINT "):
                skip.add(index - 1)
        elif statement == CLEAR_SQL:
            skip.add(index)
            if index + 1 < len(sql) and sql[index + 1].startswith("RELEASE SAVEPOINT "):
                skip.add(index + 1)
    return [statement for index, statement in enumerate(sql) if index not in skip]


def live_database_url() -> str:
    """A URL for the database the tests run against, for a server in another process."""
    db = connection.settings_dict
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    host = db["HOST"] or ""
    if host.startswith("/"):  # the embedded server's socket directory
        return f"postgresql://{user}{password}@/{db['NAME']}?host={quote(host)}"
    return f"postgresql://{user}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """``daphne chatapi.asgi:application`` in a process of its own on a free loopback port,
    against the test database (use it from tests with ``transaction=True``, so the server
    sees their rows). Its stderr, where it logs, goes to ``log_path``."""

    def __init__(self, *, env: dict[str, str], log_path: Path, start_timeout: float = 30) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # Not the test process's REDIS_URL (a server uses Redis only when a test asks), nor
        # an async-safety override a test may have set for itself.
        base = {
            key: value
            for key, value in os.environ.items()
            if key not in ("REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
        }
        base |= {
            "CHATAPI_ENV": "test",
            "DATABASE_URL": live_database_url(),
            "SHUTDOWN_HANDLE_SIGNALS": "true",
        }
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-v",
                    "0",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "chatapi.asgi:application",
                ],
                cwd=REPO,
                env=base | env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """Die at once, with no chance to clean up (SIGKILL)."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
