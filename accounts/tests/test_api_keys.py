"""API keys: created with a session and shown once, stored as a keyed hash, accepted as
``x-api-key`` or a bearer token on the API's routes within their scopes, revoked at once,
and managed only with a Supabase session."""

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, User
from accounts.services import api_key_create
from conversations.services import conversation_create
from testsupport.assertions import app_queries, assert_error
from testsupport.factories import make_usage

pytestmark = pytest.mark.django_db

ALL_SCOPES = ["conversations:read", "conversations:write", "usage:read"]


def key_client(secret: str, *, header: str = "x-api-key") -> APIClient:
    client = APIClient()
    if header == "x-api-key":
        client.credentials(HTTP_X_API_KEY=secret)
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_created_key_is_shown_once_and_stored_only_as_its_keyed_hash(
    api_client: APIClient, user: User, settings
) -> None:
    # when
    created = api_client.post("/api/v1/api-keys", {"name": "nightly report"}, format="json")
    listed = api_client.get("/api/v1/api-keys")

    # then: a recognisable secret of 256 random bits, all three scopes by default
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert re.fullmatch(r"sk-chatapi-[A-Za-z0-9_-]{43}", secret)
    assert body["prefix"] == secret[:16]
    assert (body["name"], body["scopes"], body["expires_at"], body["last_used_at"]) == (
        "nightly report",
        ALL_SCOPES,
        None,
        None,
    )
    stored = ApiKey.objects.get(pk=body["id"])
    assert stored.user_id == user.pk
    assert (
        stored.key_hash
        == hmac.new(settings.API_KEY_PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()
    )
    assert secret not in str(ApiKey.objects.filter(pk=stored.pk).values().get())
    assert listed.status_code == 200
    (listed_key,) = listed.json()["data"]
    assert "key" not in listed_key
    assert listed_key["id"] == body["id"]
    assert secret not in listed.content.decode()


def test_scopes_are_stored_once_each_in_a_fixed_order(api_client: APIClient) -> None:
    created = api_client.post(
        "/api/v1/api-keys",
        {"name": "k", "scopes": ["usage:read", "conversations:read", "usage:read"]},
        format="json",
    )

    assert created.json()["scopes"] == ["conversations:read", "usage:read"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "k", "scopes": []}, "scopes"),
        ({"name": "k", "scopes": ["admin"]}, "scopes"),
        ({"name": "k", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "k" * 101}, "name"),
    ],
)
def test_a_bad_key_request_is_refused_by_field(
    api_client: APIClient, body: dict[str, object], field: str
) -> None:
    response = api_client.post("/api/v1/api-keys", body, format="json")

    error = assert_error(response, 400, "invalid_request_error")
    assert list(error["error"]["details"]["fields"]) == [field]


@pytest.mark.parametrize("header", ["x-api-key", "bearer"])
def test_a_key_authenticates_as_its_owner(user: User, header: str) -> None:
    # given
    conversation_create(owner=user, model="openai/gpt-oss-20b", title="mine")
    _, secret = api_key_create(user=user, name="k", scopes=ALL_SCOPES)

    # when
    response = key_client(secret, header=header).get("/api/v1/conversations")

    # then
    assert response.status_code == 200
    assert [c["title"] for c in response.json()["data"]] == ["mine"]


def test_an_unknown_key_is_refused(user: User) -> None:
    api_key_create(user=user, name="k", scopes=ALL_SCOPES)

    response = key_client("sk-chatapi-" + "A" * 43).get("/api/v1/conversations")

    error = assert_error(response, 401, "authentication_error")
    assert error["error"]["message"] == "Invalid API key."
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_revoked_key_is_refused_at_once(api_client: APIClient, user: User) -> None:
    # given: a key that works
    api_key, secret = api_key_create(user=user, name="k", scopes=ALL_SCOPES)
    assert key_client(secret).get("/api/v1/conversations").status_code == 200

    # when
    revoked = api_client.delete(f"/api/v1/api-keys/{api_key.pk}")

    # then
    assert revoked.status_code == 204
    error = assert_error(
        key_client(secret).get("/api/v1/conversations"), 401, "authentication_error"
    )
    assert error["error"]["message"] == "This API key has been revoked."
    (listed,) = api_client.get("/api/v1/api-keys").json()["data"]
    assert listed["revoked_at"] is not None


def test_an_expired_key_is_refused(user: User) -> None:
    api_key, secret = api_key_create(user=user, name="k", scopes=ALL_SCOPES)
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    error = assert_error(
        key_client(secret).get("/api/v1/conversations"), 401, "authentication_error"
    )

    assert error["error"]["message"] == "This API key has expired."


def test_a_disabled_users_key_is_refused(user: User) -> None:
    _, secret = api_key_create(user=user, name="k", scopes=ALL_SCOPES)
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert_error(key_client(secret).get("/api/v1/conversations"), 401, "authentication_error")


@pytest.mark.parametrize(
    ("scopes", "method", "path", "missing"),
    [
        (["usage:read"], "get", "/api/v1/conversations", "conversations:read"),
        (["conversations:read"], "post", "/api/v1/conversations", "conversations:write"),
        (["conversations:read"], "get", "/api/v1/usage/stats", "usage:read"),
        (["conversations:write"], "get", "/api/v1/usage/daily", "usage:read"),
    ],
)
def test_a_route_outside_the_keys_scopes_is_forbidden_naming_the_scope(
    user: User, scopes: list[str], method: str, path: str, missing: str
) -> None:
    _, secret = api_key_create(user=user, name="k", scopes=scopes)

    response = getattr(key_client(secret), method)(path, {}, format="json")

    error = assert_error(response, 403, "permission_error")
    assert error["error"]["message"] == f"This API key lacks the scope '{missing}'."
    assert error["error"]["details"] == {"required_scope": missing}


def test_any_key_may_list_the_models(user: User) -> None:
    _, secret = api_key_create(user=user, name="k", scopes=["usage:read"])

    assert key_client(secret).get("/api/v1/models").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/api-keys"),
        ("post", "/api/v1/api-keys"),
        ("delete", "/api/v1/api-keys/{id}"),
        ("get", "/api/v1/auth/me"),
        ("post", "/api/v1/auth/logout"),
    ],
)
def test_a_key_cannot_manage_keys_nor_use_session_routes(
    user: User, method: str, path: str
) -> None:
    api_key, secret = api_key_create(user=user, name="k", scopes=ALL_SCOPES)

    response = getattr(key_client(secret), method)(
        path.format(id=api_key.pk), {"name": "another"}, format="json"
    )

    error = assert_error(response, 403, "permission_error")
    assert (
        error["error"]["message"] == "API keys cannot use this route: it needs a Supabase session."
    )
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().revoked_at is None


@pytest.mark.parametrize("whose", ["other", "missing", "malformed"])
def test_another_users_missing_or_malformed_key_id_is_the_same_404(
    api_client: APIClient, other_user: User, whose: str
) -> None:
    theirs, _ = api_key_create(user=other_user, name="theirs", scopes=ALL_SCOPES)
    key_id = {
        "other": str(theirs.pk),
        "missing": "6f1b3d2f-4c5e-4f70-9bac-1d2e3f4a5b6c",
        "malformed": "not-a-uuid",
    }[whose]

    response = api_client.delete(f"/api/v1/api-keys/{key_id}")

    error = assert_error(response, 404, "not_found_error")
    assert error["error"]["message"] == "API key not found."
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_last_used_at_is_written_at_most_once_a_minute(user: User) -> None:
    # given: a key used once
    api_key, secret = api_key_create(user=user, name="k", scopes=ALL_SCOPES)
    client = key_client(secret)
    client.get("/api/v1/models")
    api_key.refresh_from_db()
    first_use = api_key.last_used_at
    assert first_use is not None

    # when: used again within the minute, then a minute after the stored use
    client.get("/api/v1/models")
    api_key.refresh_from_db()
    unchanged = api_key.last_used_at
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first_use - timedelta(seconds=61))
    client.get("/api/v1/models")
    api_key.refresh_from_db()

    # then
    assert unchanged == first_use
    assert api_key.last_used_at is not None
    assert api_key.last_used_at >= first_use


def test_a_request_within_the_minute_reads_the_key_in_one_query(user: User) -> None:
    api_key, secret = api_key_create(user=user, name="k", scopes=ALL_SCOPES)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    client = key_client(secret)

    with CaptureQueriesContext(connection) as context:
        assert client.get("/api/v1/conversations").status_code == 200

    # the key with its user, then the (empty) conversation list's one query
    queries = app_queries(context)
    assert len(queries) == 2
    assert '"accounts_apikey"."key_hash" = ' in queries[0]


def test_usage_statistics_of_one_key(api_client: APIClient, user: User) -> None:
    # given: two calls with key A, one with key B, one from a session
    key_a, _ = api_key_create(user=user, name="a", scopes=ALL_SCOPES)
    key_b, _ = api_key_create(user=user, name="b", scopes=ALL_SCOPES)
    at = datetime(2026, 11, 2, 12, tzinfo=UTC)
    make_usage(user=user, at=at, input_tokens=10, output_tokens=5, cost_usd="0.1", api_key=key_a)
    make_usage(user=user, at=at, input_tokens=20, output_tokens=5, cost_usd="0.2", api_key=key_a)
    make_usage(user=user, at=at, input_tokens=40, output_tokens=5, cost_usd="0.4", api_key=key_b)
    make_usage(user=user, at=at, input_tokens=80, output_tokens=5, cost_usd="0.8")

    # when: whole days (where the rollups would answer) and open ranges
    stats = api_client.get(
        "/api/v1/usage/stats",
        {"from": "2026-11-01", "to": "2026-11-30", "api_key_id": str(key_a.pk)},
    ).json()
    open_stats = api_client.get("/api/v1/usage/stats", {"api_key_id": str(key_b.pk)}).json()
    everything = api_client.get("/api/v1/usage/stats").json()
    daily = api_client.get(
        "/api/v1/usage/daily",
        {"from": "2026-11-02", "to": "2026-11-03", "api_key_id": str(key_a.pk)},
    ).json()

    # then
    assert (stats["requests"], stats["input_tokens"], Decimal(stats["cost_usd"])) == (
        2,
        30,
        Decimal("0.3"),
    )
    assert (open_stats["requests"], open_stats["input_tokens"]) == (1, 40)
    assert (everything["requests"], everything["input_tokens"]) == (4, 150)
    assert [(d["date"], d["requests"], d["input_tokens"]) for d in daily["data"]] == [
        ("2026-11-02", 2, 30),
        ("2026-11-03", 0, 0),
    ]


@pytest.mark.parametrize("path", ["/api/v1/usage/stats", "/api/v1/usage/daily"])
@pytest.mark.parametrize("whose", ["other", "missing", "malformed"])
def test_usage_of_another_users_key_is_refused_like_a_missing_one(
    api_client: APIClient, other_user: User, path: str, whose: str
) -> None:
    theirs, _ = api_key_create(user=other_user, name="theirs", scopes=ALL_SCOPES)
    make_usage(
        user=other_user,
        at=datetime(2026, 11, 2, tzinfo=UTC),
        input_tokens=1,
        output_tokens=1,
        cost_usd="0.1",
        api_key=theirs,
    )
    key_id = {"other": str(theirs.pk), "missing": "6f1b3d2f-4c5e-4f70-9bac-1d2e3f4a5b6c"}.get(
        whose, "nope"
    )

    response = api_client.get(path, {"api_key_id": key_id})

    error = assert_error(response, 404, "not_found_error")
    assert error["error"]["message"] == "API key not found."


def test_the_admin_lists_keys_per_user_without_secrets_and_revokes_them(
    admin_client: Client, user: User
) -> None:
    # given
    api_key, secret = api_key_create(user=user, name="ci runner", scopes=ALL_SCOPES)

    # when
    listing = admin_client.get("/admin/accounts/apikey/")
    user_page = admin_client.get(f"/admin/accounts/user/{user.pk}/change/")
    detail = admin_client.get(f"/admin/accounts/apikey/{api_key.pk}/change/")
    revoked = admin_client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [str(api_key.pk)]},
        follow=True,
    )

    # then
    for page in (listing, user_page, detail):
        assert page.status_code == 200
        html = page.content.decode()
        assert "ci runner" in html
        assert api_key.prefix in html
        assert secret not in html
        assert api_key.key_hash not in html
    assert "Revoked 1 API key(s)." in revoked.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
