"""ASGI entry point: `daphne chatapi.asgi:application` (see docs/deployment.md)."""

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext
from channels.routing import ProtocolTypeRouter
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")
django.setup(set_prefix=False)

from chatapi import daphne_headers, request_signals  # noqa: E402 - needs the settings above
from chatapi.dispatch import offloaded  # noqa: E402


class OneThreadASGIHandler(ASGIHandler):
    """Django's handler, with one thread per process for every request's thread-sensitive code
    instead of a new thread per request.

    Django gives each request a ``ThreadSensitiveContext`` of its own, whose executor is a
    thread started on first use and joined when the request ends; closing the response always
    uses it, so every request paid for a thread (profiled: a large part of the CPU of
    ``GET /api/v1/ping``). The API's views do their database work in the thread pool
    (``chatapi.dispatch``); what is left on this thread is tiny (closing responses, the admin's
    synchronous views), so one thread serves it for all requests, as in Django before 3.1.
    """

    _sync_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-sync")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # Django refuses it
            return
        async with ThreadSensitiveContext(executor=self._sync_thread):
            await self.handle(scope, receive, send)


request_signals.install()
daphne_headers.install()
_router = ProtocolTypeRouter({"http": OneThreadASGIHandler()})


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The API's views dispatch in the thread pool (``chatapi.dispatch``) when served here."""
    offloaded.set(True)
    await _router(scope, receive, send)
