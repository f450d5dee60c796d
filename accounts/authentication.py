"""The DRF adapters around accounts.tokens (`Authorization: Bearer <Supabase JWT>`) and
accounts.keys (`x-api-key: <key>` or `Authorization: Bearer <key>`)."""

import uuid
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts.keys import ApiKeyCaller, looks_like_api_key
from accounts.models import User
from accounts.selectors import api_key_authenticate
from accounts.services import user_get_or_create_from_claims
from accounts.tokens import (
    Claims,
    InvalidTokenError,
    KeysUnavailableError,
    TokenVerifier,
    VerifierConfig,
)
from chatapi.errors import BEARER_CHALLENGE, AuthenticationError, ServiceUnavailableError


@cache
def token_verifier() -> TokenVerifier:
    """One verifier per process, so the JWKS cache is shared by every request."""
    return TokenVerifier(
        VerifierConfig(
            algorithms=tuple(settings.SUPABASE_JWT_ALGORITHMS),
            secret=settings.SUPABASE_JWT_SECRET,
            jwks_url=settings.SUPABASE_JWKS_URL,
            audience=settings.SUPABASE_JWT_AUDIENCE,
            issuer=settings.SUPABASE_JWT_ISSUER,
            leeway_seconds=settings.SUPABASE_JWT_LEEWAY_SECONDS,
            jwks_cache_seconds=settings.SUPABASE_JWKS_CACHE_SECONDS,
            jwks_min_refresh_seconds=settings.SUPABASE_JWKS_MIN_REFRESH_SECONDS,
            http_timeout_seconds=settings.SUPABASE_HTTP_TIMEOUT_SECONDS,
            verified_keep_seconds=settings.AUTH_USER_CACHE_SECONDS,
        )
    )


def _reset_verifier(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("SUPABASE_") or setting == "AUTH_USER_CACHE_SECONDS":
        token_verifier.cache_clear()


setting_changed.connect(_reset_verifier)


def session_authenticate(token: str) -> tuple[User, Claims]:
    """The user of a Supabase access token (created at its first visit):
    AuthenticationError for a bad token or a disabled account, ServiceUnavailableError when
    the signing keys cannot be fetched."""
    try:
        claims = token_verifier().verify(token)
    except InvalidTokenError as exc:
        raise AuthenticationError(exc.message) from None
    except KeysUnavailableError as exc:
        raise ServiceUnavailableError(exc.message) from None
    user = user_get_or_create_from_claims(claims=claims)
    if not user.is_active:
        raise AuthenticationError("This account is disabled.")
    return user, claims


def credential_authenticate(credential: str) -> tuple[User, Claims | ApiKeyCaller]:
    """The caller of a credential given outside the headers (the live events' first
    message): an API key or a Supabase access token, checked as the REST API checks them."""
    credential = credential.strip()
    if looks_like_api_key(credential):
        return api_key_authenticate(secret=credential)
    return session_authenticate(credential)


class ApiKeyAuthentication(BaseAuthentication):
    """An API key in ``x-api-key`` (what the Anthropic SDK sends) or as a bearer token (the
    OpenAI SDK). Listed before the JWT class, which takes any other bearer token."""

    def authenticate(self, request: Request) -> tuple[User, ApiKeyCaller] | None:
        secret = request.headers.get("x-api-key")
        if secret is None:
            header = get_authorization_header(request).split()
            if len(header) != 2 or header[0].lower() != b"bearer":
                return None
            try:
                secret = header[1].decode("ascii")
            except UnicodeDecodeError:
                return None  # the JWT class refuses it with its own message
            if not looks_like_api_key(secret):
                return None
        return api_key_authenticate(secret=secret.strip())

    def authenticate_header(self, request: Request) -> str:
        return BEARER_CHALLENGE


class SupabaseJWTAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, Claims] | None:
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != b"bearer":
            raise AuthenticationFailed("Use an 'Authorization: Bearer <token>' header.")
        if len(header) != 2:
            raise AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Token is malformed.") from None
        try:
            return session_authenticate(token)
        except AuthenticationError as exc:
            raise AuthenticationFailed(exc.detail) from None

    def authenticate_header(self, request: Request) -> str:
        return BEARER_CHALLENGE


def request_user(request: Request) -> User:
    """The caller of a view that requires authentication (the default permission)."""
    user = request.user
    if not isinstance(user, User):
        raise TypeError("request_user() needs an authenticated request")
    return user


def request_api_key_id(request: Request) -> uuid.UUID | None:
    """The API key that authenticated the request; None for a Supabase session."""
    return request.auth.key_id if isinstance(request.auth, ApiKeyCaller) else None


def request_claims(request: Request) -> Claims:
    claims = request.auth
    if not isinstance(claims, Claims):
        raise TypeError("request_claims() needs a request authenticated by a Supabase token")
    return claims
