"""Assertions shared by the test suites of every app."""

from typing import Any

from django.http import HttpResponse
from django.test.utils import CaptureQueriesContext

from accounts.rls import ASSUME_SQL, CLEAR_SQL


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
