"""The DRF adapter, over HTTP: `Authorization: Bearer <Supabase token>` on GET /api/v1/auth/me."""

import time
import uuid
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.authentication import session_authenticate
from accounts.models import User
from accounts.tokens import MAX_TOKEN_BYTES
from conftest import TokenFactory
from testsupport.assertions import app_queries, assert_error
from testsupport.fake_supabase import SHORT_TIMEOUT, FakeSupabase, unsigned_token
from testsupport.helpers import eventually

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me"
CHALLENGE = 'Bearer realm="api"'

HeaderFactory = Callable[[TokenFactory], str]


def me_as(client: APIClient, authorization: str):
    return client.get(ME, HTTP_AUTHORIZATION=authorization)


def iso(user: User) -> str:
    return user.date_joined.isoformat().replace("+00:00", "Z")


def test_missing_authorization_is_401_with_bearer_challenge(anon_client) -> None:
    # when
    response = anon_client.get(ME)

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize(
    ("make_header", "message"),
    [
        pytest.param(
            lambda make: f"Bearer {make(exp=int(time.time()) - 60)}",
            "Token has expired.",
            id="expired",
        ),
        pytest.param(
            lambda make: f"Bearer {make(nbf=int(time.time()) + 60)}",
            "Token is not yet valid.",
            id="not-yet-valid",
        ),
        pytest.param(
            lambda make: f"Bearer {make(secret='another-projects-secret-0123456789abcdef')}",
            "Token signature is invalid.",
            id="bad-signature",
        ),
        pytest.param(
            lambda make: f"Bearer {make(aud='anon')}",
            "Token audience is not accepted.",
            id="wrong-aud",
        ),
        pytest.param(
            lambda make: f"Bearer {make(role='anon')}",
            'Token role "anon" is not accepted; sign in as a user.',
            id="anon-role",
        ),
        pytest.param(
            lambda make: f"Bearer {make(role='service_role')}",
            'Token role "service_role" is not accepted; sign in as a user.',
            id="service-role",
        ),
        pytest.param(
            lambda make: f"Bearer {make(sub='not-a-uuid')}",
            "Token subject is not a user id.",
            id="non-uuid-sub",
        ),
        pytest.param(
            lambda make: f"Bearer {unsigned_token({'sub': str(uuid.uuid4())}, {'alg': 'none'})}",
            'Token algorithm "none" is not accepted.',
            id="alg-none",
        ),
        pytest.param(lambda make: "Bearer not-a-jwt", "Token is malformed.", id="garbage"),
        pytest.param(
            lambda make: "Bearer " + "x" * (MAX_TOKEN_BYTES + 1),
            "Token is too large.",
            id="oversized",
        ),
        pytest.param(
            lambda make: "Bearer t\u00f6ken",
            "Token is malformed.",
            id="non-ascii",
        ),
        pytest.param(
            lambda make: "Basic dXNlcjpwYXNzd29yZA==",
            "Use an 'Authorization: Bearer <token>' header.",
            id="basic-scheme",
        ),
        pytest.param(
            lambda make: make(),
            "Use an 'Authorization: Bearer <token>' header.",
            id="token-without-scheme",
        ),
        pytest.param(
            lambda make: "Bearer",
            "The Authorization header must be 'Bearer <token>'.",
            id="scheme-only",
        ),
        pytest.param(
            lambda make: f"Bearer {make()} extra",
            "The Authorization header must be 'Bearer <token>'.",
            id="extra-parts",
        ),
    ],
)
def test_bad_authorization_is_401_saying_what_was_wrong(
    anon_client, make_token, make_header: HeaderFactory, message: str
) -> None:
    # when
    response = me_as(anon_client, make_header(make_token))

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == message
    assert response["WWW-Authenticate"] == CHALLENGE


def test_failure_messages_never_contain_the_secret(anon_client, make_token) -> None:
    # given
    headers = [
        f"Bearer {make_token(exp=1)}",
        f"Bearer {make_token(secret='x' * 40)}",
        f"Bearer {make_token(aud='other')}",
        f"Bearer {make_token(role='anon')}",
        f"Bearer {make_token()[:-3]}",
        "Bearer a.b.c",
    ]

    # when
    bodies = [me_as(anon_client, header).content.decode() for header in headers]

    # then
    assert [settings.SUPABASE_JWT_SECRET in body for body in bodies] == [False] * 6
    assert ["authentication_error" in body for body in bodies] == [True] * 6


def test_valid_hs256_token_identifies_the_user(anon_client, make_token, user) -> None:
    # given
    token = make_token(user, session_id="sess-1", aal="aal2")

    # when
    response = me_as(anon_client, f"Bearer {token}")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "id": str(user.pk),
        "email": "ada@example.com",
        "role": "authenticated",
        "aal": "aal2",
        "session_id": "sess-1",
        "is_anonymous": False,
        "date_joined": iso(user),
    }


def test_scheme_is_case_insensitive(anon_client, make_token, user) -> None:
    # when
    response = me_as(anon_client, f"bearer {make_token(user)}")

    # then
    assert response.status_code == 200


@pytest.mark.parametrize("key_name", ["es256_key", "rs256_key"])
def test_token_signed_with_a_jwks_key_is_accepted(
    anon_client, supabase: FakeSupabase, key_name: str
) -> None:
    # given
    sub = uuid.uuid4()
    token = supabase.token(key=getattr(supabase, key_name), sub=str(sub), email="jw@example.com")

    # when
    response = me_as(anon_client, f"Bearer {token}")

    # then
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["email"]) == (str(sub), "jw@example.com")
    assert supabase.jwks_fetches == 1


def test_keys_are_fetched_once_per_process(anon_client, supabase: FakeSupabase) -> None:
    # when
    statuses = [me_as(anon_client, f"Bearer {supabase.token()}").status_code for _ in range(3)]

    # then
    assert statuses == [200, 200, 200]
    assert supabase.jwks_fetches == 1


def test_wrong_issuer_is_401(anon_client, supabase: FakeSupabase) -> None:
    # given
    token = supabase.token(iss="https://other-project.supabase.co/auth/v1")

    # when
    response = me_as(anon_client, f"Bearer {token}")

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "Token issuer is not accepted."


@pytest.mark.parametrize("mode", ["error", "drop", "slow"])
def test_jwks_down_and_no_cached_keys_is_503_without_challenge(
    anon_client, supabase: FakeSupabase, settings, mode
) -> None:
    # given
    settings.SUPABASE_HTTP_TIMEOUT_SECONDS = SHORT_TIMEOUT
    supabase.jwks_mode = mode

    # when
    response = me_as(anon_client, f"Bearer {supabase.token()}")

    # then
    body = assert_error(response, 503, "api_error")
    assert body["error"]["message"] == "Token signing keys are unavailable; try again shortly."
    assert "WWW-Authenticate" not in response


def test_jwks_down_with_cached_keys_keeps_working(anon_client, supabase, settings) -> None:
    # given: every request refreshes the keys, and the endpoint goes down after the first
    settings.SUPABASE_JWKS_CACHE_SECONDS = 0
    settings.SUPABASE_JWKS_MIN_REFRESH_SECONDS = 0
    first = me_as(anon_client, f"Bearer {supabase.token()}")
    supabase.jwks_mode = "error"

    # when: another token (one already verified is not checked again for a few seconds)
    second = me_as(anon_client, f"Bearer {supabase.token()}")

    # then
    assert (first.status_code, second.status_code) == (200, 200)
    assert supabase.jwks_fetches == 2


def test_hs256_tokens_need_no_jwks(anon_client, make_token, supabase: FakeSupabase) -> None:
    # given: the endpoint is down, but HS256 never asks it
    supabase.jwks_mode = "error"

    # when
    response = me_as(anon_client, f"Bearer {make_token()}")

    # then
    assert response.status_code == 200
    assert supabase.jwks_fetches == 0


# --- the user behind the token -------------------------------------------------------------


def test_user_is_created_on_first_sight(anon_client, make_token) -> None:
    # given
    sub = uuid.UUID("0b5c7e1e-2d2c-4f6a-9d55-7e0f3f8f1a01")
    token = make_token(sub=str(sub), email="new@example.com")

    # when
    response = me_as(anon_client, f"Bearer {token}")

    # then
    assert response.status_code == 200
    created = User.objects.get()
    assert (created.pk, created.email, created.username) == (sub, "new@example.com", None)
    assert (created.is_active, created.is_staff, created.has_usable_password()) == (
        True,
        False,
        False,
    )
    assert response.json()["date_joined"] == iso(created)


def test_email_is_updated_when_the_claims_change(anon_client, make_token, user) -> None:
    # given
    token = make_token(user, email="ada.lovelace@example.com")

    # when
    response = me_as(anon_client, f"Bearer {token}")

    # then
    assert response.json()["email"] == "ada.lovelace@example.com"
    user.refresh_from_db()
    assert user.email == "ada.lovelace@example.com"


def test_known_user_costs_one_read_and_no_write(anon_client, make_token, user) -> None:
    # given
    token = make_token(user)

    # when
    with CaptureQueriesContext(connection) as captured:
        response = me_as(anon_client, f"Bearer {token}")

    # then
    assert response.status_code == 200
    queries = app_queries(captured)
    assert len(queries) == 1
    assert queries[0].startswith("SELECT ")


def test_token_without_email_keeps_the_stored_email(anon_client, make_token, user) -> None:
    # given: a phone sign-in's token has an empty email
    token = make_token(user, email="")

    # when
    response = me_as(anon_client, f"Bearer {token}")

    # then
    assert response.json()["email"] == "ada@example.com"
    user.refresh_from_db()
    assert user.email == "ada@example.com"


def test_inactive_user_is_401(anon_client, make_token, user) -> None:
    # given
    User.objects.filter(pk=user.pk).update(is_active=False)

    # when
    response = me_as(anon_client, f"Bearer {make_token(user)}")

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "This account is disabled."
    assert response["WWW-Authenticate"] == CHALLENGE


def test_a_known_user_is_read_once_while_the_copy_is_fresh(
    anon_client, make_token, user, settings
) -> None:
    # given: a first request read the user
    settings.AUTH_USER_CACHE_SECONDS = 60
    token = make_token(user)
    assert me_as(anon_client, f"Bearer {token}").status_code == 200

    # when
    with CaptureQueriesContext(connection) as captured:
        response = me_as(anon_client, f"Bearer {token}")

    # then
    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.com"
    assert app_queries(captured) == []


def test_each_caller_gets_a_copy_of_the_kept_user_that_it_may_change(
    make_token, user, settings
) -> None:
    settings.AUTH_USER_CACHE_SECONDS = 60
    token = make_token(user)
    first, _ = session_authenticate(token)

    # when: one caller changes its copy
    first.username = "changed"
    second, _ = session_authenticate(token)

    # then: the next gets the user as read, a stored row that saves as an update
    assert second is not first
    assert second.username == user.username
    assert second.pk == user.pk
    assert not second._state.adding
    assert second._state.db == "default"
    second.username = "saved"
    second.save(update_fields=["username"])
    assert User.objects.get(pk=user.pk).username == "saved"


def test_a_user_disabled_in_this_process_is_refused_at_once(
    anon_client, make_token, user, settings
) -> None:
    # given
    settings.AUTH_USER_CACHE_SECONDS = 60
    token = make_token(user)
    assert me_as(anon_client, f"Bearer {token}").status_code == 200

    # when: the admin's save
    user.is_active = False
    user.save()

    # then
    assert_error(me_as(anon_client, f"Bearer {token}"), 401, "authentication_error")


def test_a_user_disabled_elsewhere_is_refused_once_the_copy_is_stale(
    anon_client, make_token, user, settings
) -> None:
    # given: this process's copy, then the user disabled without this process's signals
    # (as another server process's admin saves it)
    settings.AUTH_USER_CACHE_SECONDS = 0.3
    token = make_token(user)
    assert me_as(anon_client, f"Bearer {token}").status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)

    # when
    served = me_as(anon_client, f"Bearer {token}")

    # then: the copy until it is 0.3 s old, the refusal after
    assert served.status_code == 200
    eventually(lambda: me_as(anon_client, f"Bearer {token}").status_code == 401, wait=5)


def test_a_new_email_in_the_claims_is_stored_whatever_the_copy(
    anon_client, make_token, user, settings
) -> None:
    # given
    settings.AUTH_USER_CACHE_SECONDS = 60
    assert me_as(anon_client, f"Bearer {make_token(user)}").status_code == 200

    # when
    response = me_as(anon_client, f"Bearer {make_token(user, email='ada.l@example.com')}")

    # then
    assert response.json()["email"] == "ada.l@example.com"
    user.refresh_from_db()
    assert user.email == "ada.l@example.com"


def test_without_the_cache_every_request_reads_the_user(
    anon_client, make_token, user, settings
) -> None:
    # given
    settings.AUTH_USER_CACHE_SECONDS = 0
    token = make_token(user)
    assert me_as(anon_client, f"Bearer {token}").status_code == 200

    # when
    with CaptureQueriesContext(connection) as captured:
        me_as(anon_client, f"Bearer {token}")

    # then
    assert len(app_queries(captured)) == 1


def test_public_routes_ignore_a_bad_token(anon_client) -> None:
    # when: login is not authenticated, so a stale token does not get in the way
    response = anon_client.post(
        "/api/v1/auth/login",
        {"email": "not-an-email", "password": "whatever"},
        format="json",
        HTTP_AUTHORIZATION="Bearer expired.or.garbage",
    )

    # then
    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["message"] == "email: Enter a valid email address."
