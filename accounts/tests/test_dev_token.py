"""`manage.py dev_token`: a Supabase-shaped HS256 token the API itself accepts."""

import io
import time
import uuid

import jwt
import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.authentication import token_verifier
from testsupport.fake_supabase import FakeSupabase


def dev_token(*args: str) -> str:
    out = io.StringIO()
    call_command("dev_token", *args, stdout=out)
    output = out.getvalue()
    assert output.endswith("\n")
    assert output.count("\n") == 1
    return output.strip()


def test_token_verifies_with_the_apps_verifier(settings) -> None:
    # given: no Supabase project configured, so no issuer to copy
    settings.SUPABASE_JWT_ISSUER = None
    before = int(time.time())

    # when
    token = dev_token("--email", "you@example.com")

    # then
    claims = token_verifier().verify(token)
    raw = dict(claims.raw)
    assert (claims.role, claims.email, claims.aal, claims.is_anonymous) == (
        "authenticated",
        "you@example.com",
        "aal1",
        False,
    )
    assert before <= raw.pop("iat") <= int(time.time())
    assert raw.pop("exp") - claims.raw["iat"] == 3600
    session_id = raw.pop("session_id")
    assert uuid.UUID(session_id).version == 4
    amr = raw.pop("amr")
    assert amr == [{"method": "password", "timestamp": claims.raw["iat"]}]
    assert raw == {
        "iss": "chatapi-dev",
        "aud": "authenticated",
        "sub": str(claims.sub),
        "email": "you@example.com",
        "phone": "",
        "role": "authenticated",
        "aal": "aal1",
        "is_anonymous": False,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
    }
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


def test_same_email_gives_the_same_user() -> None:
    # when
    first = token_verifier().verify(dev_token("--email", "you@example.com"))
    second = token_verifier().verify(dev_token("--email", "You@Example.com"))
    other = token_verifier().verify(dev_token("--email", "someone-else@example.com"))

    # then
    assert first.sub == second.sub
    assert first.session_id != second.session_id
    assert other.sub != first.sub


def test_user_id_can_be_chosen() -> None:
    # when
    token = dev_token(
        "--email", "you@example.com", "--user-id", "3c0d1f0e-5b1a-4e38-9e0f-0a1b2c3d4e5f"
    )

    # then
    assert token_verifier().verify(token).sub == uuid.UUID("3c0d1f0e-5b1a-4e38-9e0f-0a1b2c3d4e5f")


def test_ttl_is_honoured() -> None:
    # when
    claims = token_verifier().verify(dev_token("--email", "you@example.com", "--ttl", "120"))

    # then
    assert claims.raw["exp"] - claims.raw["iat"] == 120


def test_issuer_is_the_configured_one(supabase: FakeSupabase) -> None:
    # when: with SUPABASE_URL set, the verifier checks iss
    claims = token_verifier().verify(dev_token("--email", "you@example.com"))

    # then
    assert claims.raw["iss"] == supabase.issuer


@pytest.mark.django_db
def test_token_is_accepted_by_the_api(anon_client: APIClient) -> None:
    # given
    token = dev_token("--email", "you@example.com")

    # when
    response = anon_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")

    # then
    assert response.status_code == 200
    assert response.json()["email"] == "you@example.com"
    assert response.json()["id"] == str(token_verifier().verify(token).sub)


@pytest.mark.parametrize("ttl", ["0", "-5"])
def test_ttl_must_be_positive(ttl: str) -> None:
    # when
    with pytest.raises(CommandError) as caught:
        dev_token("--email", "you@example.com", "--ttl", ttl)

    # then
    assert str(caught.value) == "--ttl must be positive."


def test_refuses_when_hs256_is_off(settings) -> None:
    # given: a deployment that only trusts Supabase's asymmetric keys
    settings.SUPABASE_JWT_ALGORITHMS = ["ES256", "RS256"]

    # when
    with pytest.raises(CommandError) as caught:
        dev_token("--email", "you@example.com")

    # then
    assert str(caught.value) == ("dev_token signs with SUPABASE_JWT_SECRET (HS256), which is off.")


def test_email_is_required() -> None:
    # when
    with pytest.raises(CommandError) as caught:
        dev_token()

    # then
    assert str(caught.value) == "Error: the following arguments are required: --email"
