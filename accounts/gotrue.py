"""A client for Supabase Auth (GoTrue), used by the sign-up/login/refresh/logout proxy.

Endpoints and error bodies: https://supabase.com/docs/reference/api (auth). GoTrue's answers
become typed values here, and its errors become the API's own errors; nothing else reads
GoTrue's JSON.
"""

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from django.conf import settings
from django.core.signals import setting_changed

from chatapi.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)

logger = logging.getLogger(__name__)

# GoTrue `error_code`s (https://supabase.com/docs/guides/auth/debugging/error-codes)
# that mean "these credentials or this session are not good": the client must sign in.
_AUTHENTICATION_CODES = frozenset(
    {
        "invalid_credentials",
        "invalid_grant",
        "refresh_token_not_found",
        "refresh_token_already_used",
        "session_not_found",
        "session_expired",
        "bad_jwt",
        "no_authorization",
    }
)
_CONFLICT_CODES = frozenset({"user_already_exists", "email_exists", "phone_exists"})
_FORBIDDEN_CODES = frozenset(
    {"email_not_confirmed", "phone_not_confirmed", "signup_disabled", "user_banned"}
)
_USER_FIELDS = (
    "id",
    "email",
    "phone",
    "role",
    "email_confirmed_at",
    "created_at",
    "updated_at",
    "user_metadata",
)


@dataclass(frozen=True)
class AuthUser:
    fields: dict[str, Any]

    @classmethod
    def parse(cls, raw: Any) -> "AuthUser":
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise UpstreamError("Supabase Auth returned an unexpected user.")
        return cls({name: raw.get(name) for name in _USER_FIELDS})


@dataclass(frozen=True)
class AuthSession:
    access_token: str
    token_type: str
    expires_in: int
    expires_at: int | None
    refresh_token: str
    user: AuthUser

    @classmethod
    def parse(cls, raw: Any) -> "AuthSession":
        try:
            return cls(
                access_token=str(raw["access_token"]),
                token_type=str(raw.get("token_type", "bearer")),
                expires_in=int(raw["expires_in"]),
                expires_at=int(raw["expires_at"]) if raw.get("expires_at") is not None else None,
                refresh_token=str(raw["refresh_token"]),
                user=AuthUser.parse(raw.get("user")),
            )
        except (KeyError, TypeError, ValueError):
            raise UpstreamError("Supabase Auth returned an unexpected session.") from None

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "expires_at": self.expires_at,
            "refresh_token": self.refresh_token,
            "user": self.user.fields,
        }


@dataclass(frozen=True)
class SignUpResult:
    """With e-mail confirmation on, GoTrue answers a sign-up with the user alone."""

    user: AuthUser
    session: AuthSession | None


class GoTrueClient:
    def __init__(self, *, base_url: str, api_key: str, timeout: float) -> None:
        self._http = httpx.Client(
            base_url=f"{base_url}/auth/v1",
            headers={"apikey": api_key},
            timeout=timeout,
        )

    def sign_up(self, *, email: str, password: str, user_metadata: dict[str, Any]) -> SignUpResult:
        body = self._call(
            "POST", "/signup", json={"email": email, "password": password, "data": user_metadata}
        )
        if "access_token" in body:
            session = AuthSession.parse(body)
            return SignUpResult(user=session.user, session=session)
        return SignUpResult(user=AuthUser.parse(body.get("user", body)), session=None)

    def sign_in_with_password(self, *, email: str, password: str) -> AuthSession:
        body = self._call(
            "POST",
            "/token",
            params={"grant_type": "password"},
            json={"email": email, "password": password},
        )
        return AuthSession.parse(body)

    def refresh_session(self, *, refresh_token: str) -> AuthSession:
        body = self._call(
            "POST",
            "/token",
            params={"grant_type": "refresh_token"},
            json={"refresh_token": refresh_token},
        )
        return AuthSession.parse(body)

    def sign_out(self, *, access_token: str, scope: str) -> None:
        self._call(
            "POST",
            "/logout",
            params={"scope": scope},
            headers={"Authorization": f"Bearer {access_token}"},
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise UpstreamTimeoutError("Supabase Auth did not answer in time.") from None
        except httpx.TransportError:
            raise UpstreamError("Supabase Auth is unreachable.") from None
        if response.status_code >= 400:
            raise _error_from(response)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            raise UpstreamError("Supabase Auth returned a response that is not JSON.") from None
        if not isinstance(body, dict):
            raise UpstreamError("Supabase Auth returned an unexpected response.")
        return body


def _error_from(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    # Current GoTrue: {"code", "error_code", "msg"}; older: {"error", "error_description"}.
    code = body.get("error_code") or body.get("error")
    message = body.get("msg") or body.get("error_description") or body.get("message")
    message = str(message)[:500] if message else None
    status = response.status_code

    if status == 429:
        retry_after = response.headers.get("retry-after")
        return RateLimitedError(
            message or "Too many authentication requests.",
            headers={"Retry-After": retry_after} if retry_after else None,
        )
    if status >= 500:
        return UpstreamError(f"Supabase Auth failed (HTTP {status}).")
    if status == 401 and code is None and "msg" not in body:
        # Not GoTrue but Supabase's API gateway in front of it, refusing SUPABASE_KEY
        # ({"message": "Invalid API key", "hint": ...}): the server's fault, not the caller's.
        logger.error("Supabase Auth refused the API key (SUPABASE_KEY): %s", message)
        return UpstreamError("Supabase Auth refused this server's API key.")
    details = {"supabase_error_code": code} if isinstance(code, str) else None
    if code in _AUTHENTICATION_CODES or status == 401:
        return AuthenticationError(message or "Invalid credentials.", details=details)
    if code in _CONFLICT_CODES:
        return ConflictError(message or "User already registered.", details=details)
    if code in _FORBIDDEN_CODES or status == 403:
        return PermissionDeniedError(message or "Not allowed.", details=details)
    return ApiError(message or "Supabase Auth rejected the request.", details=details)


@cache
def gotrue_client() -> GoTrueClient:
    """One pooled client per process."""
    if not settings.SUPABASE_URL or not settings.SUPABASE_KEY:
        raise ServiceUnavailableError(
            "Supabase Auth is not configured on this server (SUPABASE_URL and SUPABASE_KEY)."
        )
    return GoTrueClient(
        base_url=settings.SUPABASE_URL,
        api_key=settings.SUPABASE_KEY,
        timeout=settings.SUPABASE_HTTP_TIMEOUT_SECONDS,
    )


def _reset_client(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("SUPABASE_"):
        gotrue_client.cache_clear()


setting_changed.connect(_reset_client)
