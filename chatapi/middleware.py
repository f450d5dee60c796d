"""Middleware for every response: a request id, and the error envelope on API routes.

All of them are sync- and async-capable so an ASGI request (and a stream) never pays a
thread hop for them.
"""

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from chatapi.errors import error_body

API_PREFIX = "/api/"
REQUEST_ID_HEADER = "request-id"
# Headers of the original error response worth keeping on its envelope version.
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")

GetResponse = Callable[[HttpRequest], Any]


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


def _with_request_id(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    response[REQUEST_ID_HEADER] = request.request_id  # type: ignore[attr-defined]
    return response


@sync_and_async_middleware
def request_id_middleware(get_response: GetResponse) -> GetResponse:
    """Tag each request with an id, echoed in the `request-id` header and error bodies."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            request.request_id = new_request_id()  # type: ignore[attr-defined]
            response: Awaitable[HttpResponseBase] = get_response(request)
            return _with_request_id(request, await response)

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        request.request_id = new_request_id()  # type: ignore[attr-defined]
        return _with_request_id(request, get_response(request))

    return middleware


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
    for header in _KEPT_HEADERS:
        if header in response:
            replacement[header] = response[header]
    return replacement


@sync_and_async_middleware
def api_error_envelope_middleware(get_response: GetResponse) -> GetResponse:
    """Rewrite any non-envelope error on an API route (Django's 404/405/500, even DEBUG's
    HTML pages) into the envelope, so API clients never see HTML or a stack trace."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            return _envelope(request, await get_response(request))

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        return _envelope(request, get_response(request))

    return middleware


def _strip_trailing_slash(request: HttpRequest) -> None:
    path = request.path_info
    if path.startswith(API_PREFIX) and len(path) > len(API_PREFIX) and path.endswith("/"):
        request.path_info = path.rstrip("/")


@sync_and_async_middleware
def api_trailing_slash_middleware(get_response: GetResponse) -> GetResponse:
    """API routes are declared without a trailing slash; accept one too (no redirect, so
    a POST body survives)."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            _strip_trailing_slash(request)
            response: HttpResponseBase = await get_response(request)
            return response

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        _strip_trailing_slash(request)
        response: HttpResponseBase = get_response(request)
        return response

    return middleware
