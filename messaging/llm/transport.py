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


class _Body(httpx.AsyncByteStream):
    def __init__(self, request: httpx.Request, response: aiohttp.ClientResponse) -> None:
        self._request = request
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            # Whatever has arrived, as it arrives: one chunk per read when they are paced.
            async for data in self._response.content.iter_any():
                yield data

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; closed otherwise.
        self._response.release()


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
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(request, response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        await self._session.close()
