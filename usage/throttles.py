"""DRF throttles for the per-minute limits, and the middleware that reports a limit's state
in ``X-RateLimit-*`` headers.

Over the limit, a throttle raises ``RateLimitedError`` itself (rather than answering False
and letting DRF build its generic ``Throttled``) so that the 429 names the limit. Headers:
``Retry-After`` on the 429; on every throttled route's answer ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds until the window restarts).
"""

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from accounts.authentication import request_user
from chatapi.errors import RateLimitedError
from usage.limits import RateLimitResult, rate_limit_hit

_WINDOW_SECONDS = 60


class _PerMinuteThrottle(BaseThrottle):
    scope: str

    def limit(self) -> int:
        raise NotImplementedError

    def ident(self, request: Request) -> str | None:
        """Whose requests are counted together; None: this request is not counted."""
        raise NotImplementedError

    def message(self, result: RateLimitResult) -> str:
        raise NotImplementedError

    def allow_request(self, request: Request, view: APIView) -> bool:
        limit = self.limit()
        ident = self.ident(request)
        if limit == 0 or ident is None:
            return True
        result = rate_limit_hit(
            scope=self.scope, ident=ident, limit=limit, window_seconds=_WINDOW_SECONDS
        )
        request._request.rate_limit = result  # type: ignore[attr-defined]  # for the headers
        if not result.allowed:
            raise RateLimitedError(
                f"{self.message(result)} Retry in {result.reset_seconds} s.",
                headers={"Retry-After": str(result.reset_seconds)},
            )
        return True


class SendRateThrottle(_PerMinuteThrottle):
    """Message sends (POST) per user per minute: RATE_LIMIT_SENDS_PER_MINUTE."""

    scope = "send"

    def limit(self) -> int:
        limit: int = settings.RATE_LIMIT_SENDS_PER_MINUTE
        return limit

    def ident(self, request: Request) -> str | None:
        return str(request_user(request).pk) if request.method == "POST" else None

    def message(self, result: RateLimitResult) -> str:
        return f"Too many messages: at most {result.limit} per minute."


class AuthRateThrottle(_PerMinuteThrottle):
    """Sign-up and login attempts per client address per minute, together:
    RATE_LIMIT_AUTH_PER_MINUTE. The address honours TRUSTED_PROXY_COUNT."""

    scope = "auth"

    def limit(self) -> int:
        limit: int = settings.RATE_LIMIT_AUTH_PER_MINUTE
        return limit

    def ident(self, request: Request) -> str | None:
        return self.get_ident(request) or "unknown"

    def message(self, result: RateLimitResult) -> str:
        return (
            f"Too many sign-up or login attempts from this address: at most {result.limit} "
            "per minute."
        )


def _with_headers(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    result: RateLimitResult | None = getattr(request, "rate_limit", None)
    if result is not None:
        response["X-RateLimit-Limit"] = str(result.limit)
        response["X-RateLimit-Remaining"] = str(result.remaining)
        response["X-RateLimit-Reset"] = str(result.reset_seconds)
    return response


GetResponse = Callable[[HttpRequest], Any]


@sync_and_async_middleware
def rate_limit_headers_middleware(get_response: GetResponse) -> GetResponse:
    """Add the X-RateLimit-* headers of the limit a throttle checked, if any (also before a
    stream's first byte: headers go out with the response start)."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            response: Awaitable[HttpResponseBase] = get_response(request)
            return _with_headers(request, await response)

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        return _with_headers(request, get_response(request))

    return middleware
