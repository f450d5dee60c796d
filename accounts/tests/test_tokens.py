"""The pure verifier: Supabase access token -> Claims, against a fake Supabase's JWKS."""

import time
import uuid
from typing import Any

import jwt
import pytest

from accounts import tokens
from accounts.tokens import (
    MAX_TOKEN_BYTES,
    Claims,
    InvalidTokenError,
    JWKSCache,
    KeysUnavailableError,
    TokenVerifier,
    VerifierConfig,
)
from testsupport.fake_supabase import (
    FakeSupabase,
    SigningKey,
    sign_hs256_raw,
    unsigned_token,
)

SECRET = "test-only-hs256-secret-0123456789abcdef0123"
ALL_ALGORITHMS = ("HS256", "ES256", "RS256")
TTL = 600
MIN_REFRESH = 30


class FakeClock:
    """JWKSCache's clock, moved by hand so TTLs and refetch floors need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_verifier(
    fake: FakeSupabase,
    clock: FakeClock,
    *,
    algorithms: tuple[str, ...] = ALL_ALGORITHMS,
    jwks_url: str | None = None,
    with_jwks: bool = True,
    secret: str | None = SECRET,
) -> TokenVerifier:
    config = VerifierConfig(
        algorithms=algorithms,
        secret=secret,
        jwks_url=(jwks_url or fake.jwks_url) if with_jwks else None,
        audience="authenticated",
        issuer=fake.issuer,
        leeway_seconds=10,
    )
    jwks = None
    if config.jwks_url:
        jwks = JWKSCache(
            config.jwks_url, ttl=TTL, min_refresh=MIN_REFRESH, timeout=2.0, clock=clock
        )
    return TokenVerifier(config, jwks)


def hs256_token(fake: FakeSupabase, secret: str = SECRET, **claims: Any) -> str:
    return jwt.encode(fake.claims(**claims), secret, algorithm="HS256", headers={"typ": "JWT"})


def rejection(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)
    return caught.value.message


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(fake_supabase: FakeSupabase, clock: FakeClock) -> TokenVerifier:
    return make_verifier(fake_supabase, clock)


# --- accepted tokens ---------------------------------------------------------------------


def test_valid_hs256_token_gives_its_claims(fake_supabase, verifier) -> None:
    # given
    sub = uuid.UUID("8d0f3a52-9a57-4a5e-8c1f-3f7cf3f9a001")
    payload = fake_supabase.claims(
        sub=str(sub), email="ada@example.com", session_id="5f0c1d2e-sess", exp=2_000_000_000
    )
    token = jwt.encode(payload, SECRET, algorithm="HS256")

    # when
    claims = verifier.verify(token)

    # then
    assert claims == Claims(
        sub=sub,
        role="authenticated",
        email="ada@example.com",
        session_id="5f0c1d2e-sess",
        aal="aal1",
        is_anonymous=False,
        expires_at=2_000_000_000,
        raw=payload,
    )
    assert fake_supabase.jwks_fetches == 0


def test_hs256_token_with_a_kid_header_is_verified_with_the_secret(fake_supabase, verifier) -> None:
    # given: projects that moved their legacy secret to signing keys put a kid on HS256 tokens
    token = jwt.encode(
        fake_supabase.claims(email="kid@example.com"),
        SECRET,
        algorithm="HS256",
        headers={"kid": "legacy-hs256"},
    )

    # when
    claims = verifier.verify(token)

    # then
    assert claims.email == "kid@example.com"
    assert fake_supabase.jwks_fetches == 0


def test_valid_es256_token_is_verified_with_the_jwks_key(fake_supabase, verifier) -> None:
    # given
    sub = uuid.uuid4()
    token = fake_supabase.token(sub=str(sub), email="es@example.com", aal="aal2")

    # when
    claims = verifier.verify(token)

    # then
    assert (claims.sub, claims.email, claims.aal) == (sub, "es@example.com", "aal2")
    assert jwt.get_unverified_header(token) == {
        "alg": "ES256",
        "kid": "es256-key-1",
        "typ": "JWT",
    }
    assert fake_supabase.jwks_fetches == 1


def test_valid_rs256_token_is_verified_with_the_jwks_key(fake_supabase, verifier) -> None:
    # given
    sub = uuid.uuid4()
    token = fake_supabase.token(key=fake_supabase.rs256_key, sub=str(sub))

    # when
    claims = verifier.verify(token)

    # then
    assert claims.sub == sub
    assert fake_supabase.jwks_fetches == 1


def test_keys_are_fetched_once_for_many_tokens(fake_supabase, verifier) -> None:
    # given
    tokens = [fake_supabase.token() for _ in range(3)] + [
        fake_supabase.token(key=fake_supabase.rs256_key) for _ in range(3)
    ]

    # when
    for token in tokens:
        verifier.verify(token)

    # then
    assert fake_supabase.jwks_fetches == 1


def test_expired_token_within_the_leeway_is_accepted(fake_supabase, verifier) -> None:
    # given: expired 5 s ago, leeway 10 s
    token = fake_supabase.token(exp=int(time.time()) - 5)

    # when
    claims = verifier.verify(token)

    # then
    assert claims.role == "authenticated"


def test_anonymous_sign_in_user_is_accepted(fake_supabase, verifier) -> None:
    # given: Supabase's anonymous sign-ins are users with role authenticated
    token = fake_supabase.token(is_anonymous=True, email="")

    # when
    claims = verifier.verify(token)

    # then
    assert (claims.is_anonymous, claims.email) == (True, "")


def test_audience_list_containing_authenticated_is_accepted(fake_supabase, verifier) -> None:
    # given
    token = fake_supabase.token(aud=["other-service", "authenticated"])

    # when
    claims = verifier.verify(token)

    # then
    assert claims.raw["aud"] == ["other-service", "authenticated"]


def test_issuer_is_not_checked_when_none_is_configured(fake_supabase) -> None:
    # given
    verifier = TokenVerifier(
        VerifierConfig(
            algorithms=("HS256",),
            secret=SECRET,
            jwks_url=None,
            audience="authenticated",
            issuer=None,
        )
    )
    token = hs256_token(fake_supabase, iss=None)

    # when
    claims = verifier.verify(token)

    # then
    assert "iss" not in claims.raw


# --- key rotation and the JWKS cache -------------------------------------------------------


def test_rotated_key_is_fetched_on_its_unknown_kid(fake_supabase, verifier, clock) -> None:
    # given: the keys were fetched once, and the floor between fetches has passed
    verifier.verify(fake_supabase.token())
    clock.advance(MIN_REFRESH)
    new_key = fake_supabase.rotate()

    # when
    claims = verifier.verify(fake_supabase.token(email="rotated@example.com"))

    # then
    assert claims.email == "rotated@example.com"
    assert fake_supabase.es256_key is new_key
    assert fake_supabase.jwks_fetches == 2


def test_old_key_keeps_working_after_a_rotation(fake_supabase, verifier, clock) -> None:
    # given
    old_token = fake_supabase.token(email="old@example.com")
    verifier.verify(old_token)
    clock.advance(MIN_REFRESH)
    fake_supabase.rotate()
    verifier.verify(fake_supabase.token())

    # when
    claims = verifier.verify(old_token)

    # then
    assert claims.email == "old@example.com"
    assert fake_supabase.jwks_fetches == 2


def test_rotation_inside_the_refetch_floor_is_rejected_until_the_floor_passes(
    fake_supabase, verifier, clock
) -> None:
    # given
    verifier.verify(fake_supabase.token())
    fake_supabase.rotate()
    new_token = fake_supabase.token()
    clock.advance(MIN_REFRESH - 1)

    # when
    early = rejection(verifier, new_token)
    clock.advance(1)
    claims = verifier.verify(new_token)

    # then
    assert early == "Token signing key is unknown."
    assert claims.role == "authenticated"
    assert fake_supabase.jwks_fetches == 2


def test_unknown_kids_refetch_at_most_once_per_floor(fake_supabase, verifier, clock) -> None:
    # given
    verifier.verify(fake_supabase.token())
    clock.advance(MIN_REFRESH)
    made_up = [fake_supabase.token(headers={"kid": f"made-up-{n}"}) for n in range(5)]

    # when
    messages = [rejection(verifier, token) for token in made_up]
    fetches_in_window = fake_supabase.jwks_fetches
    clock.advance(MIN_REFRESH - 1)
    rejection(verifier, made_up[0])
    fetches_before_floor = fake_supabase.jwks_fetches
    clock.advance(1)
    rejection(verifier, made_up[0])

    # then
    assert messages == ["Token signing key is unknown."] * 5
    assert fetches_in_window == 2
    assert fetches_before_floor == 2
    assert fake_supabase.jwks_fetches == 3


def test_keys_are_refetched_after_the_ttl(fake_supabase, verifier, clock) -> None:
    # given
    token = fake_supabase.token()
    verifier.verify(token)
    clock.advance(TTL - 1)
    verifier.verify(token)
    fetches_before_ttl = fake_supabase.jwks_fetches

    # when
    clock.advance(1)
    verifier.verify(token)

    # then
    assert fetches_before_ttl == 1
    assert fake_supabase.jwks_fetches == 2


def test_key_removed_from_the_jwks_is_refused_after_the_ttl(fake_supabase, verifier, clock) -> None:
    # given
    token = fake_supabase.token(key=fake_supabase.rs256_key)
    verifier.verify(token)
    fake_supabase.unpublish(fake_supabase.rs256_key)
    clock.advance(TTL)

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token signing key is unknown."
    assert fake_supabase.jwks_fetches == 2


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_jwks_down_with_no_cached_keys_is_keys_unavailable(fake_supabase, verifier, mode) -> None:
    # given
    fake_supabase.jwks_mode = mode

    # when
    with pytest.raises(KeysUnavailableError) as caught:
        verifier.verify(fake_supabase.token())

    # then
    assert caught.value.message == "Token signing keys are unavailable; try again shortly."
    assert fake_supabase.jwks_fetches == 1


def test_jwks_unreachable_with_no_cached_keys_is_keys_unavailable(
    fake_supabase, clock, closed_port_url
) -> None:
    # given
    verifier = make_verifier(
        fake_supabase, clock, jwks_url=f"{closed_port_url}/auth/v1/.well-known/jwks.json"
    )

    # when
    with pytest.raises(KeysUnavailableError) as caught:
        verifier.verify(fake_supabase.token())

    # then
    assert caught.value.message == "Token signing keys are unavailable; try again shortly."


def test_jwks_down_with_cached_keys_still_verifies(fake_supabase, verifier, clock) -> None:
    # given: keys cached, then the endpoint fails just as they go stale
    token = fake_supabase.token(email="cached@example.com")
    verifier.verify(token)
    fake_supabase.jwks_mode = "error"
    clock.advance(TTL)

    # when
    claims = verifier.verify(token)

    # then
    assert claims.email == "cached@example.com"
    assert fake_supabase.jwks_fetches == 2


def test_failed_fetch_is_retried_only_after_the_floor(fake_supabase, verifier, clock) -> None:
    # given: the first fetch failed
    fake_supabase.jwks_mode = "drop"
    token = fake_supabase.token()
    with pytest.raises(KeysUnavailableError):
        verifier.verify(token)
    fake_supabase.jwks_mode = "up"

    # when
    with pytest.raises(KeysUnavailableError):
        verifier.verify(token)
    fetches_in_window = fake_supabase.jwks_fetches
    clock.advance(MIN_REFRESH)
    claims = verifier.verify(token)

    # then
    assert fetches_in_window == 1
    assert claims.role == "authenticated"
    assert fake_supabase.jwks_fetches == 2


def test_unusable_jwks_entries_are_skipped(fake_supabase, verifier) -> None:
    # given: besides the real keys, entries no verifier can use
    fake_supabase.extra_jwks_entries = [
        "not-an-object",
        {"kid": "no-kty"},
        {"kty": "RSA", "kid": "no-modulus", "alg": "RS256"},
        {**SigningKey.es256("ec-labelled-rsa").public_jwk(), "alg": "RS256"},
    ]

    # when
    es_claims = verifier.verify(fake_supabase.token())
    rs_claims = verifier.verify(fake_supabase.token(key=fake_supabase.rs256_key))
    message = rejection(verifier, SigningKey.es256("ec-labelled-rsa").sign(fake_supabase.claims()))

    # then
    assert es_claims.role == rs_claims.role == "authenticated"
    assert message == "Token signing key is unknown."


def test_jwks_answer_that_is_not_a_key_set_keeps_the_cached_keys(
    fake_supabase, verifier, clock
) -> None:
    # given: a proxy in front of Supabase answers 200 with something else
    token = fake_supabase.token(email="kept@example.com")
    verifier.verify(token)
    fake_supabase.jwks_mode = "not_a_key_set"
    clock.advance(TTL)

    # when
    claims = verifier.verify(token)

    # then
    assert claims.email == "kept@example.com"
    assert fake_supabase.jwks_fetches == 2


def test_jwks_answer_that_is_not_a_key_set_with_no_cache_is_keys_unavailable(
    fake_supabase, verifier
) -> None:
    # given
    fake_supabase.jwks_mode = "not_a_key_set"

    # when
    with pytest.raises(KeysUnavailableError) as caught:
        verifier.verify(fake_supabase.token())

    # then
    assert caught.value.message == "Token signing keys are unavailable; try again shortly."


def test_project_without_signing_keys_refuses_asymmetric_tokens(fake_supabase, verifier) -> None:
    # given: the JWKS of a project with only the legacy secret is an empty key set
    fake_supabase.published = []

    # when
    message = rejection(verifier, fake_supabase.token())

    # then
    assert message == "Token signing key is unknown."


# --- refused tokens ------------------------------------------------------------------------


def test_expired_token_is_refused(fake_supabase, verifier) -> None:
    # given
    token = fake_supabase.token(exp=int(time.time()) - 60)

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token has expired."


def test_token_not_yet_valid_is_refused(fake_supabase, verifier) -> None:
    # given
    token = fake_supabase.token(nbf=int(time.time()) + 60)

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token is not yet valid."


def test_token_with_nbf_within_the_leeway_is_accepted(fake_supabase, verifier) -> None:
    # given
    token = fake_supabase.token(nbf=int(time.time()) + 5)

    # when
    claims = verifier.verify(token)

    # then
    assert claims.role == "authenticated"


@pytest.mark.parametrize("audience", ["anon", "https://other.example.com", ["a", "b"]])
def test_token_for_another_audience_is_refused(fake_supabase, verifier, audience) -> None:
    # given
    token = fake_supabase.token(aud=audience)

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token audience is not accepted."


def test_token_from_another_issuer_is_refused(fake_supabase, verifier) -> None:
    # given: signed by a key the project trusts, but minted for another project
    token = fake_supabase.token(iss="https://other-project.supabase.co/auth/v1")

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token issuer is not accepted."


@pytest.mark.parametrize("claim", ["exp", "sub", "aud", "iss"])
def test_token_missing_a_required_claim_is_refused(fake_supabase, verifier, claim) -> None:
    # given
    token = fake_supabase.token(**{claim: None})

    # when
    message = rejection(verifier, token)

    # then
    assert message == f"Token is missing the '{claim}' claim."


@pytest.mark.parametrize("sub", ["not-a-uuid", "", "anon", 12345, "8d0f3a52-9a57-4a5e-8c1f"])
def test_token_whose_subject_is_not_a_uuid_is_refused(fake_supabase, verifier, sub) -> None:
    # given
    token = fake_supabase.token(sub=sub)

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token subject is not a user id."


@pytest.mark.parametrize(
    ("role", "message"),
    [
        ("anon", 'Token role "anon" is not accepted; sign in as a user.'),
        ("service_role", 'Token role "service_role" is not accepted; sign in as a user.'),
        (None, "Token role null is not accepted; sign in as a user."),
    ],
)
def test_token_without_the_authenticated_role_is_refused(
    fake_supabase, verifier, role, message
) -> None:
    # given: anon and service_role keys are JWTs signed by the same project
    token = hs256_token(fake_supabase, role=role)

    # when
    refused = rejection(verifier, token)

    # then
    assert refused == message


def test_alg_none_is_refused(fake_supabase, verifier) -> None:
    # given
    token = unsigned_token(fake_supabase.claims(), {"alg": "none", "typ": "JWT"})

    # when
    message = rejection(verifier, token)

    # then
    assert message == 'Token algorithm "none" is not accepted.'


@pytest.mark.parametrize("algorithm", ["HS512", "PS256", "EdDSA", "ES384"])
def test_algorithm_outside_the_configured_list_is_refused(
    fake_supabase, verifier, algorithm
) -> None:
    # given
    token = sign_hs256_raw(fake_supabase.claims(), SECRET.encode(), {"alg": algorithm})

    # when
    message = rejection(verifier, token)

    # then
    assert message == f'Token algorithm "{algorithm}" is not accepted.'


def test_hs256_token_signed_with_the_rsa_public_key_is_refused(fake_supabase, verifier) -> None:
    # given: the algorithm-confusion attack, an HMAC keyed with the published public key
    public_pem = fake_supabase.rs256_key.public_pem()
    token = sign_hs256_raw(
        fake_supabase.claims(),
        public_pem,
        {"alg": "HS256", "typ": "JWT", "kid": fake_supabase.rs256_key.kid},
    )

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token signature is invalid."


def test_hs256_token_is_refused_when_hs256_is_not_configured(fake_supabase, clock) -> None:
    # given
    verifier = make_verifier(fake_supabase, clock, algorithms=("ES256", "RS256"), secret=None)
    public_pem = fake_supabase.rs256_key.public_pem()
    token = sign_hs256_raw(
        fake_supabase.claims(),
        public_pem,
        {"alg": "HS256", "typ": "JWT", "kid": fake_supabase.rs256_key.kid},
    )

    # when
    message = rejection(verifier, token)

    # then
    assert message == 'Token algorithm "HS256" is not accepted.'
    assert fake_supabase.jwks_fetches == 0


def test_hs256_token_is_refused_when_no_secret_is_configured(fake_supabase, clock) -> None:
    # given: HS256 listed but no secret to check it with (settings refuse this; the verifier
    # must not crash on it either)
    verifier = make_verifier(fake_supabase, clock, secret=None)

    # when
    message = rejection(verifier, hs256_token(fake_supabase))

    # then
    assert message == 'Token algorithm "HS256" is not accepted.'


def test_es256_token_is_refused_when_no_jwks_is_configured(fake_supabase, clock) -> None:
    # given
    verifier = make_verifier(fake_supabase, clock, with_jwks=False)

    # when
    message = rejection(verifier, fake_supabase.token())

    # then
    assert message == 'Token algorithm "ES256" is not accepted.'


def test_hs256_token_with_another_secret_is_refused(fake_supabase, verifier) -> None:
    # given
    token = hs256_token(fake_supabase, secret="another-projects-secret-0123456789abcdef")

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token signature is invalid."


def test_es256_token_forged_under_a_published_kid_is_refused(fake_supabase, verifier) -> None:
    # given: an attacker's own P-256 key, claiming the project's kid
    forged = SigningKey.es256(fake_supabase.es256_key.kid).sign(fake_supabase.claims())

    # when
    message = rejection(verifier, forged)

    # then
    assert message == "Token signature is invalid."


def test_token_with_an_edited_payload_is_refused(fake_supabase, verifier) -> None:
    # given
    header, _, signature = fake_supabase.token(role="anon").split(".")
    _, payload, _ = fake_supabase.token(role="authenticated").split(".")

    # when
    message = rejection(verifier, f"{header}.{payload}.{signature}")

    # then
    assert message == "Token signature is invalid."


def test_token_whose_alg_differs_from_its_jwk_is_refused(fake_supabase, verifier) -> None:
    # given: an ES256 token naming the RS256 key's kid
    token = jwt.encode(
        fake_supabase.claims(),
        fake_supabase.es256_key.private_key,
        algorithm="ES256",
        headers={"kid": fake_supabase.rs256_key.kid},
    )

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token algorithm does not match its signing key."


@pytest.mark.parametrize("headers", [None, {"kid": ""}])
def test_es256_token_without_a_kid_is_refused(fake_supabase, verifier, headers) -> None:
    # given
    token = jwt.encode(
        fake_supabase.claims(), fake_supabase.es256_key.private_key, "ES256", headers=headers
    )

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token has no key id (kid)."
    assert fake_supabase.jwks_fetches == 0


def test_token_with_a_non_string_kid_is_refused(fake_supabase, verifier) -> None:
    # given
    token = sign_hs256_raw(fake_supabase.claims(), SECRET.encode(), {"alg": "ES256", "kid": 7})

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token is malformed."


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "WyJub3QiLCJhbiIsIm9iamVjdCJd.e30.c2ln",
    ],
)
def test_garbage_is_refused_as_malformed(verifier, token) -> None:
    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token is malformed."


def test_token_cut_before_its_signature_is_malformed(fake_supabase, verifier) -> None:
    # given
    token = fake_supabase.token().rsplit(".", 1)[0]

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token is malformed."


def test_token_cut_in_half_is_malformed(fake_supabase, verifier) -> None:
    # given
    whole = fake_supabase.token()
    token = whole[: len(whole) // 2]

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token is malformed."


@pytest.mark.parametrize("key", ["es256", "rs256", "hs256"])
def test_token_with_an_empty_signature_is_refused(fake_supabase, verifier, key) -> None:
    # given
    whole = (
        hs256_token(fake_supabase)
        if key == "hs256"
        else fake_supabase.token(key=getattr(fake_supabase, f"{key}_key"))
    )
    token = whole[: whole.rindex(".") + 1]

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token signature is invalid."


def test_oversized_token_is_refused_before_parsing(fake_supabase, verifier) -> None:
    # given: correctly signed, but far larger than any Supabase access token
    token = fake_supabase.token(user_metadata={"bio": "x" * MAX_TOKEN_BYTES})

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token is too large."
    assert fake_supabase.jwks_fetches == 0


def test_token_at_the_size_limit_is_parsed(verifier) -> None:
    # given
    token = "x" * MAX_TOKEN_BYTES

    # when
    message = rejection(verifier, token)

    # then
    assert message == "Token is malformed."


def test_empty_token_is_refused(verifier) -> None:
    # when
    message = rejection(verifier, "")

    # then
    assert message == "Token is missing."


# --- verified tokens kept ----------------------------------------------------------------


def keeping_verifier(fake: FakeSupabase, *, keep: float, leeway: int = 10) -> TokenVerifier:
    return TokenVerifier(
        VerifierConfig(
            algorithms=("HS256",),
            secret=SECRET,
            jwks_url=None,
            audience="authenticated",
            issuer=fake.issuer,
            leeway_seconds=leeway,
            verified_keep_seconds=keep,
        )
    )


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature check the verifier makes (jwt.decode, still run)."""
    seen: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def test_a_verified_token_is_not_checked_again_while_kept(
    fake_supabase: FakeSupabase, decodes: list[str]
) -> None:
    verifier = keeping_verifier(fake_supabase, keep=60)
    token = hs256_token(fake_supabase)

    first, second = verifier.verify(token), verifier.verify(token)

    assert first == second
    assert decodes == [token]


def test_a_kept_token_is_refused_once_it_expires(fake_supabase: FakeSupabase) -> None:
    verifier = keeping_verifier(fake_supabase, keep=60, leeway=0)
    token = hs256_token(fake_supabase, exp=int(time.time()) + 1)
    verifier.verify(token)

    time.sleep(
        max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.05
    )

    assert rejection(verifier, token) == "Token has expired."


def test_a_kept_token_is_checked_again_after_the_keep_time(
    fake_supabase: FakeSupabase, decodes: list[str]
) -> None:
    verifier = keeping_verifier(fake_supabase, keep=0.2)
    token = hs256_token(fake_supabase)
    verifier.verify(token)

    time.sleep(0.25)
    verifier.verify(token)

    assert decodes == [token, token]


def test_without_keeping_every_use_is_checked_and_refusals_are_never_kept(
    fake_supabase: FakeSupabase, decodes: list[str]
) -> None:
    plain = keeping_verifier(fake_supabase, keep=0)
    keeping = keeping_verifier(fake_supabase, keep=60)
    good = hs256_token(fake_supabase)
    forged = hs256_token(fake_supabase, secret="another-secret-0123456789abcdef0123456")

    plain.verify(good)
    plain.verify(good)
    for _ in range(2):
        assert rejection(keeping, forged) == "Token signature is invalid."

    assert decodes == [good, good, forged, forged]


def test_the_oldest_kept_token_is_forgotten_first(
    fake_supabase: FakeSupabase, decodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "MAX_VERIFIED_TOKENS", 2)
    verifier = keeping_verifier(fake_supabase, keep=60)
    first, second, third = (hs256_token(fake_supabase) for _ in range(3))
    for token in (first, second, third):
        verifier.verify(token)
    decodes.clear()

    for token in (third, second, first):
        verifier.verify(token)

    assert decodes == [first]
