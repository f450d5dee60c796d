"""A real HTTP/1.1 server on loopback that behaves like Groq's chat completions API.

Used by the tests and the benchmark. It speaks the wire format byte for byte
(https://console.groq.com/docs/api-reference#chat-create): data-only SSE chunks with
chunked transfer encoding, both usage forms, ``x_groq.error``, error bodies with their
headers, and the awkward cases: several chunks in one write, one chunk split across writes,
stalls, and dropped connections; tool calls (whole or in pieces), cached prompt tokens and
Groq's timings. Each POST takes the next queued ``Reply``/``ErrorReply`` (or the default
reply); everything it received is recorded.
"""

import asyncio
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class ToolCallReply:
    """A tool call streamed after the text: a first fragment with the id and name (and
    ``arguments: ""``), then one chunk per piece of ``arguments``; with ``whole``, the call
    in one fragment, as Groq often sends it. ``id=None`` leaves the id out."""

    name: str
    arguments: list[str]
    id: str | None = "call_fake"
    whole: bool = False


@dataclass
class Reply:
    text: list[str] = field(default_factory=lambda: ["Hello", " there", "!"])
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallReply] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"
    prompt_tokens: int = 42
    # default: one per text, reasoning and tool call chunk
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens
    # x_groq.usage's timings, in seconds
    queue_time: float = 0.01
    prompt_time: float = 0.002
    completion_time: float = 0.03
    usage_form: Literal["both", "x_groq", "usage", "none"] = "both"
    model: str | None = None  # default: the requested model
    ttft: float = 0.0  # seconds before the first chunk
    interval: float = 0.0  # seconds between chunks
    batch: int = 1  # chunks per socket write
    split: bool = False  # write each chunk in two halves
    drop_after: int | None = None  # close the connection after this many delta chunks
    stall_after: int | None = None  # stop sending (connection open) after this many
    groq_error_after: int | None = None  # send an x_groq.error chunk after this many
    malformed_after: int | None = None  # send a chunk that is not JSON after this many
    done: bool = True  # end with data: [DONE]
    # Wait (connection open) before the chunk at this index (0: before the first chunk) until
    # ``hold`` is set: a test decides when the rest comes.
    hold_at: int | None = None
    hold: threading.Event = field(default_factory=threading.Event)


@dataclass
class ErrorReply:
    status: int
    message: str = "error"
    type: str = "invalid_request_error"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    498: "Flex Tier Capacity Exceeded",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class FakeGroq:
    def __init__(self, *, models: list[dict[str, Any]] | None = None) -> None:
        self.replies: deque[Reply | ErrorReply] = deque()
        self.default_reply = Reply()
        self.received: list[Received] = []
        self.models = models or [
            {"id": "openai/gpt-oss-20b", "context_window": 131072, "max_completion_tokens": 65536},
            {"id": "openai/gpt-oss-120b", "context_window": 131072, "max_completion_tokens": 65536},
            {"id": "qwen/qwen3-32b", "context_window": 131072, "max_completion_tokens": 40960},
        ]
        self._encoded: dict[str, tuple[Reply, list[tuple[str, bytes]]]] = {}
        self.disconnects = 0  # streams the client closed before the server finished
        self.completed_streams = 0
        self.disconnected = threading.Event()
        self.held = threading.Event()  # a reply reached its hold_at
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeGroq":
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # End the connections still open (stalled streams, idle keep-alives) cleanly.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/openai/v1"

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        return self.disconnected.wait(timeout)

    def wait_for_hold(self, timeout: float = 5.0) -> bool:
        """Wait until a reply reaches its ``hold_at`` (each hold is waited for once)."""
        held = self.held.wait(timeout)
        self.held.clear()
        return held

    # --- HTTP --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep_open = await self._handle(method, path, headers, body, writer)
                if not keep_open:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if method == "GET" and path.endswith("/models"):
            data = [
                {
                    "object": "model",
                    "created": 1732000000,
                    "owned_by": "fake",
                    "active": True,
                    **model,
                }
                for model in self.models
            ]
            return await self._json(writer, 200, {"object": "list", "data": data})
        if method != "POST" or not path.endswith("/chat/completions"):
            return await self._json(
                writer,
                404,
                {"error": {"message": "Unknown route", "type": "invalid_request_error"}},
            )
        payload = json.loads(body or b"{}")
        self.received.append(Received(path=path, headers=headers, body=payload))
        if headers.get("authorization") != "Bearer gsk_test":
            return await self._json(
                writer,
                401,
                {
                    "error": {
                        "message": "Invalid API Key",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
        reply = self.replies.popleft() if self.replies else self.default_reply
        if isinstance(reply, ErrorReply):
            if reply.raw_body is not None:
                return await self._raw(writer, reply.status, reply.raw_body, reply.headers)
            error = {"message": reply.message, "type": reply.type}
            if reply.code:
                error["code"] = reply.code
            return await self._json(writer, reply.status, {"error": error}, reply.headers)
        return await self._stream(writer, payload, reply)

    async def _json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> bool:
        return await self._raw(
            writer, status, json.dumps(body).encode(), headers, "application/json"
        )

    async def _raw(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> bool:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        return True

    async def _stream(
        self, writer: asyncio.StreamWriter, request: dict[str, Any], reply: Reply
    ) -> bool:
        model = reply.model or request.get("model", "")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
            b"x-ratelimit-remaining-requests: 14399\r\nx-ratelimit-reset-tokens: 7.66s\r\n\r\n"
        )
        chunks = self._encoded_chunks(model, reply)
        sent_deltas = 0
        pending: list[bytes] = []
        try:
            if reply.ttft:
                await asyncio.sleep(reply.ttft)
            # Paced by a schedule, as a model emits tokens at its own rate: a late wake-up of
            # this loop does not push every later chunk back.
            loop = asyncio.get_running_loop()
            due = loop.time()
            for index, (kind, data) in enumerate(chunks):
                if index == reply.hold_at:
                    await self._flush(writer, pending, reply.split)
                    await self._hold(reply)
                    due = loop.time()
                if kind == "delta":
                    if reply.drop_after is not None and sent_deltas >= reply.drop_after:
                        await self._flush(writer, pending, reply.split)
                        return False  # dropped: close without the terminating chunk
                    if reply.stall_after is not None and sent_deltas >= reply.stall_after:
                        await self._flush(writer, pending, reply.split)
                        await asyncio.sleep(3600)
                    if reply.groq_error_after is not None and sent_deltas >= reply.groq_error_after:
                        pending.append(
                            self._event(
                                {
                                    "id": "chatcmpl-fake",
                                    "object": "chat.completion.chunk",
                                    "created": 1732000000,
                                    "model": model,
                                    "choices": [],
                                    "x_groq": {"id": "req_fake", "error": "upstream model crashed"},
                                }
                            )
                        )
                        await self._flush(writer, pending, reply.split)
                        break
                    if reply.malformed_after is not None and sent_deltas >= reply.malformed_after:
                        pending.append(b"data: {not json\n\n")
                        await self._flush(writer, pending, reply.split)
                        break
                    sent_deltas += 1
                pending.append(data)
                if len(pending) >= reply.batch:
                    await self._flush(writer, pending, reply.split)
                    if reply.interval:
                        due += reply.interval
                        await asyncio.sleep(max(0.0, due - loop.time()))
            await self._flush(writer, pending, reply.split)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            self.completed_streams += 1
        except (ConnectionError, asyncio.CancelledError):
            self._note_disconnect()
            raise
        if writer.is_closing():
            self._note_disconnect()
            return False
        return True

    async def _hold(self, reply: Reply) -> None:
        self.held.set()
        # A threading.Event: the test sets it from its own thread and loop.
        while not reply.hold.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    def _encoded_chunks(self, model: str, reply: Reply) -> list[tuple[str, bytes]]:
        """Encoded once per reply and model: the benchmark streams the same reply many times."""
        cached = self._encoded.get(model)
        if cached is not None and cached[0] is reply:
            return cached[1]
        chunks = list(self._chunks(model, reply))
        self._encoded[model] = (reply, chunks)
        return chunks

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self.disconnected.set()

    async def _flush(self, writer: asyncio.StreamWriter, pending: list[bytes], split: bool) -> None:
        if not pending:
            return
        data = b"".join(pending)
        pending.clear()
        parts = [data[: len(data) // 2], data[len(data) // 2 :]] if split else [data]
        for part in parts:
            if writer.is_closing() or writer.transport.is_closing():
                raise ConnectionResetError("client went away")
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            if split:
                await asyncio.sleep(0.001)

    @staticmethod
    def _tool_call_fragments(index: int, call: ToolCallReply) -> list[dict[str, Any]]:
        head: dict[str, Any] = {"index": index}
        if call.id is not None:
            head["id"] = call.id
        head["type"] = "function"
        if call.whole:
            return [{**head, "function": {"name": call.name, "arguments": "".join(call.arguments)}}]
        return [
            {**head, "function": {"name": call.name, "arguments": ""}},
            *({"index": index, "function": {"arguments": piece}} for piece in call.arguments),
        ]

    @staticmethod
    def _event(chunk: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def _chunks(self, model: str, reply: Reply) -> Any:
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1732000000,
            "model": model,
        }
        yield (
            "head",
            self._event(
                {
                    **base,
                    "system_fingerprint": "fp_fake",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                    "x_groq": {"id": "req_fake"},
                }
            ),
        )
        for piece in reply.reasoning:
            yield (
                "delta",
                self._event(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"reasoning": piece}, "finish_reason": None}
                        ],
                    }
                ),
            )
        for piece in reply.text:
            yield (
                "delta",
                self._event(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                ),
            )
        tool_chunks = 0
        for index, call in enumerate(reply.tool_calls):
            for fragment in self._tool_call_fragments(index, call):
                tool_chunks += 1
                yield (
                    "delta",
                    self._event(
                        {
                            **base,
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {"tool_calls": [fragment]},
                                    "finish_reason": None,
                                }
                            ],
                        }
                    ),
                )
        completion = reply.completion_tokens
        if completion is None:
            completion = len(reply.text) + len(reply.reasoning) + tool_chunks
        usage: dict[str, Any] = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": reply.prompt_tokens + completion,
        }
        if reply.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
        finish_reason = reply.finish_reason
        if finish_reason is None:
            finish_reason = "tool_calls" if reply.tool_calls else "stop"
        final: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}],
        }
        if reply.usage_form in ("both", "x_groq"):
            final["x_groq"] = {
                "id": "req_fake",
                "usage": {
                    "queue_time": reply.queue_time,
                    **usage,
                    "prompt_time": reply.prompt_time,
                    "completion_time": reply.completion_time,
                    "total_time": reply.prompt_time + reply.completion_time,
                },
            }
        yield "tail", self._event(final)
        if reply.usage_form in ("both", "usage"):
            yield "tail", self._event({**base, "choices": [], "usage": usage})
        if reply.done:
            yield "tail", b"data: [DONE]\n\n"
