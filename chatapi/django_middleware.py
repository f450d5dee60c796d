"""Django's own middleware, without a thread per request under ASGI.

``MiddlewareMixin`` runs ``process_request``/``process_response`` (and Django adapts
``process_view``) through ``sync_to_async(thread_sensitive=True)``: under ASGI every request
then starts a thread of its own (its ``ThreadSensitiveContext``'s executor) and hops to it
about fifteen times with the default middleware, then joins it. Profiled under load, that was
most of the CPU of a request that does nothing (``GET /api/v1/ping``).

- ``OnTheLoop``: middleware whose hooks do no I/O (headers, redirects decided from the URL)
  runs them on the event loop.
- ``SiteOnly``: middleware for the cookie-based pages (admin; sessions, CSRF, messages) passes
  API requests straight through: the API authenticates bearer tokens and its views are
  CSRF-exempt, so for it these did nothing but hop. Admin pages keep Django's behaviour.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csp, csrf, security

from chatapi.middleware import API_PREFIXES


class OnTheLoop:
    """For a ``MiddlewareMixin`` whose hooks do no I/O: run them without a thread hop."""

    get_response: Any

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response  # type: ignore[no-any-return]


class SiteOnly:
    """For a ``MiddlewareMixin`` that only the cookie-based pages need: API requests skip it."""

    get_response: Any

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path.startswith(API_PREFIXES):
            return await self.get_response(request)  # type: ignore[no-any-return]
        return await super().__acall__(request)  # type: ignore[misc,no-any-return]


class SecurityMiddleware(OnTheLoop, security.SecurityMiddleware):
    pass


class ContentSecurityPolicyMiddleware(OnTheLoop, csp.ContentSecurityPolicyMiddleware):
    pass


class CommonMiddleware(OnTheLoop, common.CommonMiddleware):
    pass


class XFrameOptionsMiddleware(OnTheLoop, clickjacking.XFrameOptionsMiddleware):
    pass


class SessionMiddleware(SiteOnly, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(SiteOnly, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(SiteOnly, messages.MessageMiddleware):
    pass


class CsrfViewMiddleware(SiteOnly, csrf.CsrfViewMiddleware):
    async def process_view(  # type: ignore[override]
        self,
        request: HttpRequest,
        callback: Any,
        callback_args: Any,
        callback_kwargs: Any,
    ) -> HttpResponseBase | None:
        # A coroutine, so Django does not wrap it in a thread hop for every request.
        if request.path.startswith(API_PREFIXES):
            return None
        check = sync_to_async(super().process_view, thread_sensitive=True)
        return await check(request, callback, callback_args, callback_kwargs)
