"""Chat completions over any OpenAI-compatible streaming API; ``GroqClient`` is the default.

Wire format: https://console.groq.com/docs/api-reference#chat-create and
https://platform.openai.com/docs/api-reference/chat-streaming. Data-only SSE, one JSON chunk per
``data:`` line, ending with ``data: [DONE]``; usage arrives at the end either as a top-level
``usage`` (with ``stream_options.include_usage``) or as ``x_groq.usage``.
"""

import asyncio
import dataclasses
import logging
import random
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from chatapi import metrics
from messaging.llm.base import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Finish,
    ProviderError,
    ReasoningDelta,
    Started,
    StreamEvent,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    ToolDefinition,
    UpstreamTimings,
    Usage,
)
from messaging.llm.transport import AiohttpTransport, raw_chunks

logger = logging.getLogger(__name__)

# Identity: a compressed event stream would only add latency (each event must wait for the
# compressor), and the body can then be read raw, without httpx's decoder on every chunk.
_JSON_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Upstream status -> (status we answer, envelope error type). Our server's key being refused
# is our problem, not the caller's: 502. See the error table in docs/api.md.
_STATUS_MAP = {
    400: (400, "invalid_request_error"),
    401: (502, "api_error"),
    403: (502, "api_error"),
    404: (400, "invalid_request_error"),
    413: (413, "request_too_large"),
    422: (400, "invalid_request_error"),
    424: (502, "api_error"),
    429: (429, "rate_limit_error"),
    498: (529, "overloaded_error"),
    500: (502, "api_error"),
    502: (502, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}
_RETRYABLE_STATUSES = frozenset({429, 498, 500, 502, 503, 504})
_FLEX_CAPACITY_EXCEEDED = 498


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    base_url: str
    api_key: str
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_retries: int = 2
    retry_base_delay: float = 0.5
    retry_max_delay: float = 8.0
    max_connections: int = 1000


class _Retry(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, error: ProviderError) -> None:
        self.error = error


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        """An API's client keeps none."""


class _UpstreamClient(httpx.AsyncClient):
    """httpx's client with the completions request's URL, headers and timeouts merged once
    (``completions``), and no cookie jar: httpx would otherwise parse every response's
    headers through the standard library's cookie machinery, for an upstream that sets
    none worth keeping."""

    def __init__(self, config: ProviderSettings) -> None:
        self._no_cookies = _NoCookies()
        super().__init__(
            base_url=config.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {config.api_key}", **_JSON_HEADERS},
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            transport=AiohttpTransport(max_connections=config.max_connections),
        )
        merged = self.build_request("POST", "/chat/completions")
        self._completions = (
            merged.url,
            [
                (name, value)
                for name, value in merged.headers.multi_items()
                if name.lower() != "content-length"
            ],
            merged.extensions,
        )

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        """None are kept."""

    def completions(self, body: bytes) -> httpx.Request:
        """What ``build_request("POST", "/chat/completions", content=body)`` builds, without
        merging the client's settings into it again."""
        url, headers, extensions = self._completions
        return httpx.Request("POST", url, headers=headers, content=body, extensions=extensions)


class OpenAICompatibleClient(ChatProvider):
    """One pooled ``httpx.AsyncClient`` per event loop (one loop per server process)."""

    def __init__(self, config: ProviderSettings) -> None:
        self.name = config.name
        self.config = config
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _UpstreamClient]
        self._clients = weakref.WeakKeyDictionary()

    def _http(self) -> _UpstreamClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = _UpstreamClient(self.config)
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body; a provider with other parameter names overrides this.

        ``stop_sequences`` are not sent as ``stop``: the provider would cut the text without
        saying which sequence matched, so they are enforced on the stream instead
        (``messaging.llm.stop_sequences``)."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message_json(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_output_tokens is not None:
            body["max_completion_tokens"] = request.max_output_tokens
        if request.reasoning_effort is not None:
            body["reasoning_effort"] = request.reasoning_effort
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.tools:
            body["tools"] = [_tool_json(tool) for tool in request.tools]
            if request.tool_choice is not None:
                body["tool_choice"] = _tool_choice_json(request.tool_choice)
        if request.service_tier is not None:
            body["service_tier"] = request.service_tier
        if request.response_format is not None:
            body["response_format"] = request.response_format
        return body

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent]:
        body = self.request_body(request)
        del request  # the body is what is sent, and sent again by a retry
        attempt = 0
        while True:
            produced = False
            try:
                async for event in self._attempt(body):
                    if not produced:
                        produced = True
                        # No retry once output has started: an open stream need not hold
                        # the history it sent (the body was encoded when it was sent).
                        body.clear()
                    yield event
                return
            except _Retry as retry:
                metrics.UPSTREAM_ERRORS.labels(self.name, retry.error.error_type).inc()
                # Retries happen only before anything reached the caller.
                if produced:
                    raise retry.error from None
                if (
                    retry.error.upstream_status == _FLEX_CAPACITY_EXCEEDED
                    and body.get("service_tier") == "flex"
                ):
                    # Flex fails fast when Groq has no spare capacity: once more, at once,
                    # on the ordinary tier (the retries after that are the usual ones).
                    logger.warning("%s: flex capacity exceeded; retrying on_demand", self.name)
                    body = {**body, "service_tier": "on_demand"}
                    continue
                if attempt >= self.config.max_retries:
                    raise retry.error from None
                delay = self._backoff(attempt, retry.error.retry_after)
                if delay is None:
                    raise retry.error from None
                attempt += 1
                logger.warning("%s: %s; retry %d in %.2fs", self.name, retry.error, attempt, delay)
                await asyncio.sleep(delay)
            except ProviderError as error:  # refused, not retryable
                metrics.UPSTREAM_ERRORS.labels(self.name, error.error_type).inc()
                raise

    def _backoff(self, attempt: int, retry_after: float | None) -> float | None:
        """Exponential backoff with full jitter; the upstream's retry-after wins, up to the cap
        (beyond it, give up and let the client see the rate limit)."""
        if retry_after is not None:
            return retry_after if retry_after <= self.config.retry_max_delay else None
        ceiling = min(self.config.retry_max_delay, self.config.retry_base_delay * 2**attempt)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    async def _attempt(self, body: dict[str, Any]) -> AsyncGenerator[StreamEvent]:
        http = self._http()
        sent_at = time.perf_counter()
        try:
            # orjson: the bytes httpx's json= would send (compact UTF-8), several times faster
            # for a long history.
            response = await http.send(http.completions(orjson.dumps(body)), stream=True)
            try:
                metrics.UPSTREAM_LATENCY.labels(self.name).observe(time.perf_counter() - sent_at)
                if response.status_code >= 400:
                    await response.aread()
                    error = _error_from_response(response, self.name)
                    if error.retryable:
                        raise _Retry(error)
                    raise error
                async for event in _parse_stream(response):
                    yield event
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise _Retry(
                ProviderError(
                    504,
                    "timeout_error",
                    f"The model provider ({self.name}) timed out.",
                    retryable=True,
                )
            ) from exc
        except httpx.TransportError as exc:
            raise _Retry(
                ProviderError(
                    502,
                    "api_error",
                    f"The model provider ({self.name}) is unreachable.",
                    retryable=True,
                )
            ) from exc


def _message_json(message: ChatMessage) -> dict[str, Any]:
    """One history message in OpenAI's shape: an assistant's tool calls as ``tool_calls``
    (with ``content`` null when it said nothing), a tool's answer as ``role: "tool"``."""
    if message.tool_calls:
        return {
            "role": message.role,
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ],
        }
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    return {"role": message.role, "content": message.content}


def _tool_json(tool: ToolDefinition) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.input_schema
    return {"type": "function", "function": function}


def _tool_choice_json(choice: ToolChoice) -> str | dict[str, Any]:
    """Anthropic's ``tool_choice`` in OpenAI's words: ``any`` is ``required``."""
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return "required" if choice.type == "any" else choice.type


class _StreamState:
    __slots__ = (
        "cached_input_tokens",
        "done",
        "failed",
        "finish_reason",
        "model",
        "started",
        "timings",
        "tool_calls",
        "usage",
    )

    def __init__(self) -> None:
        self.started = False
        self.done = False
        self.failed = False
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        # Groq reports usage twice (x_groq.usage on the last choice, then the top-level
        # usage chunk) and only one of them may carry these: kept from whichever does.
        self.cached_input_tokens: int | None = None
        self.timings: UpstreamTimings | None = None
        # The provider's index of every tool call started so far.
        self.tool_calls: set[int] = set()

    def final_usage(self) -> Usage | None:
        if self.usage is None:
            return None
        return dataclasses.replace(
            self.usage,
            cached_input_tokens=self.usage.cached_input_tokens
            if self.usage.cached_input_tokens is not None
            else self.cached_input_tokens,
            timings=self.timings,
        )

    def fail(self, message: str, error_type: str = "api_error") -> StreamFailed:
        if not self.started:
            # Nothing reached the caller yet: an ordinary HTTP error is still possible.
            raise ProviderError(502, error_type, message)
        self.failed = True
        return StreamFailed(message, error_type=error_type)


async def _parse_stream(response: httpx.Response) -> AsyncGenerator[StreamEvent]:
    """The events of the stream's ``data:`` lines. Lines are split from the bytes as they
    arrive (chunks batched in one read or split across reads come out the same), and
    nothing is decoded to text on the way."""
    state = _StreamState()
    encoded = response.headers.get("content-encoding", "identity") != "identity"
    pending = b""
    try:
        async for received in response.aiter_bytes() if encoded else raw_chunks(response):
            # After [DONE] the body is read to its end (a few bytes), so the connection
            # goes back to the pool instead of being closed: no new connection per turn.
            if state.done:
                continue
            lines = (pending + received).split(b"\n")
            pending = lines.pop()
            for event in _lines_events(lines, state):
                yield event
            if state.failed:
                break
        if not (state.done or state.failed):
            for event in _lines_events([pending], state):
                yield event
    except httpx.TimeoutException:
        if not state.started:
            raise
        yield state.fail("The model provider stopped sending.", "timeout_error")
    except httpx.TransportError:
        if not state.started:
            raise
        yield state.fail("The model provider closed the connection mid-stream.")
    for event in _ending(state):
        yield event


def _lines_events(lines: list[bytes], state: _StreamState) -> list[StreamEvent]:
    """The events of whole lines, up to ``[DONE]`` or a failure."""
    events: list[StreamEvent] = []
    for line in lines:
        if line.startswith(b"data:"):  # else: blank separators, comments, other fields
            events += _events_from_payload(line[5:].strip(), state)
            if state.done or state.failed:
                break
    return events


def _ending(state: _StreamState) -> list[StreamEvent]:
    """The events after the body's end: usage and finish, or the failure it is."""
    if state.failed:
        return []
    if not state.done and state.finish_reason is None:
        return [state.fail("The model provider ended the stream early.")]
    events: list[StreamEvent] = [] if state.started else [Started(model="")]
    usage = state.final_usage()
    if usage is not None:
        events.append(usage)
    events.append(Finish(STOP_REASONS.get(state.finish_reason or "stop", "end_turn")))
    return events


def _events_from_payload(payload: bytes, state: _StreamState) -> list[StreamEvent]:
    if payload == b"[DONE]":
        state.done = True
        return []
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        chunk = None
    if not isinstance(chunk, dict):
        return [state.fail("The model provider sent a malformed chunk.")]
    return _events_from_chunk(chunk, state)


def _events_from_chunk(chunk: Mapping[str, Any], state: _StreamState) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    x_groq = chunk.get("x_groq")
    if not isinstance(x_groq, dict):
        x_groq = {}
    if not state.started:
        state.started = True
        state.model = str(chunk.get("model") or "")
        events.append(Started(model=state.model, upstream_id=x_groq.get("id") or chunk.get("id")))
    if x_groq.get("error"):
        events.append(state.fail(f"The model provider failed: {str(x_groq['error'])[:300]}"))
        return events
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            # Groq names it `reasoning`; vLLM and others `reasoning_content`.
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                events.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if isinstance(content, str) and content:
                events.append(TextDelta(content))
            tool_calls = delta.get("tool_calls")
            if isinstance(tool_calls, list):
                events.extend(_tool_call_events(tool_calls, state))
        if choice.get("finish_reason"):
            state.finish_reason = str(choice["finish_reason"])
    for usage in (x_groq.get("usage"), chunk.get("usage")):
        if isinstance(usage, dict):
            _note_usage(usage, state)
    return events


def _tool_call_events(fragments: list[Any], state: _StreamState) -> list[StreamEvent]:
    """``delta.tool_calls``: a call's first fragment names it (``id``, ``function.name``),
    the rest carry pieces of ``function.arguments``; Groq often sends a whole call at once.
    Fragments without a usable index or name are dropped rather than failing the answer."""
    events: list[StreamEvent] = []
    for fragment in fragments:
        if not isinstance(fragment, dict):
            continue
        index = fragment.get("index")
        function = fragment.get("function")
        if not isinstance(index, int) or not isinstance(function, dict):
            continue
        if index not in state.tool_calls:
            name = function.get("name")
            if not isinstance(name, str) or not name:
                continue
            call_id = fragment.get("id")
            if not isinstance(call_id, str) or not call_id:
                # Tool results must name the call: give it an id if the provider did not.
                call_id = f"toolu_{uuid.uuid4().hex[:24]}"
            state.tool_calls.add(index)
            events.append(ToolCallStart(index=index, id=call_id, name=name))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            events.append(ToolCallDelta(index=index, arguments=arguments))
    return events


def _note_usage(raw: Mapping[str, Any], state: _StreamState) -> None:
    usage = state.usage = _usage_from(raw)
    if usage.cached_input_tokens is not None:
        state.cached_input_tokens = usage.cached_input_tokens
    timings = _timings_from(raw)
    if timings is not None:
        state.timings = timings


def _timings_from(raw: Mapping[str, Any]) -> UpstreamTimings | None:
    """Groq's ``x_groq.usage`` seconds; None unless all three are numbers."""
    values = [raw.get(key) for key in ("queue_time", "prompt_time", "completion_time")]
    numbers = [
        float(value)
        for value in values
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    ]
    if len(numbers) != len(values):
        return None
    return UpstreamTimings(*numbers)


def _usage_from(raw: Mapping[str, Any]) -> Usage:
    def detail(key: str, field: str) -> int | None:
        details = raw.get(key)
        value = details.get(field) if isinstance(details, dict) else None
        return int(value) if isinstance(value, int) else None

    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        reasoning_tokens=detail("completion_tokens_details", "reasoning_tokens"),
        cached_input_tokens=detail("prompt_tokens_details", "cached_tokens"),
    )


def _error_from_response(response: httpx.Response, provider: str) -> ProviderError:
    """Groq's error body is ``{"error": {"message", "type", "code"}}``."""
    message = code = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        code = body["error"].get("code")
    upstream = response.status_code
    status, error_type = _STATUS_MAP.get(
        upstream, (502, "api_error") if upstream >= 500 else (400, "invalid_request_error")
    )
    if status == 502 and upstream in (401, 403):
        # Never echo what the provider said about our key.
        shown = f"The model provider ({provider}) rejected this server's credentials."
    elif status >= 500 or status == 529:
        shown = f"The model provider ({provider}) failed (HTTP {upstream})."
    else:
        shown = str(message)[:500] if message else f"The model provider refused (HTTP {upstream})."
    return ProviderError(
        status=status,
        error_type=error_type,
        message=shown,
        retry_after=_retry_after(response.headers.get("retry-after")),
        code=str(code) if code else None,
        retryable=upstream in _RETRYABLE_STATUSES,
        upstream_status=upstream,
    )


def _retry_after(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class GroqClient(OpenAICompatibleClient):
    """Groq's OpenAI-compatible endpoint. Nothing differs today beyond configuration; the
    subclass names the provider and is where a Groq-only parameter would go."""
