"""httpx's client API over aiohttp's connection pool and C HTTP parser.

Relaying a streamed answer is mostly reading a chunked HTTP body: with httpx's own transport
that is h11 parsing it in pure Python, the largest share of a relayed chunk's CPU
(bench/README.md). aiohttp parses it in C. httpx stays the API the provider code uses
(requests, responses, timeouts, exceptions); this transport maps aiohttp's exceptions onto
httpx's, so what the provider code catches means the same thing:

- could not connect (refused, DNS, TLS) -> ``httpx.ConnectError``
- the connection or a read timed out -> ``httpx.ConnectTimeout`` / ``httpx.ReadTimeout``
- the server closed the connection or sent a broken body -> ``httpx.ReadError`` /
  ``httpx.RemoteProtocolError``
"""

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientResponseError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(str(exc) or type(exc).__name__) from exc


# The response's _Body, in its httpx extensions.
BODY_EXTENSION = "chatapi.body"


class _Body(httpx.AsyncByteStream):
    """The response's body as aiohttp reads it; ``chunks`` for code that wants it without
    httpx's wrappers."""

    def __init__(
        self,
        request: httpx.Request,
        response: aiohttp.ClientResponse,
        stalls: "_Stalls",
        read_timeout: float | None,
    ) -> None:
        self._request = request
        self._response = response
        self._stalls = stalls
        self._watched = read_timeout is not None
        self._read_timeout = read_timeout or 0.0
        self.last_read = 0.0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Whatever has arrived, as it arrives: one chunk per read when they are paced."""
        content = self._response.content
        loop = asyncio.get_running_loop()
        watched = self._watched
        if watched:
            self.last_read = loop.time()
            self._stalls.watch(self)
        try:
            with _httpx_errors(self._request):
                while data := await content.readany():
                    if watched:
                        self.last_read = loop.time()
                    yield data
        finally:
            if watched:
                self._stalls.forget(self)

    def deadline(self) -> float:
        """When the wait for the next bytes times out."""
        return self.last_read + self._read_timeout

    def time_out(self) -> None:
        """What aiohttp's own read timeout does: the read fails, the connection is closed."""
        error = aiohttp.SocketTimeoutError("Timeout on reading data from socket")
        connection = self._response.connection
        if connection is not None and connection.protocol is not None:
            connection.protocol.set_exception(error)
        self._response.content.set_exception(error)

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; closed otherwise.
        self._response.release()


class _Stalls:
    """The read timeout of the bodies being read: one timer for all of them, which finds
    those that have waited longer than their timeout for their next bytes. aiohttp's own
    read timeout cancels a timer and schedules another on every chunk received (about 5% of
    a relayed chunk's CPU); it still covers the wait for a response's headers."""

    def __init__(self) -> None:
        self._bodies: set[_Body] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, body: _Body) -> None:
        self._bodies.add(body)
        deadline = body.deadline()
        if self._timer is None or deadline < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_at(deadline, self._check)

    def forget(self, body: _Body) -> None:
        self._bodies.discard(body)

    def _check(self) -> None:
        self._timer = None
        if not self._bodies:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        next_deadline = None
        for body in list(self._bodies):
            deadline = body.deadline()
            if deadline <= now:
                self._bodies.discard(body)
                body.time_out()
            elif next_deadline is None or deadline < next_deadline:
                next_deadline = deadline
        if next_deadline is not None:
            # A body that read meanwhile has a later deadline: it is looked at again then.
            self._timer = loop.call_at(next_deadline, self._check)


def _close_dropped(session: aiohttp.ClientSession) -> None:
    """Close the connections of a transport dropped without ``aclose()`` (its event loop
    ended first: a test's loop, a process that did not drain), now and quietly, instead of
    aiohttp's "Unclosed client session" and "Unclosed connector" errors at garbage
    collection. Once the loop is closed there is nothing to await."""
    if session.closed:
        return
    connector = session.connector
    session.detach()
    if connector is not None:
        # The synchronous half of BaseConnector.close() (aiohttp pinned in requirements.txt).
        connector._close()


def raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """``response.aiter_raw()``, straight from aiohttp when the response came through this
    transport (httpx's two wrappers around it are a generator each per chunk)."""
    body = response.extensions.get(BODY_EXTENSION)
    if not isinstance(body, _Body) or response.is_stream_consumed:
        return response.aiter_raw()
    response.is_stream_consumed = True
    return body.chunks()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (its pool: ``max_connections`` at most, kept alive between
    requests) for one event loop; create it on that loop."""

    def __init__(self, *, max_connections: int) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, ssl=httpx.create_ssl_context()),
            # The request goes out with httpx's headers and body as they are, and the
            # response comes back as sent (httpx decodes a Content-Encoding itself).
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
        )
        self._stalls = _Stalls()
        weakref.finalize(self, _close_dropped, self._session)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        with _httpx_errors(request):
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        read_timeout = timeout.get("read")
        if read_timeout is not None and response.connection is not None:
            protocol = response.connection.protocol
            if protocol is not None:
                protocol.read_timeout = None  # the body's reads are watched by _Stalls
        body = _Body(request, response, self._stalls, read_timeout)
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1", BODY_EXTENSION: body},
        )

    async def aclose(self) -> None:
        await self._session.close()
