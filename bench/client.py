"""A small asyncio HTTP/1.1 client for the benchmark: one connection per request, timestamps
at the bytes that matter (response headers, first content delta, end), chunked decoding, and
nothing else, so the client is not what is measured (the run checks that against the upstream
directly)."""

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

FIRST_TOKEN_MARKERS = (
    b'"text_delta"',
    b'"thinking_delta"',
    b'"delta":{"content"',
    b'"delta":{"reasoning"',
)


@dataclass
class Result:
    status: int = 0
    ttft: float | None = None  # seconds from sending the request to the first content delta
    last_token: float | None = None  # seconds from sending the request to the last one
    total: float = 0.0  # seconds until the response ended
    chunks: int = 0  # content deltas received
    body: bytes = b""
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


async def request(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    keep_body: bool = False,
    limit_seconds: float = 120.0,
) -> Result:
    result = Result()
    payload = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    started = time.perf_counter()
    writer = None
    kept: list[bytes] = []
    try:
        async with asyncio.timeout(limit_seconds):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            result.status = int(status_line.split(" ", 2)[1])
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    result.headers[name.strip().lower()] = value.strip()
            chunked = result.headers.get("transfer-encoding", "").lower() == "chunked"
            async for data in _body(reader, chunked, result.headers.get("content-length")):
                if result.ttft is None and any(m in data for m in FIRST_TOKEN_MARKERS):
                    result.ttft = time.perf_counter() - started
                tokens = sum(data.count(m) for m in FIRST_TOKEN_MARKERS)
                if tokens:
                    result.chunks += tokens
                    result.last_token = time.perf_counter() - started
                if keep_body:
                    kept.append(data)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        # What arrived before a failure too: the chaos run resumes a cut stream from there.
        result.body = b"".join(kept)
        if writer is not None:
            writer.close()
    result.total = time.perf_counter() - started
    return result


async def _body(reader: asyncio.StreamReader, chunked: bool, length: str | None) -> Any:
    if not chunked:
        if length is not None:
            yield await reader.readexactly(int(length))
        else:
            while data := await reader.read(65536):
                yield data
        return
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]
