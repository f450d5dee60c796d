"""Secrets never reach the logs: access tokens, refresh tokens, passwords, API keys in headers,
bodies or query strings, the server's own upstream keys, at every log level, in the JSON
access log and everything else a server process writes. And the admin is for staff only."""

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from chatapi.logs import JsonFormatter, RequestContextFilter
from testsupport.factories import make_conversation, make_exchange
from testsupport.fake_groq import ErrorReply, FakeGroq
from testsupport.fake_supabase import FakeSupabase
from testsupport.servers import LiveServer

GROQ_KEY = "gsk_test"  # the one key the fake Groq accepts
SUPABASE_ANON_KEY = "sb_SECRET_anon_key_7c2e0b"
METRICS_TOKEN = "SECRET_metrics_token_93ab"
PASSWORD = "SECRET password 5e8f"
QUERY_SECRET = "SECRET_query_key_d41c"


def _jwt_parts(token: str) -> list[str]:
    """The token and its signature: either alone in a log would leak it."""
    return [token, token.rsplit(".", 1)[-1]]


@pytest.mark.django_db(transaction=True)
def test_a_server_process_logs_no_secret_at_debug_in_json(tmp_path: Path) -> None:
    # given: a server logging everything (DEBUG, JSON lines) with real upstreams on loopback
    supabase = FakeSupabase(api_key=SUPABASE_ANON_KEY).start()
    groq = FakeGroq().start()
    supabase.add_user("ada@example.com", PASSWORD)
    server = LiveServer(
        env={
            "GROQ_BASE_URL": groq.base_url,
            "GROQ_API_KEY": GROQ_KEY,
            "LLM_MAX_RETRIES": "0",
            "SUPABASE_URL": supabase.url,
            "SUPABASE_KEY": SUPABASE_ANON_KEY,
            "METRICS_ENABLED": "true",
            "METRICS_TOKEN": METRICS_TOKEN,
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "json",
        },
        log_path=tmp_path / "server.log",
    )
    try:
        api = httpx.Client(base_url=server.url, timeout=30)

        # when: log in, use and refresh the session, send (once refused by Groq), log out
        login = api.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
        session = login.json()
        access, refresh = session["access_token"], session["refresh_token"]
        bearer = {"Authorization": f"Bearer {access}"}
        me = api.get("/api/v1/auth/me", headers=bearer)
        user = User.objects.get(pk=me.json()["id"])
        conversation = make_conversation(owner=user)
        sent = api.post(
            f"/api/v1/conversations/{conversation.pk}/messages",
            headers=bearer,
            json={"content": "Hi"},
        )
        groq.replies.append(
            ErrorReply(401, message="Invalid API Key", type="invalid_request_error")
        )
        refused = api.post(
            f"/api/v1/conversations/{conversation.pk}/messages",
            headers=bearer,
            json={"content": "Hi"},
        )
        with_query_key = api.get(
            f"/api/v1/conversations?apikey={QUERY_SECRET}&access_token={QUERY_SECRET}",
            headers=bearer,
        )
        tampered = api.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {access[:-4]}AAAA"}
        )
        wrong_password = api.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD + "!"}
        )
        refreshed = api.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        reused = api.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        new_access = refreshed.json()["access_token"]
        metrics = api.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        wrong_metrics = api.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}x"})
        logout = api.post(
            "/api/v1/auth/logout", headers={"Authorization": f"Bearer {new_access}"}, json={}
        )
        api.close()
    finally:
        server.stop()
        groq.stop()
        supabase.stop()

    # then: every request was answered as expected...
    assert [
        r.status_code for r in (login, me, sent, refused, with_query_key, tampered, wrong_password)
    ] == [200, 200, 201, 502, 400, 401, 401]
    assert [r.status_code for r in (refreshed, reused, metrics, wrong_metrics, logout)] == [
        200,
        401,
        200,
        401,
        204,
    ]
    # ...and logged, in JSON, down to DEBUG...
    log = server.log()
    assert log.count('"logger":"chatapi.access"') >= 12
    assert '"level":"DEBUG"' in log
    assert "Invalid API Key" in log or '"status":502' in log
    # ...with none of the secrets in it
    secrets = [
        PASSWORD,
        GROQ_KEY,
        SUPABASE_ANON_KEY,
        METRICS_TOKEN,
        QUERY_SECRET,
        *_jwt_parts(access),
        *_jwt_parts(new_access),
        refresh,
        refreshed.json()["refresh_token"],
    ]
    assert [secret for secret in secrets if secret in log] == []


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Every record at DEBUG and up, in caplog and formatted as the JSON log lines."""
    caplog.set_level(logging.DEBUG)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)


@pytest.mark.django_db
def test_this_process_logs_no_token_key_or_password_at_debug(
    settings, caplog: pytest.LogCaptureFixture, all_logs: io.StringIO, make_token, user: User
) -> None:
    # given: Supabase Auth on loopback, and a token for the user
    supabase = FakeSupabase(api_key=SUPABASE_ANON_KEY).start()
    settings.SUPABASE_URL = supabase.url
    settings.SUPABASE_KEY = SUPABASE_ANON_KEY
    supabase.add_user("ada@example.com", PASSWORD)
    token = make_token(user)
    expired = make_token(user, exp=int(time.time()) - 3600)
    conversation = make_exchange(user)
    client = APIClient()
    try:
        # when: tokens in headers (accepted, expired, malformed), keys in the query string,
        # a password and refresh tokens in bodies
        answers = [
            client.get(
                f"/api/v1/conversations/{conversation.pk}", HTTP_AUTHORIZATION=f"Bearer {token}"
            ),
            client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {expired}"),
            client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}x"),
            client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Basic {QUERY_SECRET}"),
            client.get(f"/api/v1/ping?api_key={QUERY_SECRET}"),
            client.get(f"/api/v1/nowhere?token={QUERY_SECRET}"),
            client.post(
                "/api/v1/auth/login",
                {"email": "ada@example.com", "password": PASSWORD},
                format="json",
            ),
            client.post("/api/v1/auth/refresh", {"refresh_token": QUERY_SECRET}, format="json"),
        ]
        session = answers[6].json()
        answers.append(
            client.post(
                "/api/v1/auth/refresh", {"refresh_token": session["refresh_token"]}, format="json"
            )
        )
    finally:
        supabase.stop()

    # then
    assert [answer.status_code for answer in answers] == [
        200,
        401,
        401,
        401,
        200,
        404,
        200,
        401,
        200,
    ]
    written = caplog.text + all_logs.getvalue()
    assert '"logger":"chatapi.access"' in all_logs.getvalue()
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
    secrets = [
        PASSWORD,
        SUPABASE_ANON_KEY,
        QUERY_SECRET,
        *_jwt_parts(token),
        *_jwt_parts(expired),
        session["refresh_token"],
        *_jwt_parts(session["access_token"]),
        answers[8].json()["refresh_token"],
    ]
    assert [secret for secret in secrets if secret in written] == []


# --- the admin is for staff only ---------------------------------------------------------


@pytest.fixture
def staff_client() -> Client:
    User.objects.create_superuser("root", "root@example.com", "correct horse battery")
    client = Client()
    assert client.login(username="root", password="correct horse battery")
    return client


@pytest.mark.django_db
def test_the_admin_sends_anonymous_and_non_staff_users_to_its_login(
    staff_client: Client, user: User
) -> None:
    # given: a signed-in user who is not staff, and a conversation
    User.objects.create_user("member", "member@example.com", "their own password")
    conversation = make_exchange(user)
    member = Client()
    assert member.login(username="member", password="their own password")
    pages = [
        "/admin/",
        f"/admin/conversations/conversation/{conversation.pk}/change/",
        "/admin/usage/usagerecord/dashboard/",
        "/admin/accounts/user/",
    ]

    for page in pages:
        # when
        anonymous = Client().get(page)
        non_staff = member.get(page)
        staff = staff_client.get(page)

        # then
        for response in (anonymous, non_staff):
            assert response.status_code == 302, page
            assert response["Location"].startswith("/admin/login/?next=/admin/"), page
        assert staff.status_code == 200, page


@pytest.mark.django_db
def test_a_non_staff_user_cannot_sign_in_to_the_admin() -> None:
    # given
    User.objects.create_user("member", "member@example.com", "their own password")

    # when
    response = Client().post(
        "/admin/login/", {"username": "member", "password": "their own password"}
    )

    # then: the form again, with its error, and no session
    assert response.status_code == 200
    assert "Please enter the correct" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


@pytest.mark.django_db
def test_staff_without_permissions_are_refused_the_models(user: User) -> None:
    # given: staff, but granted nothing
    User.objects.create_user("clerk", "clerk@example.com", "clerk password", is_staff=True)
    conversation = make_exchange(user)
    clerk = Client()
    assert clerk.login(username="clerk", password="clerk password")

    # when
    index = clerk.get("/admin/")
    change = clerk.get(f"/admin/conversations/conversation/{conversation.pk}/change/")

    # then
    assert index.status_code == 200
    assert "have permission to view or edit anything" in index.content.decode()
    assert change.status_code == 403
