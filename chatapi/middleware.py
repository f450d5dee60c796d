"""Middleware for every response: a request id, an access log line with the request's
metrics, and the error envelope on API routes.

All of them are sync- and async-capable so an ASGI request (and a stream) never pays a
thread hop for them: each is written once, as a hook (see ``sync_and_async``).
"""

import json
import logging
import random
import time
from collections.abc import Callable, Generator
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.decorators import sync_and_async_middleware
from django.utils.functional import SimpleLazyObject, empty

from chatapi import metrics
from chatapi.errors import error_body
from chatapi.logs import current_request_id

API_PREFIX = "/api/"
REQUEST_ID_HEADER = "request-id"
# Every header of the replaced error response is kept (Allow, WWW-Authenticate, Retry-After,
# the security headers) but those describing its old body.
_BODY_HEADERS = frozenset({"content-type", "content-length"})

GetResponse = Callable[[HttpRequest], Any]
# Runs up to its one ``yield`` before the view, receives the response there, and returns
# the response to send; returning before the yield answers instead of the view.
Hook = Callable[[HttpRequest], Generator[None, HttpResponseBase, HttpResponseBase]]


def _before(steps: Generator[None, HttpResponseBase, HttpResponseBase]) -> HttpResponseBase | None:
    """Run a hook up to its yield; the response it answered with instead, if it did."""
    try:
        next(steps)
    except StopIteration as stop:
        answer: HttpResponseBase = stop.value
        return answer
    return None


def _after(
    steps: Generator[None, HttpResponseBase, HttpResponseBase], response: HttpResponseBase
) -> HttpResponseBase:
    try:
        steps.send(response)
    except StopIteration as stop:
        final: HttpResponseBase = stop.value
        return final
    raise RuntimeError("a middleware hook must yield once")


def sync_and_async(hook: Hook) -> Callable[[GetResponse], GetResponse]:
    """A middleware from ``hook``, with the synchronous and the asynchronous branch Django
    picks between (a view's exception closes the hook at its yield, so its ``finally``
    blocks run, and propagates)."""

    @sync_and_async_middleware
    def middleware_factory(get_response: GetResponse) -> GetResponse:
        if iscoroutinefunction(get_response):

            async def async_middleware(request: HttpRequest) -> HttpResponseBase:
                steps = hook(request)
                if (answer := _before(steps)) is not None:
                    return answer
                try:
                    response: HttpResponseBase = await get_response(request)
                except BaseException:
                    steps.close()
                    raise
                return _after(steps, response)

            return async_middleware

        def middleware(request: HttpRequest) -> HttpResponseBase:
            steps = hook(request)
            if (answer := _before(steps)) is not None:
                return answer
            try:
                response: HttpResponseBase = get_response(request)
            except BaseException:
                steps.close()
                raise
            return _after(steps, response)

        return middleware

    middleware_factory.__doc__ = hook.__doc__
    return middleware_factory


# Request ids name requests in logs; they guard nothing, so a fast PRNG will do (os.urandom,
# a system call per request, showed in profiles).
_request_ids = random.Random()  # noqa: S311 - not for security


def new_request_id() -> str:
    return f"req_{_request_ids.getrandbits(96):024x}"


# API answers are JSON or event streams: nothing in them may load, run or frame anything.
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"


def _with_request_id(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    response[REQUEST_ID_HEADER] = request.request_id  # type: ignore[attr-defined]
    if request.path.startswith(API_PREFIX):
        response.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
    return response


def _request_id(request: HttpRequest) -> Generator[None, HttpResponseBase, HttpResponseBase]:
    """Tag each request with an id, echoed in the `request-id` header and error bodies."""
    request.request_id = new_request_id()  # type: ignore[attr-defined]
    response = yield
    return _with_request_id(request, response)


request_id_middleware = sync_and_async(_request_id)


access_logger = logging.getLogger("chatapi.access")
# Bounds what a client-chosen URL segment can put in a log line.
_MAX_LOGGED_ID_CHARS = 64


def _route(request: HttpRequest) -> str:
    """The URL pattern that served the request (a metric label: never the path itself)."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return f"/{match.route}"
    return "<static>" if request.path.startswith("/static/") else "<unmatched>"


def _user_id(request: HttpRequest) -> str | None:
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        # Django's session user (admin pages): read only if something already loaded it.
        # Loading it here would cost a query, and fail outright in an async context.
        user = user.__dict__.get("_wrapped", empty)
        if user is empty:
            return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


def _access_level(status: int) -> int:
    """INFO for answers, WARNING for refusals the API meant (4xx, and the 502, 503 and 504 of
    an upstream or a dependency that is down or not configured here), ERROR for a 500: a
    bug, whose traceback django.request logs too."""
    if status < 400:
        return logging.INFO
    return logging.ERROR if status == 500 else logging.WARNING


def _log_access(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
    """One line per request, and its metrics. For a stream this is when it starts (its
    status and the time to its headers); the body is not watched, so it costs nothing per
    chunk. Headers are never logged: they carry tokens and keys."""
    elapsed = time.perf_counter() - started
    route = _route(request)
    method = request.method or ""
    metrics.HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
    metrics.HTTP_REQUEST_DURATION.labels(method, route).observe(elapsed)
    match = getattr(request, "resolver_match", None)
    conversation_id = match.kwargs.get("conversation_id") if match is not None else None
    latency_ms = round(elapsed * 1000, 1)
    # This line is the request's one line: Django's own (django.request, for every status
    # of 400 and more) would repeat it. An unhandled exception was logged with its traceback
    # before the response got here, and still is.
    response._has_been_logged = True  # type: ignore[attr-defined]
    access_logger.log(
        _access_level(response.status_code),
        "%s %s %s %.1fms",
        method,
        request.path,
        response.status_code,
        latency_ms,
        extra={
            "method": method,
            "path": request.path,
            "route": route,
            "status": response.status_code,
            "latency_ms": latency_ms,
            "streaming": response.streaming or None,
            "user_id": _user_id(request),
            "conversation_id": (
                str(conversation_id)[:_MAX_LOGGED_ID_CHARS] if conversation_id else None
            ),
        },
    )


def _access_log(request: HttpRequest) -> Generator[None, HttpResponseBase, HttpResponseBase]:
    """The access log line and HTTP metrics of each request (see ``_log_access``); every
    line logged while the request runs carries its request id. Must come after
    ``request_id_middleware``."""
    started = time.perf_counter()
    token = current_request_id.set(getattr(request, "request_id", None))
    try:
        response = yield
        _log_access(request, response, started)
    finally:
        current_request_id.reset(token)
    return response


access_log_middleware = sync_and_async(_access_log)


def _is_envelope(response: HttpResponseBase) -> bool:
    if not response.get("Content-Type", "").startswith("application/json"):
        return False
    if response.streaming:
        return True
    try:
        body = json.loads(response.content)  # type: ignore[attr-defined]
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("type") == "error"


def _envelope(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    if (
        response.status_code < 400
        or not request.path.startswith(API_PREFIX)
        or _is_envelope(response)
    ):
        return response
    message = None
    if response.status_code == 404:
        message = f"No resource at {request.method} {request.path}."
    elif response.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.path}."
    replacement = JsonResponse(
        error_body(
            status_code=response.status_code,
            message=message,
            request_id=getattr(request, "request_id", None),
        ),
        status=response.status_code,
        json_dumps_params={"separators": (",", ":")},
    )
    for header, value in response.items():
        if header.lower() not in _BODY_HEADERS:
            replacement[header] = value
    return replacement


def _api_error_envelope(
    request: HttpRequest,
) -> Generator[None, HttpResponseBase, HttpResponseBase]:
    """Rewrite any non-envelope error on an API route (Django's 404/405/500, even DEBUG's
    HTML pages) into the envelope, so API clients never see HTML or a stack trace."""
    response = yield
    return _envelope(request, response)


api_error_envelope_middleware = sync_and_async(_api_error_envelope)


def _strip_trailing_slash(request: HttpRequest) -> None:
    path = request.path_info
    if path.startswith(API_PREFIX) and len(path) > len(API_PREFIX) and path.endswith("/"):
        request.path_info = path.rstrip("/")


def _api_trailing_slash(
    request: HttpRequest,
) -> Generator[None, HttpResponseBase, HttpResponseBase]:
    """API routes are declared without a trailing slash; accept one too (no redirect, so
    a POST body survives)."""
    _strip_trailing_slash(request)
    return (yield)


api_trailing_slash_middleware = sync_and_async(_api_trailing_slash)
