"""Register, login, refresh and logout, proxied to a fake Supabase Auth (GoTrue) on loopback."""

import pytest
from rest_framework.test import APIClient

from accounts.gotrue import gotrue_client
from testsupport.assertions import assert_error
from testsupport.fake_supabase import (
    API_KEY,
    SESSION_SECONDS,
    SHORT_TIMEOUT,
    FakeSupabase,
    FakeUser,
)

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"
PASSWORD = "correct horse battery"


def post(client: APIClient, path: str, body: dict[str, object], token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return client.post(path, body, format="json", headers=headers)


def user_fields(user: FakeUser) -> dict[str, object]:
    """What the API passes on of GoTrue's user object."""
    return {
        "id": user.id,
        "email": user.email,
        "phone": "",
        "role": "authenticated",
        "email_confirmed_at": user.email_confirmed_at,
        "created_at": user.created_at,
        "updated_at": user.created_at,
        "user_metadata": user.user_metadata,
    }


def login(client: APIClient, email: str = "ada@example.com") -> dict[str, object]:
    response = post(client, LOGIN, {"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.content
    session: dict[str, object] = response.json()
    return session


@pytest.fixture
def ada(supabase: FakeSupabase) -> FakeUser:
    return supabase.add_user("ada@example.com", PASSWORD)


# --- register ------------------------------------------------------------------------------


def test_register_answers_201_with_a_session(anon_client, supabase: FakeSupabase) -> None:
    # when
    response = post(
        anon_client,
        REGISTER,
        {"email": "ada@example.com", "password": PASSWORD, "user_metadata": {"name": "Ada"}},
    )

    # then
    assert response.status_code == 201
    body = response.json()
    created = supabase.users["ada@example.com"]
    assert body["user"] == user_fields(created)
    assert created.user_metadata == {"name": "Ada"}
    session = body["session"]
    assert session["user"] == body["user"]
    assert (session["token_type"], session["expires_in"]) == ("bearer", SESSION_SECONDS)
    assert supabase.refresh_tokens[session["refresh_token"]].user_id == created.id
    sent = supabase.requests[-1]
    assert (sent.method, sent.path, sent.headers["apikey"]) == (
        "POST",
        "/auth/v1/signup",
        API_KEY,
    )
    assert sent.body == {"email": "ada@example.com", "password": PASSWORD, "data": {"name": "Ada"}}


def test_registered_session_authenticates_the_api(anon_client, supabase: FakeSupabase) -> None:
    # given: the access token GoTrue issued, signed with the project's ES256 key
    response = post(anon_client, REGISTER, {"email": "grace@example.com", "password": PASSWORD})
    access_token = response.json()["session"]["access_token"]

    # when
    me = anon_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {access_token}")

    # then
    assert me.status_code == 200
    assert (me.json()["id"], me.json()["email"]) == (
        supabase.users["grace@example.com"].id,
        "grace@example.com",
    )


def test_register_with_email_confirmation_has_no_session(
    anon_client, supabase: FakeSupabase
) -> None:
    # given
    supabase.confirm_email = True

    # when
    response = post(anon_client, REGISTER, {"email": "ada@example.com", "password": PASSWORD})

    # then
    assert response.status_code == 201
    created = supabase.users["ada@example.com"]
    assert response.json() == {"user": user_fields(created), "session": None}
    assert created.email_confirmed_at is None


def test_register_twice_is_409(anon_client, supabase: FakeSupabase, ada) -> None:
    # when
    response = post(anon_client, REGISTER, {"email": "ada@example.com", "password": PASSWORD})

    # then
    body = assert_error(response, 409, "invalid_request_error")
    assert body["error"]["message"] == "User already registered"
    assert body["error"]["details"] == {"supabase_error_code": "user_already_exists"}


def test_password_gotrue_finds_weak_is_400_with_its_message(
    anon_client, supabase: FakeSupabase
) -> None:
    # given: the project demands longer passwords than the API's own minimum
    supabase.min_password_length = 10

    # when
    response = post(anon_client, REGISTER, {"email": "ada@example.com", "password": "short1"})

    # then
    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["message"] == "Password should be at least 10 characters."
    assert body["error"]["details"] == {"supabase_error_code": "weak_password"}


def test_unknown_field_is_400_naming_it(anon_client, supabase: FakeSupabase) -> None:
    # when
    response = post(
        anon_client,
        REGISTER,
        {"email": "ada@example.com", "password": PASSWORD, "username": "ada"},
    )

    # then
    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["message"] == "username: Unknown field."
    assert body["error"]["details"] == {"fields": {"username": ["Unknown field."]}}
    assert supabase.requests == []


def test_a_value_of_the_wrong_json_type_is_400_not_coerced(
    anon_client, supabase: FakeSupabase
) -> None:
    # when: a number where the document says string (DRF alone would read it as "12345678")
    response = post(anon_client, LOGIN, {"email": "ada@example.com", "password": 12345678})

    # then
    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["details"] == {"fields": {"password": ["Not a valid string."]}}
    assert supabase.requests == []


def test_invalid_body_is_400_before_calling_supabase(anon_client, supabase: FakeSupabase) -> None:
    # when
    response = post(anon_client, REGISTER, {"email": "not-an-email", "password": "12345"})

    # then
    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["details"] == {
        "fields": {
            "email": ["Enter a valid email address."],
            "password": ["Ensure this field has at least 6 characters."],
        }
    }
    assert supabase.requests == []


# --- login ---------------------------------------------------------------------------------


def test_login_answers_a_session(anon_client, supabase: FakeSupabase, ada) -> None:
    # when
    response = post(anon_client, LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    # then
    assert response.status_code == 200
    body = response.json()
    assert sorted(body) == [
        "access_token",
        "expires_at",
        "expires_in",
        "refresh_token",
        "token_type",
        "user",
    ]
    assert body["user"] == user_fields(ada)
    sent = supabase.requests[-1]
    assert (sent.path, sent.query, sent.headers["apikey"]) == (
        "/auth/v1/token",
        {"grant_type": ["password"]},
        API_KEY,
    )
    assert sent.body == {"email": "ada@example.com", "password": PASSWORD}


@pytest.mark.parametrize(
    ("email", "password"),
    [("ada@example.com", "wrong password"), ("nobody@example.com", PASSWORD)],
    ids=["wrong-password", "unknown-email"],
)
def test_bad_credentials_are_401(anon_client, supabase, ada, email, password) -> None:
    # when
    response = post(anon_client, LOGIN, {"email": email, "password": password})

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "Invalid login credentials"
    assert body["error"]["details"] == {"supabase_error_code": "invalid_credentials"}


def test_login_before_confirming_the_email_is_403(anon_client, supabase: FakeSupabase) -> None:
    # given
    supabase.add_user("ada@example.com", PASSWORD, confirmed=False)

    # when
    response = post(anon_client, LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    # then
    body = assert_error(response, 403, "permission_error")
    assert body["error"]["message"] == "Email not confirmed"


# --- refresh -------------------------------------------------------------------------------


def test_refresh_trades_the_token_for_a_new_session(
    anon_client, supabase: FakeSupabase, ada
) -> None:
    # given
    session = login(anon_client)

    # when
    response = post(anon_client, REFRESH, {"refresh_token": session["refresh_token"]})

    # then
    assert response.status_code == 200
    renewed = response.json()
    assert renewed["refresh_token"] != session["refresh_token"]
    assert renewed["user"] == user_fields(ada)
    assert supabase.requests[-1].query == {"grant_type": ["refresh_token"]}
    assert supabase.requests[-1].body == {"refresh_token": session["refresh_token"]}


def test_refresh_token_is_single_use(anon_client, supabase: FakeSupabase, ada) -> None:
    # given
    session = login(anon_client)
    post(anon_client, REFRESH, {"refresh_token": session["refresh_token"]})

    # when
    response = post(anon_client, REFRESH, {"refresh_token": session["refresh_token"]})

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "Invalid Refresh Token: Already Used"
    assert body["error"]["details"] == {"supabase_error_code": "refresh_token_already_used"}


def test_unknown_refresh_token_is_401(anon_client, supabase: FakeSupabase) -> None:
    # when
    response = post(anon_client, REFRESH, {"refresh_token": "never-issued"})

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "Invalid Refresh Token: Refresh Token Not Found"


# --- logout --------------------------------------------------------------------------------


def test_logout_forwards_the_callers_token_and_answers_204(
    anon_client, supabase: FakeSupabase, ada
) -> None:
    # given
    session = login(anon_client)

    # when
    response = post(anon_client, LOGOUT, {}, token=str(session["access_token"]))

    # then
    assert response.status_code == 204
    assert response.content == b""
    sent = supabase.requests[-1]
    assert (sent.path, sent.query, sent.headers["apikey"], sent.headers["authorization"]) == (
        "/auth/v1/logout",
        {"scope": ["local"]},
        API_KEY,
        f"Bearer {session['access_token']}",
    )


def test_refresh_token_is_dead_after_logout(anon_client, supabase: FakeSupabase, ada) -> None:
    # given
    session = login(anon_client)
    post(anon_client, LOGOUT, {}, token=str(session["access_token"]))

    # when
    response = post(anon_client, REFRESH, {"refresh_token": session["refresh_token"]})

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "Invalid Refresh Token: Refresh Token Not Found"


def test_global_logout_ends_every_session(anon_client, supabase: FakeSupabase, ada) -> None:
    # given: signed in on two devices
    laptop, phone = login(anon_client), login(anon_client)

    # when
    response = post(anon_client, LOGOUT, {"scope": "global"}, token=str(laptop["access_token"]))

    # then
    assert response.status_code == 204
    refreshed = post(anon_client, REFRESH, {"refresh_token": phone["refresh_token"]})
    assert_error(refreshed, 401, "authentication_error")


def test_local_logout_keeps_other_sessions(anon_client, supabase: FakeSupabase, ada) -> None:
    # given
    laptop, phone = login(anon_client), login(anon_client)

    # when
    post(anon_client, LOGOUT, {}, token=str(laptop["access_token"]))

    # then
    refreshed = post(anon_client, REFRESH, {"refresh_token": phone["refresh_token"]})
    assert refreshed.status_code == 200


def test_logout_needs_a_token(anon_client, supabase: FakeSupabase) -> None:
    # when
    response = post(anon_client, LOGOUT, {})

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert supabase.requests == []


def test_logout_of_a_session_gotrue_does_not_know_is_401(
    anon_client, supabase: FakeSupabase, make_token
) -> None:
    # given: a token this API accepts (HS256, the shared secret) but not one GoTrue issued
    token = make_token()

    # when
    response = post(anon_client, LOGOUT, {}, token=token)

    # then
    body = assert_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "invalid JWT: unable to parse or verify signature"
    assert body["error"]["details"] == {"supabase_error_code": "bad_jwt"}


def test_logout_with_an_unknown_scope_is_400(anon_client, supabase: FakeSupabase, ada) -> None:
    # given
    session = login(anon_client)

    # when
    response = post(anon_client, LOGOUT, {"scope": "everyone"}, token=str(session["access_token"]))

    # then
    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["details"] == {"fields": {"scope": ['"everyone" is not a valid choice.']}}


# --- Supabase Auth failing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (REGISTER, {"email": "ada@example.com", "password": PASSWORD}),
        (LOGIN, {"email": "ada@example.com", "password": PASSWORD}),
        (REFRESH, {"refresh_token": "any"}),
    ],
)
def test_rate_limit_passes_through_with_retry_after(
    anon_client, supabase: FakeSupabase, path, body
) -> None:
    # given
    supabase.gotrue_mode = "rate_limited"

    # when
    response = post(anon_client, path, body)

    # then
    error = assert_error(response, 429, "rate_limit_error")
    assert error["error"]["message"] == "Request rate limit reached"
    assert response["Retry-After"] == "17"


def test_gotrue_500_is_502(anon_client, supabase: FakeSupabase) -> None:
    # given
    supabase.gotrue_mode = "error"

    # when
    response = post(anon_client, LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    # then
    body = assert_error(response, 502, "api_error")
    assert body["error"]["message"] == "Supabase Auth failed (HTTP 500)."


def test_connection_dropped_is_502(anon_client, supabase: FakeSupabase) -> None:
    # given
    supabase.gotrue_mode = "drop"

    # when
    response = post(anon_client, LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    # then
    body = assert_error(response, 502, "api_error")
    assert body["error"]["message"] == "Supabase Auth is unreachable."


def test_unreachable_supabase_is_502(anon_client, supabase, settings, closed_port_url) -> None:
    # given
    settings.SUPABASE_URL = closed_port_url

    # when
    response = post(anon_client, LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    # then
    body = assert_error(response, 502, "api_error")
    assert body["error"]["message"] == "Supabase Auth is unreachable."


def test_slow_supabase_is_503_timeout(anon_client, supabase: FakeSupabase, settings) -> None:
    # given: GoTrue holds the request far longer than the timeout
    settings.SUPABASE_HTTP_TIMEOUT_SECONDS = SHORT_TIMEOUT
    supabase.gotrue_mode = "slow"

    # when
    response = post(anon_client, LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    # then
    body = assert_error(response, 503, "timeout_error")
    assert body["error"]["message"] == "Supabase Auth did not answer in time."


@pytest.mark.parametrize("setting", ["SUPABASE_URL", "SUPABASE_KEY"])
def test_not_configured_is_503(anon_client, supabase, settings, setting) -> None:
    # given
    setattr(settings, setting, None)

    # when
    response = post(anon_client, LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    # then
    body = assert_error(response, 503, "api_error")
    assert body["error"]["message"] == (
        "Supabase Auth is not configured on this server (SUPABASE_URL and SUPABASE_KEY)."
    )
    assert supabase.requests == []


def test_api_key_refused_by_supabase_is_502_not_the_callers_fault(
    anon_client, supabase, settings
) -> None:
    # given
    settings.SUPABASE_KEY = "a-revoked-key"

    # when
    response = post(anon_client, LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    # then
    body = assert_error(response, 502, "api_error")
    assert body["error"]["message"] == "Supabase Auth refused this server's API key."
    assert "a-revoked-key" not in response.content.decode()
    assert supabase.requests[-1].headers["apikey"] == "a-revoked-key"


# --- the client ----------------------------------------------------------------------------


def test_one_client_per_process_rebuilt_when_settings_change(supabase, settings) -> None:
    # given
    first = gotrue_client()

    # when
    same = gotrue_client()
    settings.SUPABASE_HTTP_TIMEOUT_SECONDS = 5
    rebuilt = gotrue_client()

    # then
    assert same is first
    assert rebuilt is not first
