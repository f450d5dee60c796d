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
"""

from typing import Any


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
