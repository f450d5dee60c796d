"""DRF views under ASGI without Django's one-thread queue.

Django runs a synchronous view under ASGI on the single thread it keeps for thread-sensitive
code, so every sync request of a process waits in one line, database round trips included.
``APIView`` here looks async to Django and runs DRF's whole synchronous dispatch
(authentication, throttles, the handler, rendering) in one hop to the event loop's thread
pool, so requests overlap their database waits; the pool thread's connection goes back to
the database pool when the hop ends.

A handler that has more to do on the event loop (opening an upstream stream) returns
``ContinueOnLoop(coroutine_function)``: the hop ends there and the coroutine produces the response.

Only requests that enter through ``chatapi.asgi`` are dispatched this way. Elsewhere (Django's
test clients, ``runserver`` under WSGI) the view runs in the calling thread as before, which
is what keeps a test's transaction visible to the view.
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpResponseBase
from django.template.response import SimpleTemplateResponse
from django.utils.functional import classproperty
from rest_framework import views
from rest_framework.request import Request
from rest_framework.response import Response

offloaded: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "chatapi_dispatch_offloaded", default=False
)


class ContinueOnLoop(HttpResponseBase):
    """What a handler returns when the rest of the request runs on the event loop:
    ``finish()`` makes the response (or raises an error the view turns into its envelope).
    ``abandon()``, when given, runs instead if the client went away before ``finish`` could
    start (the synchronous part still ran to its end, as a thread cannot be interrupted).
    ``discard()``, when given, runs instead if what the synchronous part wrote was not
    committed after all (``accounts.rls``: the caller transaction's commit failed)."""

    def __init__(
        self,
        finish: Callable[[], Awaitable[HttpResponseBase]],
        *,
        abandon: Callable[[], Awaitable[None]] | None = None,
        discard: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.finish = finish
        self.abandon = abandon
        self.discard = discard


# Abandoned continuations still running (the loop keeps only weak references to tasks).
_abandoned: set["asyncio.Task[None]"] = set()


def _abandon(hop: "asyncio.Future[HttpResponseBase]") -> None:
    if hop.cancelled() or hop.exception() is not None:
        return
    pending = hop.result()
    if isinstance(pending, ContinueOnLoop) and pending.abandon is not None:
        task = asyncio.ensure_future(pending.abandon())
        _abandoned.add(task)
        task.add_done_callback(_abandoned.discard)


def _rendered(response: HttpResponseBase) -> HttpResponseBase:
    """Render now, in the pool thread. Django would otherwise render a DRF response in its
    thread-sensitive thread, a second hop; once rendered, its ``render`` is a coroutine
    function returning it, which Django awaits on the loop."""
    if isinstance(response, SimpleTemplateResponse) and not response.is_rendered:
        response.render()

        async def already_rendered() -> HttpResponseBase:
            return response

        response.render = already_rendered  # type: ignore[method-assign,assignment]
    return response


class APIView(views.APIView):
    """The base class of the API's views (instead of DRF's)."""

    @classproperty
    def view_is_async(cls) -> bool:  # noqa: N805 - a class property
        return True

    async def dispatch(  # type: ignore[override]
        self, request: Any, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        if offloaded.get():
            call = sync_to_async(self._dispatch_in_pool, thread_sensitive=False)
        else:
            call = sync_to_async(self.dispatch_sync)
        hop = asyncio.ensure_future(call(request, *args, **kwargs))
        try:
            # Django cancels a view whose client went away; the thread goes on regardless,
            # and what it prepared must not be left half-started.
            response = await asyncio.shield(hop)
        except asyncio.CancelledError:
            hop.add_done_callback(_abandon)
            raise
        if isinstance(response, ContinueOnLoop):
            response = await self._continue(response, *args, **kwargs)
        return response

    def dispatch_sync(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """DRF's synchronous dispatch; subclasses wrap it (it runs in one thread, with one
        database connection, from authentication to the rendered response)."""
        return super().dispatch(request, *args, **kwargs)

    def _dispatch_in_pool(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return _rendered(self.dispatch_sync(request, *args, **kwargs))
        finally:
            connection.close()  # back to the pool: this thread serves other requests next

    async def _continue(
        self, pending: ContinueOnLoop, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        request: Request = self.request
        try:
            response = await pending.finish()
        except Exception as exc:  # noqa: BLE001 - DRF's handler decides, as in dispatch()
            response = self.handle_exception(exc)
        for header, value in pending.items():  # what finalize_response() gave it (Allow, Vary)
            if header.lower() != "content-type":
                response.setdefault(header, value)
        if isinstance(response, Response):
            response = self.finalize_response(request, response, *args, **kwargs)
        return _rendered(response)  # JSON rendering: no database, no need for a thread
