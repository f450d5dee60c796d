"""Drive the ASGI application the way a server does, in-process: send one HTTP request, read
the response body chunk by chunk as the app sends it, and disconnect at any moment.

Django's test clients cannot disconnect mid-stream, and ``httpx.ASGITransport`` buffers whole
responses; this speaks the ASGI HTTP protocol directly (https://asgi.readthedocs.io).
"""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from chatapi.asgi import application


@dataclass(frozen=True)
class Event:
    id: int | None
    event: str
    data: dict[str, Any]


class ASGIRequest:
    def __init__(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> None:
        self.body = json.dumps(json_body).encode() if json_body is not None else b""
        raw_headers = [(b"host", b"testserver")]
        if json_body is not None:
            raw_headers.append((b"content-type", b"application/json"))
            raw_headers.append((b"content-length", str(len(self.body)).encode()))
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        path_only, _, query = path.partition("?")
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path_only,
            "raw_path": path_only.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self._sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._disconnected = asyncio.Event()
        self._request_sent = False
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> dict[str, Any]:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._disconnected.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        await self._sent.put(message)

    def begin(self) -> "ASGIRequest":
        """Send the request without waiting for anything (a client may leave before the
        response starts)."""
        self._task = asyncio.create_task(application(self.scope, self._receive, self._send))
        return self

    async def start(self, wait: float = 10.0) -> "ASGIRequest":
        """Send the request and wait for the response's status line and headers."""
        if self._task is None:
            self.begin()
        message = await asyncio.wait_for(self._sent.get(), wait)
        assert message["type"] == "http.response.start", message
        self.status = message["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        return self

    async def chunks(self, wait: float = 10.0) -> AsyncIterator[bytes]:
        while True:
            message = await asyncio.wait_for(self._sent.get(), wait)
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body", False):
                return

    async def read(self, wait: float = 10.0) -> bytes:
        return b"".join([chunk async for chunk in self.chunks(wait)])

    async def json(self) -> Any:
        return json.loads(await self.read())

    async def disconnect(self, wait: float = 10.0) -> None:
        """The client goes away, as a server reports it: ``http.disconnect``."""
        self._disconnected.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, wait)

    async def finish(self, wait: float = 10.0) -> None:
        assert self._task is not None
        await asyncio.wait_for(self._task, wait)


def message_post(conversation: Any, auth: dict[str, str], body: dict[str, Any]) -> ASGIRequest:
    """``POST /api/v1/conversations/{id}/messages`` of ``conversation`` (anything with a
    ``pk``), not yet sent: ``start()`` it, or ``begin()`` it to send without waiting."""
    return ASGIRequest(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages",
        headers=auth,
        json_body=body,
    )


def parse_sse(raw: bytes) -> list[Event]:
    """Split an SSE byte stream into events, checking each event's framing."""
    events = []
    text = raw.decode()
    assert text.endswith("\n\n") or not text, text[-200:]
    for block in text.split("\n\n"):
        if not block:
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            fields[name] = value
        data = json.loads(fields["data"])
        assert fields["event"] == data["type"]
        events.append(
            Event(
                id=int(fields["id"]) if "id" in fields else None, event=fields["event"], data=data
            )
        )
    return events
