"""Daphne's connections send a write at once when nothing is queued (chatapi.daphne_writes),
on a real Twisted TCP connection over a real socket pair: what the socket does not take is
queued, later writes queue behind it, and the bytes arrive complete and in order. And the
body writer a streamed answer uses under daphne: a real daphne server object and HTTP
channel on a loopback connection, with an ASGI application of the test's own."""

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from daphne.http_protocol import HTTPFactory
from daphne.server import Server
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


def serve_one_request(
    app: Any,
) -> tuple[socket.socket, dict[Any, dict[str, Any]], asyncio.AbstractEventLoop]:
    """Run ``app`` for one GET on a daphne server's HTTP channel over a loopback connection
    (the server object as daphne builds it, without listening); the client's socket and the
    server's connection states."""
    daphne_writes.install()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    reactor = AsyncioSelectorReactor(loop)
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname(), timeout=5)
    accepted, _ = listener.accept()
    listener.close()
    accepted.setblocking(False)
    server = Server(application=app, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {}  # what Server.run() starts with
    channel = HTTPFactory(server).buildProtocol(("127.0.0.1", 1))
    channel.makeConnection(make_server(accepted, channel, ("127.0.0.1", 1), None, 1, reactor))
    channel.dataReceived(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
    loop.run_until_complete(asyncio.sleep(0.05))  # the application runs as a task
    asyncio.set_event_loop(None)
    return client, server.connections, loop


def test_under_daphne_the_body_writer_writes_what_daphne_writes_for_a_body_message() -> None:
    writers: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        daphne_writes.request_send_set(send)  # as chatapi.asgi does for every request
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"event: a\n\n", "more_body": True})
        write = daphne_writes.body_writer()
        assert write is not None
        write(b"event: b\n\n")
        writers.append(write)

    client, connections, loop = serve_one_request(app)

    head, _, body = client.recv(65536).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"a\r\nevent: a\n\n\r\na\r\nevent: b\n\n\r\n"  # the same chunk twice

    # once the client is gone, a write is dropped as daphne's send drops it
    (request,) = connections
    connections[request]["disconnected"] = 1
    writers[0](b"event: c\n\n")
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(100)
    client.close()
    loop.close()


def test_under_another_server_there_is_no_body_writer() -> None:
    async def send(message: dict[str, Any]) -> None:
        pass

    async def request() -> Any:
        daphne_writes.request_send_set(send)
        return daphne_writes.body_writer()

    assert asyncio.run(request()) is None
