"""API conventions every route follows: the error envelope, request ids, trailing slashes."""

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from testsupport.assertions import assert_error

pytestmark = pytest.mark.django_db


def test_health_reports_database(anon_client: APIClient) -> None:
    response = anon_client.get("/api/v1/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response["request-id"].startswith("req_")


def test_health_answers_with_trailing_slash(anon_client: APIClient) -> None:
    response = anon_client.get("/api/v1/health/")

    assert response.status_code == 200


def test_every_request_gets_its_own_id(anon_client: APIClient) -> None:
    first = anon_client.get("/api/v1/health")["request-id"]
    second = anon_client.get("/api/v1/health")["request-id"]

    assert first != second


def test_request_id_on_non_api_routes() -> None:
    response = Client().get("/admin/login/")

    assert response.status_code == 200
    assert response["request-id"].startswith("req_")


def test_unknown_api_route_is_404_envelope(anon_client: APIClient) -> None:
    response = anon_client.get("/api/v1/no-such-thing")

    body = assert_error(response, 404, "not_found_error")
    assert body["error"]["message"] == "No resource at GET /api/v1/no-such-thing."


def test_wrong_method_is_405_envelope(anon_client: APIClient) -> None:
    response = anon_client.delete("/api/v1/health")

    body = assert_error(response, 405, "invalid_request_error")
    assert body["error"]["message"] == 'Method "DELETE" not allowed.'
    assert response["Allow"] == "GET, HEAD, OPTIONS"


def test_malformed_json_is_400_envelope(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/auth/logout", data="{not json", content_type="application/json"
    )

    body = assert_error(response, 400, "invalid_request_error")
    assert "JSON parse error" in body["error"]["message"]


def test_json_nested_too_deeply_to_decode_is_400_envelope(api_client: APIClient) -> None:
    # given 100,000 nested arrays (200 kB, under the body cap)
    body = "[" * 100_000 + "]" * 100_000

    # when
    response = api_client.post("/api/v1/conversations", data=body, content_type="application/json")

    # then
    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error == {
        "type": "invalid_request_error",
        "message": "JSON parse error - nested too deeply.",
    }


def test_unauthenticated_is_401_with_bearer_challenge(anon_client: APIClient) -> None:
    response = anon_client.get("/api/v1/auth/me")

    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_health_is_503_envelope_when_database_is_unreachable(anon_client: APIClient) -> None:
    # given a connection whose server address points nowhere
    real = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT="1", OPTIONS={"connect_timeout": 1})
    try:
        # when
        response = anon_client.get("/api/v1/health")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(real)

    # then
    body = assert_error(response, 503, "api_error")
    assert body["error"]["message"] == "The database is unreachable."


def test_ping_answers_without_the_database(anon_client: APIClient) -> None:
    response = anon_client.get("/api/v1/ping")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_oversized_body_is_413_envelope(settings, api_client: APIClient) -> None:
    # given
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048

    # when
    response = api_client.post(
        "/api/v1/conversations",
        data='{"title": "' + "x" * 4096 + '"}',
        content_type="application/json",
    )

    # then
    body = assert_error(response, 413, "request_too_large")
    assert body["error"]["message"] == "The request body is larger than 2048 bytes."


def test_cors_preflight_from_an_allowed_origin(settings, anon_client: APIClient) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]

    response = anon_client.options(
        "/api/v1/conversations",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key",
    )

    assert response.status_code == 200
    assert response["access-control-allow-origin"] == "https://app.example.com"
    assert "idempotency-key" in response["access-control-allow-headers"]


def test_cors_exposes_the_apis_headers_even_on_errors(settings, anon_client: APIClient) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]

    response = anon_client.get("/api/v1/auth/me", HTTP_ORIGIN="https://app.example.com")

    assert response.status_code == 401
    assert response["access-control-allow-origin"] == "https://app.example.com"
    assert "request-id" in response["access-control-expose-headers"]


def test_no_cors_for_other_origins(settings, anon_client: APIClient) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]

    response = anon_client.get("/api/v1/ping", HTTP_ORIGIN="https://evil.example.net")

    assert response.status_code == 200
    assert "access-control-allow-origin" not in response


def test_api_answers_forbid_loading_or_framing_anything(anon_client: APIClient) -> None:
    ok = anon_client.get("/api/v1/ping")
    missing = anon_client.get("/api/v1/nothing-here")

    for response in (ok, missing):
        assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert response["X-Content-Type-Options"] == "nosniff"
