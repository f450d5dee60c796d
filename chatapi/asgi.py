"""ASGI entry point: `daphne chatapi.asgi:application` (see docs/deployment.md)."""

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")
django.setup(set_prefix=False)

from chatapi import (  # noqa: E402 - needs the settings above
    daphne_headers,
    daphne_websocket,
    daphne_writes,
    live_events,
    request_signals,
)
from chatapi.dispatch import offloaded  # noqa: E402
from chatapi.startup import startup_hook_register, startup_hooks_run  # noqa: E402


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

    async def send_response(self, response: Any, send: Any) -> None:
        if response.streaming:
            # For a body that writes itself on the connection (daphne_writes.body_writer); in
            # this task's context only, which is the response's.
            daphne_writes.request_send_set(send)
        await super().send_response(response, send)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's, with its ``RequestProcessed`` exception class defined once instead of
        once per request: a class is about 1.5 kB, kept by every open request (an answer's
        stream) and built by every request. chatapi/tests/test_asgi.py holds the two equal."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return

        with closing(body_file):
            set_script_prefix(get_script_prefix(scope))
            await signals.request_started.asend(sender=self.__class__, scope=scope)
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                body_file.close()
                await self.send_response(error_response, send)
                await sync_to_async(error_response.close)()  # type: ignore[union-attr]
                return

            response = None
            try:
                try:
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self.listen_for_disconnect(receive))
                        response = await self.run_get_response(request)
                        await self.send_response(response, send)
                        raise RequestProcessed
                except* (RequestProcessed, RequestAborted):
                    pass
            except BaseExceptionGroup as exception_group:
                if len(exception_group.exceptions) == 1:
                    raise exception_group.exceptions[0]  # noqa: B904 - as Django does
                raise

            if response is None:
                await signals.request_finished.asend(sender=self.__class__)
            else:
                await sync_to_async(response.close)()


class RequestProcessed(Exception):  # noqa: N818 - Django's name
    """Ends a request's task group (its disconnect listener) once the response is sent."""


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI lifespan (uvicorn, granian): the process's services start with the server
    (``chatapi.startup``)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            startup_hooks_run()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _start_with_daphne() -> None:
    """Under daphne (which speaks no lifespan protocol), run the start-up hooks
    (``chatapi.startup``) as soon as its event loop runs. Daphne's CLI installs Twisted's
    asyncio reactor before it imports the application; ``callLater`` runs on that loop once
    it runs."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import reactor  # the one daphne installed, already imported

    # Typed as Any: Twisted declares the reactor's methods on zope interfaces, without self.
    running: Any = reactor
    running.callLater(0, startup_hooks_run)


request_signals.install()
daphne_headers.install()
daphne_writes.install()
daphne_websocket.install()
startup_hook_register(live_events.loop_capture)
_start_with_daphne()
_router = ProtocolTypeRouter(
    {
        "http": OneThreadASGIHandler(),
        # The live events' socket (GET /ws/v1/events), named as chatapi.urls names the apps'
        # URL modules (chatapi imports no app). It checks the Origin itself: API clients
        # send none, browsers must come from the API's origin or CORS_ALLOWED_ORIGINS.
        "websocket": URLRouter(import_string("conversations.consumers.websocket_urlpatterns")),
        "lifespan": lifespan,
    }
)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The API's views dispatch in the thread pool (``chatapi.dispatch``) when served here."""
    offloaded.set(True)
    await _router(scope, receive, send)
