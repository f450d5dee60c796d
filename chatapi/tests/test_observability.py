"""Observability: JSON log lines, one access line per request (sync and ASGI, streams too),
the LOG_FORMAT setting, and the Prometheus endpoint with its HTTP metrics."""

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client, RequestFactory
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from accounts.models import User
from chatapi.logs import JsonFormatter, RequestContextFilter, current_request_id
from conversations.models import Message
from conversations.services import conversation_create
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.factories import make_conversation
from testsupport.servers import REPO, LiveServer

ACCESS_FIELDS = (
    "request_id",
    "method",
    "path",
    "route",
    "status",
    "streaming",
    "user_id",
    "conversation_id",
)


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "chatapi.access"]


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in ACCESS_FIELDS}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- The JSON format ---------------------------------------------------------------------------


def test_json_formatter_writes_one_object_per_record() -> None:
    # given
    record = logging.LogRecord(
        "chatapi.access", logging.INFO, __file__, 1, "%s %s", ("GET", "/x"), None
    )
    record.created = 1_795_000_000.25
    record.process = 4242
    record.request_id = "req_abc"
    record.status = 200
    record.user_id = None  # None fields are left out

    # when
    line = JsonFormatter().format(record)

    # then
    assert json.loads(line) == {
        "time": "2026-11-18T11:06:40.250+00:00",
        "level": "INFO",
        "logger": "chatapi.access",
        "message": "GET /x",
        "process": 4242,
        "request_id": "req_abc",
        "status": 200,
    }


def test_json_formatter_logs_a_request_without_its_query_string() -> None:
    # given: what django.request logs for a 4xx, with a key in the query string
    request = RequestFactory().get("/api/v1/conversations?apikey=sk-secret&access_token=t0k3n")
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Bad Request: %s", (request.path,), None
    )
    record.request = request
    record.status_code = 400

    # when
    entry = json.loads(JsonFormatter().format(record))

    # then
    assert entry["request"] == "GET /api/v1/conversations"
    assert entry["message"] == "Bad Request: /api/v1/conversations"
    assert "sk-secret" not in json.dumps(entry)
    assert "t0k3n" not in json.dumps(entry)


def test_json_formatter_keeps_a_traceback_on_one_line() -> None:
    # given
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "messaging", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )

    # when
    line = JsonFormatter().format(record)

    # then
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed"
    assert entry["exception"].startswith("Traceback (most recent call last):\n")
    assert entry["exception"].endswith("ValueError: boom")


def test_request_context_filter_tags_records_with_the_request_id() -> None:
    # given
    inside = logging.LogRecord("x", logging.INFO, __file__, 1, "in", (), None)
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "out", (), None)

    # when
    token = current_request_id.set("req_123")
    try:
        RequestContextFilter().filter(inside)
    finally:
        current_request_id.reset(token)
    RequestContextFilter().filter(outside)

    # then
    assert inside.request_id == "req_123"  # type: ignore[attr-defined]
    assert outside.request_id is None  # type: ignore[attr-defined]


def _settings_value(expression: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    production = {
        "PATH": "/usr/bin:/bin",
        "CHATAPI_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "api.example.com",
        "DATABASE_URL": "postgres://u@127.0.0.1:1/db",
        "GROQ_API_KEY": "gsk_x",
        "SUPABASE_JWT_SECRET": "s" * 32,
    }
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", f"import chatapi.settings as s; print({expression})"],
        cwd=REPO,
        env=production | env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "formatter"),
    [
        ({}, "json"),
        ({"LOG_FORMAT": "plain"}, "plain"),
        ({"CHATAPI_ENV": "development"}, "plain"),
        ({"CHATAPI_ENV": "development", "LOG_FORMAT": "json"}, "json"),
    ],
)
def test_log_format_is_json_in_production_and_plain_in_development(
    env: dict[str, str], formatter: str
) -> None:
    result = _settings_value("s.LOGGING['handlers']['console']['formatter']", env)

    assert (result.returncode, result.stdout) == (0, f"{formatter}\n"), result.stderr


def test_a_bad_log_format_fails_at_startup_naming_the_variable() -> None:
    result = _settings_value("s.LOG_FORMAT", {"LOG_FORMAT": "xml"})

    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "django.core.exceptions.ImproperlyConfigured: LOG_FORMAT='xml' must be one of: json, plain."
    )


# --- The access log ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_access_line_per_request_with_user_and_conversation(
    api_client: APIClient, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    conversation = make_conversation(owner=user)
    caplog.set_level(logging.INFO, logger="chatapi.access")

    # when
    response = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages")

    # then
    (record,) = access_records(caplog)
    assert fields_of(record) == {
        "request_id": response["request-id"],
        "method": "GET",
        "path": f"/api/v1/conversations/{conversation.pk}/messages",
        "route": "/api/v1/conversations/<str:conversation_id>/messages",
        "status": 200,
        "streaming": None,
        "user_id": str(user.pk),
        "conversation_id": str(conversation.pk),
    }
    assert 0 < record.latency_ms < 10_000  # type: ignore[attr-defined]
    assert record.getMessage() == (
        f"GET /api/v1/conversations/{conversation.pk}/messages 200 {record.latency_ms:.1f}ms"  # type: ignore[attr-defined]
    )


@pytest.mark.django_db
def test_access_line_never_carries_the_token(
    api_client: APIClient, make_token: Any, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    token = make_token(user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_API_KEY="sk-secret")
    caplog.set_level(logging.INFO, logger="chatapi.access")

    # when
    api_client.get("/api/v1/auth/me?access_token=in-the-query")

    # then
    (record,) = access_records(caplog)
    line = JsonFormatter().format(record)
    assert json.loads(line)["path"] == "/api/v1/auth/me"
    for secret in (token, "sk-secret", "in-the-query", "Bearer", "uthorization"):
        assert secret not in line


@pytest.mark.django_db
def test_access_line_of_an_unknown_route_and_an_anonymous_caller(
    anon_client: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatapi.access")

    response = anon_client.get("/api/v1/no-such-thing")

    (record,) = access_records(caplog)
    assert fields_of(record) == {
        "request_id": response["request-id"],
        "method": "GET",
        "path": "/api/v1/no-such-thing",
        "route": "<unmatched>",
        "status": 404,
        "streaming": None,
        "user_id": None,
        "conversation_id": None,
    }


@pytest.mark.django_db
def test_a_refusal_is_one_line_at_warning_even_a_503_of_an_unconfigured_auth_proxy(
    anon_client: APIClient, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # given: no Supabase Auth to proxy to
    settings.SUPABASE_URL = None
    caplog.set_level(logging.INFO)

    # when
    refused = anon_client.post(
        "/api/v1/auth/login",
        {"email": "ada@example.com", "password": "correct horse battery"},
        format="json",
    )
    missing = anon_client.get("/api/v1/no-such-thing")

    # then: the access lines only (django.request repeats none of them), at WARNING
    assert (refused.status_code, missing.status_code) == (503, 404)
    assert [
        (record.name, record.levelname, record.getMessage().rsplit(" ", 1)[0])
        for record in caplog.records
    ] == [
        ("chatapi.access", "WARNING", "POST /api/v1/auth/login 503"),
        ("chatapi.access", "WARNING", "GET /api/v1/no-such-thing 404"),
    ]


@pytest.mark.django_db
def test_an_answer_is_one_line_at_info(
    anon_client: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    anon_client.get("/api/v1/ping")

    assert [(record.name, record.levelname) for record in caplog.records] == [
        ("chatapi.access", "INFO")
    ]


def test_runservers_own_access_line_is_off(caplog: pytest.LogCaptureFixture) -> None:
    # given: daphne's runserver, which logs each request again (a 5xx at ERROR)
    from daphne.management.commands.runserver import Command

    # when
    Command().log_action(
        "http",
        "complete",
        {
            "method": "POST",
            "path": "/api/v1/auth/login",
            "status": 503,
            "time_taken": 0.01,
            "client": "127.0.0.1:50000",
        },
    )

    # then
    assert caplog.records == []


@pytest.mark.django_db
def test_access_line_of_an_admin_page_names_the_staff_user(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given
    staff = User.objects.create_superuser("root", "root@example.com", "unused-password")
    client = Client()
    client.force_login(staff)
    caplog.set_level(logging.INFO, logger="chatapi.access")

    # when
    client.get("/admin/")
    Client().get("/admin/login/")  # anonymous: the session user is looked up, and is nobody

    # then
    staff_line, anonymous_line = access_records(caplog)
    assert (staff_line.route, staff_line.user_id) == ("/admin/", str(staff.pk))  # type: ignore[attr-defined]
    assert (anonymous_line.route, anonymous_line.user_id) == ("/admin/login/", None)  # type: ignore[attr-defined]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_stream_is_logged_when_it_starts_under_asgi(
    settings: Any, make_token: Any, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    # given: the offline development model, streaming fast
    settings.LLM_PROVIDERS = {
        "local": {"class": "messaging.llm.dev.DevEchoProvider", "delay_seconds": 0.001}
    }
    conversation = await sync_to_async(conversation_create)(owner=user, model="local/dev-echo")
    caplog.set_level(logging.INFO, logger="chatapi.access")

    # when
    request = ASGIRequest(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages",
        headers={"authorization": f"Bearer {make_token(user)}"},
        json_body={"content": "Hi", "stream": True},
    )
    response = await request.start()
    logged_at_start = [fields_of(record) for record in access_records(caplog)]
    events = parse_sse(await response.read())

    # then: one line, written when the headers went out, not after the body
    assert logged_at_start == [
        {
            "request_id": response.headers["request-id"],
            "method": "POST",
            "path": f"/api/v1/conversations/{conversation.pk}/messages",
            "route": "/api/v1/conversations/<str:conversation_id>/messages",
            "status": 200,
            "streaming": True,
            "user_id": str(user.pk),
            "conversation_id": str(conversation.pk),
        }
    ]
    assert events[-1].event == "message_stop"
    assert len(access_records(caplog)) == 1
    await _settle(conversation.pk)


@sync_to_async
def _settle(conversation_id: Any) -> None:
    deadline = time.monotonic() + 5
    while Message.objects.filter(
        conversation_id=conversation_id, status=Message.Status.IN_PROGRESS
    ).exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    connection.close()


# --- Metrics ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_off_unless_enabled(settings: Any) -> None:
    settings.METRICS_ENABLED = False

    response = Client().get("/metrics")

    assert response.status_code == 404


@pytest.mark.django_db
def test_metrics_count_requests_by_route_and_status(settings: Any) -> None:
    # given
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = None
    labels = {"method": "GET", "route": "/api/v1/health"}
    before = sample("chatapi_http_requests_total", **labels, status="200")
    timed_before = sample("chatapi_http_request_duration_seconds_count", **labels)

    # when
    Client().get("/api/v1/health")
    Client().get("/api/v1/health/")
    response = Client().get("/metrics")

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
    assert sample("chatapi_http_requests_total", **labels, status="200") == before + 2
    assert sample("chatapi_http_request_duration_seconds_count", **labels) == timed_before + 2
    exposition = response.content.decode()
    assert (
        "chatapi_http_requests_total{"
        f'method="GET",route="/api/v1/health",status="200"}} {before + 2}'
    ) in exposition
    for name in (
        "chatapi_active_streams",
        "chatapi_time_to_first_token_seconds",
        "chatapi_upstream_latency_seconds",
        "chatapi_upstream_errors_total",
        "chatapi_tokens_total",
        "chatapi_cost_usd_total",
    ):
        assert f"# TYPE {name} " in exposition


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("Basic c2NyYXBlOnRva2Vu", 401),
        ("Bearer scrape-token", 200),
        ("bearer scrape-token", 200),
    ],
)
def test_metrics_token_is_required_when_set(
    settings: Any, authorization: str | None, status: int
) -> None:
    # given
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = "scrape-token"
    headers = {"Authorization": authorization} if authorization else {}

    # when
    response = Client().get("/metrics", headers=headers)

    # then
    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert response.content == b"Unauthorized.\n"


# --- Under daphne, as deployed -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_daphne_writes_json_access_lines_and_serves_metrics(
    tmp_path: Path, make_token: Any, user: User
) -> None:
    # given: a server as production runs it (JSON logs, protected metrics)
    conversation = make_conversation(owner=user)
    token = make_token(user)
    server = LiveServer(
        env={
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "METRICS_ENABLED": "true",
            "METRICS_TOKEN": "scrape-token",
        },
        log_path=tmp_path / "server.log",
    )
    try:
        # when
        listed = httpx.get(
            f"{server.url}/api/v1/conversations/{conversation.pk}/messages",
            headers={"Authorization": f"Bearer {token}"},
        )
        refused = httpx.get(f"{server.url}/metrics")
        scraped = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": "Bearer scrape-token"}
        )
    finally:
        server.stop()

    # then
    assert (listed.status_code, refused.status_code, scraped.status_code) == (200, 401, 200)
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "chatapi.access"]
    listed_line = next(
        line for line in access if line["request_id"] == listed.headers["request-id"]
    )
    assert {key: listed_line[key] for key in ("level", "method", "path", "status")} == {
        "level": "INFO",
        "method": "GET",
        "path": f"/api/v1/conversations/{conversation.pk}/messages",
        "status": 200,
    }
    assert listed_line["user_id"] == str(user.pk)
    assert listed_line["conversation_id"] == str(conversation.pk)
    assert listed_line["route"] == "/api/v1/conversations/<str:conversation_id>/messages"
    assert token not in server.log()
    assert (
        'chatapi_http_requests_total{method="GET",'
        'route="/api/v1/conversations/<str:conversation_id>/messages",status="200"} 1.0'
    ) in scraped.text
