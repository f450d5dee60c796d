"""Assertions shared by the test suites of every app."""

from typing import Any

from django.http import HttpResponse


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
