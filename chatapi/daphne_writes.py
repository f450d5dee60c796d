"""Daphne's response bytes go to the socket when they are written, not a loop turn later.

Twisted queues every write on a TCP connection and asks the reactor to watch the socket for
writability; the reactor sends the queue on its next turn and stops watching. A streamed
answer writes one small chunk per token, so each token paid two changes of the socket's
watch (two ``epoll_ctl`` calls), an extra turn of the event loop and the Python around all
three (about a sixth of a relayed chunk's CPU, profiled with ``bench.profile relay``).

Here a write to a plain (not TLS) connection with nothing queued before it is sent at once
with one ``send``; what the socket does not take (its buffer is full, or it failed) is queued
as Twisted always did, and every write after it queues behind it until the queue drains, so
the bytes keep their order and Twisted's flow control (pausing a producer when the queue
grows) is unchanged. A connection that is closing or closed takes Twisted's own path.

``body_writer()`` gives code that streams a response (an answer's events) a synchronous write
of body bytes on the current request's connection under daphne: what daphne does with an ASGI
``http.response.body`` message, called directly by the code that has the bytes, instead of
handing them to Django's response loop in another task, which then awaits daphne's ``send``
(``messaging.generation.Generation.push``). Under another server it is None and the response
streams through ASGI as usual.
"""

import contextvars
import functools
from collections.abc import Callable
from typing import Any

# The ASGI ``send`` of the streaming response being sent (``chatapi.asgi``).
_send: contextvars.ContextVar[Any] = contextvars.ContextVar("chatapi_asgi_send", default=None)


def request_send_set(send: Any) -> None:
    """Called by the ASGI handler before it sends a streaming response's body, in the
    context of the task that sends it."""
    _send.set(send)


def body_writer() -> Callable[[bytes], None] | None:
    """A synchronous write of response body bytes on the current request's connection, for
    a response whose headers have been sent and which has more to send; None unless daphne
    serves the request. A write after the client went away is dropped, as daphne drops it."""
    send = _send.get()
    if not isinstance(send, functools.partial):
        return None
    handle_reply, web_request, request_write = _daphne()
    bound: Any = send.func  # daphne's Server.handle_reply, bound to its server
    if not (
        getattr(bound, "__func__", None) is handle_reply
        and len(send.args) == 1
        and isinstance(send.args[0], web_request)
    ):
        return None
    connections: dict[Any, dict[str, Any]] = bound.__self__.connections
    request: Any = send.args[0]

    def write(data: bytes) -> None:
        # Server.handle_reply's and WebRequest.handle_reply's checks, then their write.
        state = connections.get(request)
        if state is None or state.get("disconnected") or request.finished:
            return
        if request.channel is None:
            return
        request_write(request, data)

    return write


@functools.cache
def _daphne() -> tuple[Any, type, Callable[[Any, bytes], None]]:
    """daphne's ``send``, its request class and their write (imported when first needed: a
    management command need not import Twisted)."""
    from daphne.http_protocol import WebRequest
    from daphne.server import Server
    from twisted.web import http

    return Server.handle_reply, WebRequest, http.Request.write


def _unsent(connection: Any, data: bytes) -> bytes:
    """Send ``data`` now if the connection is idle; what is left to queue."""
    if (
        connection.TLS
        or connection.dataBuffer
        or connection._tempDataLen
        or not connection.connected
        or connection.disconnecting
        or connection._writeDisconnected
    ):
        return data
    try:
        sent: int = connection.socket.send(data)
    except OSError:  # would block, or the connection is gone: Twisted's queue finds out
        return data
    return data[sent:]


def install() -> None:
    from twisted.internet import tcp

    if tcp.Connection.write.__module__ == __name__:
        return  # installed already
    queued_write: Any = tcp.Connection.write
    queued_write_sequence: Any = tcp.Connection.writeSequence

    def write(connection: Any, data: bytes) -> None:
        if type(data) is bytes and data:
            data = _unsent(connection, data)
            if not data:
                return
        queued_write(connection, data)

    def write_sequence(connection: Any, iovec: list[bytes]) -> None:
        if all(type(part) is bytes for part in iovec):
            write(connection, b"".join(iovec))
        else:
            queued_write_sequence(connection, iovec)  # Twisted's own TypeError

    tcp.Connection.write = write  # type: ignore[method-assign]
    tcp.Connection.writeSequence = write_sequence  # type: ignore[method-assign]
