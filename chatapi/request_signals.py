"""Django's ``request_started`` receivers, without a thread hop per request under ASGI.

Django's receivers (``reset_queries``, ``close_old_connections``) are synchronous, so the ASGI
handler runs them through ``sync_to_async(thread_sensitive=True)``: a hop to the request's
synchronous thread at the start of every request. At that point the request has run nothing
there: the connection of that thread was closed when the previous request finished
(``request_finished`` keeps Django's receivers, called from the response's ``close()`` on that
thread). One async receiver keeps the query log reset, without the hop.

``install()`` is called by the ASGI entry point (``chatapi.asgi``); WSGI and Django's test
clients keep Django's receivers.
"""

from typing import Any

from django.core import signals
from django.db import close_old_connections, reset_queries


async def request_started(**kwargs: Any) -> None:
    reset_queries()  # the query log (kept only with DEBUG) of this thread's connections


def install() -> None:
    signals.request_started.disconnect(reset_queries)
    signals.request_started.disconnect(close_old_connections)
    signals.request_started.connect(request_started)
