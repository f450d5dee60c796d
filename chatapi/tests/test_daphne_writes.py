"""Daphne's connections send a write at once when nothing is queued (chatapi.daphne_writes),
on a real Twisted TCP connection over a real socket pair: what the socket does not take is
queued, later writes queue behind it, and the bytes arrive complete and in order."""

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import protocol, tcp
from twisted.internet.asyncioreactor import AsyncioSelectorReactor

from chatapi import daphne_writes

make_server: Any = tcp.Server  # Twisted types it by zope interfaces


@pytest.fixture
def connection() -> Iterator[tuple[Any, socket.socket]]:
    daphne_writes.install()
    loop = asyncio.new_event_loop()
    reactor = AsyncioSelectorReactor(loop)  # not installed: this test's own
    ours, peer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.setblocking(False)
    peer.settimeout(5)
    server = make_server(ours, protocol.Protocol(), ("127.0.0.1", 1), None, 1, reactor)
    yield server, peer
    server.stopReading()
    server.stopWriting()
    ours.close()
    peer.close()
    loop.close()


def readable(peer: socket.socket) -> bytes:
    peer.setblocking(False)
    try:
        return peer.recv(1 << 20)
    except BlockingIOError:
        return b""
    finally:
        peer.settimeout(5)


def assert_nothing_queued(server: Any) -> None:
    assert not server.dataBuffer
    assert not server._tempDataBuffer


def test_a_write_on_an_idle_connection_is_sent_before_the_reactor_runs(
    connection: tuple[Any, socket.socket],
) -> None:
    server, peer = connection

    server.write(b"event: ping\n\n")
    server.writeSequence([b"d\r\n", b"data: {}\n\n", b"\r\n"])

    assert readable(peer) == b"event: ping\n\nd\r\ndata: {}\n\n\r\n"
    assert_nothing_queued(server)


def test_what_the_socket_does_not_take_is_queued_and_later_writes_queue_behind_it(
    connection: tuple[Any, socket.socket],
) -> None:
    server, peer = connection
    big = bytes(range(256)) * 4096  # 1 MiB: more than the socket pair buffers

    server.write(big)
    assert server._tempDataLen > 0  # the rest, queued for the reactor
    server.write(b"after")  # not sent ahead of the queue
    server.writeSequence([b"and ", b"last"])

    received = readable(peer)
    assert 0 < len(received) < len(big)
    while len(received) < len(big) + len(b"afterand last"):
        server.doWrite()  # what the reactor does when the socket can take more
        received += peer.recv(1 << 20)
    assert received == big + b"afterand last"
    assert_nothing_queued(server)


def test_a_closing_connection_and_non_bytes_take_twisteds_own_path(
    connection: tuple[Any, socket.socket],
) -> None:
    server, peer = connection

    with pytest.raises(TypeError):
        server.write("text")
    with pytest.raises(TypeError):
        server.writeSequence([b"ok", "text"])
    server.loseConnection()
    server.write(b"late")

    assert readable(peer) == b""
