"""Verification of Supabase access tokens: a pure ``token -> Claims`` function.

Supabase signs with the project's legacy shared secret (HS256) or with asymmetric keys
(ES256, RS256) published at ``{SUPABASE_URL}/auth/v1/.well-known/jwks.json``
(https://supabase.com/docs/guides/auth/jwts). The algorithms accepted come from
configuration, never from the token: the token's ``alg`` header only picks which of the
configured keys to try, and must be one of the configured algorithms.
"""

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

logger = logging.getLogger(__name__)

# Supabase access tokens are well under 2 KiB; anything far larger is not one of them.
MAX_TOKEN_BYTES = 8192
ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "RS256"})


class TokenError(Exception):
    """Base class; ``message`` is safe to show to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidTokenError(TokenError):
    """The token is not acceptable: the client should sign in again."""


class KeysUnavailableError(TokenError):
    """The signing keys cannot be fetched and none is cached: a server-side problem."""


@dataclass(frozen=True)
class Claims:
    sub: uuid.UUID
    role: str
    email: str
    session_id: str | None
    aal: str | None
    is_anonymous: bool
    expires_at: int
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class VerifierConfig:
    algorithms: tuple[str, ...]
    secret: str | None
    jwks_url: str | None
    audience: str
    issuer: str | None
    leeway_seconds: int = 10
    jwks_cache_seconds: int = 600
    jwks_min_refresh_seconds: int = 30
    http_timeout_seconds: float = 10.0
    # How long a verified token is taken as verified again without checking its signature
    # (its expiry is checked on every use); 0: every use is verified.
    verified_keep_seconds: float = 0.0


# Verified tokens a verifier remembers at most (the oldest is forgotten first).
MAX_VERIFIED_TOKENS = 10_000


class JWKSCache:
    """The project's public keys by ``kid``, fetched lazily and refreshed:

    - after ``ttl`` seconds (a failed refresh keeps the cached keys working), and
    - on an unknown ``kid`` (a key rotation), at most once per ``min_refresh`` seconds,
      so a flood of tokens with made-up kids cannot hammer the JWKS endpoint.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float,
        min_refresh: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._clock = clock
        self._http = httpx.Client(timeout=timeout)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()

    def get(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            unknown = kid not in self._keys
            may_refresh = (
                self._attempted_at is None or now - self._attempted_at >= self._min_refresh
            )
            if (stale or unknown) and may_refresh:
                self._refresh(now)
            key = self._keys.get(kid)
            if key is not None:
                return key
            if self._fetched_at is None:
                raise KeysUnavailableError("Token signing keys are unavailable; try again shortly.")
            raise InvalidTokenError("Token signing key is unknown.")

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            response = self._http.get(self._url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("JWKS fetch from %s failed: %s", self._url, exc)
            return
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            # Not a key set (a proxy's answer, say): a failed fetch, so cached keys stay.
            logger.warning("JWKS fetch from %s returned no key set", self._url)
            return
        keys: dict[str, jwt.PyJWK] = {}
        for entry in entries:
            if not isinstance(entry, dict):
                logger.warning("Skipping a JWKS entry that is not an object")
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
                logger.warning("Skipping unusable JWKS key %s: %s", entry.get("kid"), exc)
                continue
            if key.key_id:
                keys[key.key_id] = key
        self._keys = keys
        self._fetched_at = now


_FAILURE_MESSAGES: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "Token has expired."),
    (jwt.ImmatureSignatureError, "Token is not yet valid."),
    (jwt.InvalidAudienceError, "Token audience is not accepted."),
    (jwt.InvalidIssuerError, "Token issuer is not accepted."),
    (jwt.InvalidSignatureError, "Token signature is invalid."),
    (jwt.InvalidKeyError, "Token signature is invalid."),
    (jwt.exceptions.InvalidSubjectError, "Token subject is not a user id."),
    (jwt.DecodeError, "Token is malformed."),
)


class TokenVerifier:
    def __init__(self, config: VerifierConfig, jwks: JWKSCache | None = None) -> None:
        self.config = config
        if jwks is None and config.jwks_url and ASYMMETRIC_ALGORITHMS & set(config.algorithms):
            jwks = JWKSCache(
                config.jwks_url,
                ttl=config.jwks_cache_seconds,
                min_refresh=config.jwks_min_refresh_seconds,
                timeout=config.http_timeout_seconds,
            )
        self._jwks = jwks
        # token -> (its claims, until when they are reused): a client sends the same token
        # with every request for its hour, and the signature check (about 50 us) is the
        # same each time. Bounded in time by verified_keep_seconds and the token's expiry.
        self._verified: dict[str, tuple[Claims, float]] = {}
        self._verified_lock = threading.Lock()

    def verify(self, token: str) -> Claims:
        """The claims of a valid token (InvalidTokenError otherwise); a token verified in
        the last ``verified_keep_seconds`` is taken as verified again, unless it expired."""
        kept = self._verified.get(token)
        if kept is not None:
            claims, keep_until = kept
            now = time.time()
            if now < keep_until and now < claims.expires_at + self.config.leeway_seconds:
                return claims
            with self._verified_lock:
                self._verified.pop(token, None)
        claims = self._verify(token)
        if self.config.verified_keep_seconds > 0:
            with self._verified_lock:
                if len(self._verified) >= MAX_VERIFIED_TOKENS:
                    self._verified.pop(next(iter(self._verified)), None)
                self._verified[token] = (claims, time.time() + self.config.verified_keep_seconds)
        return claims

    def _verify(self, token: str) -> Claims:
        if not token:
            raise InvalidTokenError("Token is missing.")
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidTokenError("Token is too large.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("Token is malformed.") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.config.algorithms:
            shown = json.dumps(algorithm)[:20]
            raise InvalidTokenError(f"Token algorithm {shown} is not accepted.")
        key = self._key_for(algorithm, header.get("kid"))

        required = ["exp", "sub", "aud"] + (["iss"] if self.config.issuer else [])
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": required},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"Token is missing the '{exc.claim}' claim.") from None
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(_failure_message(exc)) from None
        return _claims_from(payload)

    def _key_for(self, algorithm: str, kid: object) -> Any:
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            if not self.config.secret:
                raise InvalidTokenError(f'Token algorithm "{algorithm}" is not accepted.')
            return self.config.secret
        if self._jwks is None:
            raise InvalidTokenError(f'Token algorithm "{algorithm}" is not accepted.')
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("Token has no key id (kid).")
        jwk = self._jwks.get(kid)
        if jwk.algorithm_name != algorithm:
            raise InvalidTokenError("Token algorithm does not match its signing key.")
        return jwk.key


def _failure_message(exc: jwt.PyJWTError) -> str:
    for kind, message in _FAILURE_MESSAGES:
        if isinstance(exc, kind):
            return message
    return "Token is invalid."


def _claims_from(payload: Mapping[str, Any]) -> Claims:
    try:
        sub = uuid.UUID(str(payload["sub"]))
    except ValueError:
        raise InvalidTokenError("Token subject is not a user id.") from None
    role = payload.get("role")
    if role != "authenticated":
        shown = json.dumps(role)[:40]
        raise InvalidTokenError(f"Token role {shown} is not accepted; sign in as a user.")
    email = payload.get("email")
    session_id = payload.get("session_id")
    aal = payload.get("aal")
    return Claims(
        sub=sub,
        role=role,
        email=email if isinstance(email, str) else "",
        session_id=session_id if isinstance(session_id, str) else None,
        aal=aal if isinstance(aal, str) else None,
        is_anonymous=payload.get("is_anonymous") is True,
        expires_at=int(payload["exp"]),
        raw=payload,
    )
