"""One assistant turn as a unit that runs on its own: provider events in, Anthropic SSE
events out, the outcome stored at the end.

A generation runs in a task of its own, detached from the HTTP request that started it. Its
events go to an in-memory list (``events``, followed by responses in this process) and, with
Redis, to the message's event log (followed by any process: ``messaging.eventlog``). An HTTP
response only *follows* those events, so a client can disconnect and resume, and a generation
can be cancelled from anywhere (``messaging.live``).
"""

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from chatapi import metrics
from conversations.models import Message
from messaging import sse
from messaging.answer import AnswerBlocks
from messaging.endings import DISCONNECTED_ERROR, NOT_STORED_MESSAGE
from messaging.eventlog import RedisLogWriter, redis_enabled
from messaging.live import generation_forget, generation_register, store_later
from messaging.llm.base import (
    ChatProvider,
    Finish,
    ProviderError,
    ReasoningDelta,
    Started,
    StreamEvent,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from messaging.llm.registry import provider_get
from messaging.llm.stop_sequences import stop_sequences_apply
from messaging.llm.token_estimates import estimate_tokens
from messaging.sweeper import worker_ensure_running
from messaging.titles import title_generate_later
from messaging.turns import TurnOutcome, TurnPlan, provider_timings_json, turn_record
from usage.catalog import turn_cost

logger = logging.getLogger(__name__)

# A finished generation stays in memory this long for same-process resumes (Redis serves
# later ones; without Redis, memory is the only log, kept for the log TTL).
_KEEP_FINISHED_SECONDS_WITH_REDIS = 60.0

# How long an answer started for a client (``Generation.start``) waits for that client's
# response to attach before it reads the provider's stream anyway. Attaching takes a few turns
# of the event loop (the response's headers go out first); this bounds the wait of an answer
# whose response never starts (its client went away in between).
CLIENT_ATTACH_SECONDS = 1.0


# Background generations still opening (the loop keeps only weak references to tasks).
_detached: set["asyncio.Future[Any]"] = set()


def _retrieve(task: "asyncio.Future[Any]") -> None:
    """Mark a background task's exception as seen (it was handled where it was raised)."""
    if not task.cancelled():
        task.exception()


@sync_to_async(thread_sensitive=False)
def _record(
    *, plan: TurnPlan, outcome: TurnOutcome, then: Callable[[], None] | None = None
) -> None:
    """``turn_record`` on a worker thread, outside any request (its connection goes back to
    the pool at once), then ``then`` in the same hop once the outcome is stored. A failure
    of ``then`` is logged: the outcome is stored all the same."""
    try:
        turn_record(plan=plan, outcome=outcome)
    finally:
        connection.close()
    if then is not None:
        try:
            then()
        except Exception:
            logger.exception("after storing the turn of %s", plan.assistant_message_id)


# Failures before the first token that another model may not share: rate limits past the
# retries, overload and capacity, the provider failing or unreachable, a retired model.
_FALLBACK_UPSTREAM_STATUSES = frozenset({429, 498, 500, 502, 503, 504})


def _falls_back(error: ProviderError) -> bool:
    if error.code == "model_decommissioned":
        return True
    if error.upstream_status is not None:
        return error.upstream_status in _FALLBACK_UPSTREAM_STATUSES
    return error.status in (502, 503, 504, 529)


async def _refusal(error: ProviderError) -> AsyncGenerator[StreamEvent]:
    """A stream that fails at once, as a provider that cannot be reached does."""
    raise error
    yield  # pragma: no cover - makes this an async generator


class _Sink:
    """A response that ``Generation.push`` writes to: the events appended in one turn of the
    event loop go out in one write, at the end of that turn."""

    __slots__ = ("_loop", "_pending", "_write")

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []

    def add(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def write(self, data: bytes) -> None:
        try:
            self._write(data)
        except Exception:  # the client's connection, not the generation, failed
            logger.exception("writing an answer's events to its client failed")


class EndedGeneration:
    """What this process keeps of a generation once it has ended, for the resumes that come
    after: its events. The generation itself (its tasks, plan, outcome, upstream stream and
    the request objects its callbacks reach: some 80 objects the garbage collector walks) is
    let go, so a process that keeps many ended answers replayable keeps a few objects each."""

    __slots__ = ("events",)
    finished = True
    task = None

    def __init__(self, events: sse.EventBuffer) -> None:
        self.events = events

    def cancel(
        self,
        status: Message.Status = Message.Status.CANCELLED,
        *,
        reason: ProviderError = DISCONNECTED_ERROR,
    ) -> None:
        """Nothing is left to stop."""

    async def follow(self, after: int = 0) -> AsyncIterator[bytes]:
        if after < len(self.events):
            yield self.events.after(after)

    async def push(self, write: Callable[[bytes], None], after: int = 0) -> None:
        if after < len(self.events):
            _Sink(write).write(self.events.after(after))

    async def wait(self) -> None:
        """It has ended."""


class Generation:
    def __init__(
        self,
        plan: TurnPlan,
        provider: ChatProvider,
        *,
        ping_seconds: float = 15.0,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """``on_stored`` (synchronous) runs once the outcome is stored, however it ended."""
        self.plan = plan
        self.ping_seconds = ping_seconds
        self._on_stored = on_stored
        self.events = sse.EventBuffer()
        self.finished = False
        self.outcome: TurnOutcome | None = None
        self.store_deferred = False  # the database was unreachable past the grace
        self._stream = stop_sequences_apply(
            provider.stream(plan.request), plan.request.stop_sequences
        )
        # The catalog model answering: the plan's, or the fallback that took over.
        self.answering = plan.model
        self._fallbacks = list(plan.fallbacks)
        self._writer: RedisLogWriter | None = None
        self._task: asyncio.Task[TurnOutcome] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._sinks: list[_Sink] = []
        self._end_waiters: list[asyncio.Future[None]] = []
        # Set while the answer waits for its client's response to attach (``start``).
        self._client: asyncio.Future[None] | None = None
        self._client_timer: asyncio.TimerHandle | None = None
        self._last_event_at = time.perf_counter()
        self._cancel_status = Message.Status.CANCELLED
        self._cancel_error = DISCONNECTED_ERROR
        # What the answer is made of so far.
        self.model = plan.model.id
        self.answer = AnswerBlocks(self)
        self.usage: Usage | None = None
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.first_token_at: float | None = None
        self._first_unsent = False  # the first token is made and not yet written

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self, *, for_client: bool = False) -> "asyncio.Task[TurnOutcome]":
        """Wait until the provider accepts the request, then run the rest in a task.

        Raises ``ProviderError`` while nothing has been sent, so the caller can still answer
        with an ordinary HTTP error; the assistant message is then stored as ``error``.

        ``for_client``: a response is about to follow the answer (``start``). The task reads
        the provider's stream once that response attaches (``push``, ``follow``), or after
        ``CLIENT_ATTACH_SECONDS``: a provider that sends a short answer at once would
        otherwise have it relayed, ended and its end stored before the response's headers
        went out, the first token reaching the client last. Nothing is lost either way: a
        response replays every event from the first.
        """
        worker_ensure_running()
        while True:
            try:
                first = await anext(self._stream)
            except StopAsyncIteration:
                first = None
            except ProviderError as exc:
                if self._fallbacks and _falls_back(exc):
                    await self._fall_back(exc)
                    continue
                await self._store(Message.Status.ERROR, error=exc, refused=True)
                raise
            except asyncio.CancelledError:
                # The client went away before the provider answered, and generations stop on
                # disconnect (``start``): the upstream request is closed with the stream.
                await self._store(Message.Status.INCOMPLETE, error=DISCONNECTED_ERROR)
                raise
            except Exception:
                logger.exception("generation %s failed to start", self.plan.assistant_message_id)
                first = None
            break
        if not isinstance(first, Started):
            error = ProviderError(502, "api_error", "The model provider sent no answer.")
            await self._store(Message.Status.ERROR, error=error, refused=True)
            raise error
        if first.model:
            self.model = first.model
        self.plan = self.plan.started()
        self._fallbacks = []
        if redis_enabled():
            self._writer = RedisLogWriter(self.plan.assistant_message_id)
        generation_register(self.plan.assistant_message_id, self)
        self._emit(
            sse.message_start(
                message_id=str(self.plan.assistant_message_id),
                model=self.model,
                input_tokens=self.plan.estimated_input_tokens,
            )
        )
        if for_client:
            loop = asyncio.get_running_loop()
            self._client = loop.create_future()
            self._client_timer = loop.call_later(
                CLIENT_ATTACH_SECONDS, self._client_attached, context=contextvars.Context()
            )
        # A fresh context: the generation must not inherit the request's (it outlives it).
        metrics.ACTIVE_STREAMS.inc()
        self._task = asyncio.create_task(self._run(), context=contextvars.Context())
        self._task.add_done_callback(lambda _: metrics.ACTIVE_STREAMS.dec())
        self._heartbeat = asyncio.create_task(self._beat(), context=contextvars.Context())
        return self._task

    async def _fall_back(self, error: ProviderError) -> None:
        """The model failed before its first token: the next fallback model takes the turn
        (the stream has shown nothing yet, so its client sees one clean answer)."""
        await self._stream.aclose()
        failed, model = self.answering, self._fallbacks.pop(0)
        logger.warning(
            "generation %s: %s failed before its first token (%s); falling back to %s",
            self.plan.assistant_message_id,
            failed.id,
            error,
            model.id,
        )
        request = dataclasses.replace(
            self.plan.request,
            model=model.id,
            reasoning_effort=self.plan.request.reasoning_effort if model.reasoning else None,
        )
        self.answering = model
        self.model = model.id
        try:
            provider = provider_get(model.provider)
        except ProviderError as exc:
            self._stream = _refusal(exc)
            return
        self._stream = stop_sequences_apply(provider.stream(request), request.stop_sequences)

    async def start(self, *, relayed: bool = True) -> "asyncio.Task[TurnOutcome]":
        """``open`` on behalf of a request, which may go away before the provider answers
        (its task is cancelled). With GENERATION_CONTINUE_ON_DISCONNECT the opening goes on
        and the answer is generated and stored, to be resumed; without, it stops and the
        message is stored ``incomplete``. Never leaves the message ``in_progress``.
        ``relayed``: the request's response will follow the answer (``open``'s
        ``for_client``)."""
        opening = asyncio.ensure_future(self.open(for_client=relayed))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            # No response of this request will attach.
            opening.add_done_callback(lambda _: self._client_attached())
            if not opening.done():
                if settings.GENERATION_CONTINUE_ON_DISCONNECT:
                    # Its outcome is stored either way; nobody waits for the task itself.
                    opening.add_done_callback(_retrieve)
                else:
                    opening.cancel()
            raise

    async def abandon(self) -> None:
        """The request that prepared this turn went away before it could start it: what a
        disconnect before the provider answered means (see ``start``)."""
        if settings.GENERATION_CONTINUE_ON_DISCONNECT:
            with contextlib.suppress(ProviderError):  # stored as the error it is
                await self.open()
        else:
            await self._stream.aclose()
            await self._store(Message.Status.INCOMPLETE, error=DISCONNECTED_ERROR, refused=True)

    def run_detached(self) -> None:
        """Open and run with no client attached (a background send): nothing but a cancel or
        a shutdown stops it; a refusal is stored as the error it is (``open``)."""
        opening = asyncio.ensure_future(self.open())
        _detached.add(opening)
        opening.add_done_callback(_detached.discard)
        opening.add_done_callback(_retrieve)

    @property
    def task(self) -> "asyncio.Task[TurnOutcome] | None":
        return self._task

    def cancel(
        self,
        status: Message.Status = Message.Status.CANCELLED,
        *,
        reason: ProviderError = DISCONNECTED_ERROR,
    ) -> None:
        """Stop generating: the upstream connection closes and the partial answer is kept,
        as ``cancelled`` (the user's Stop) or ``incomplete`` (the client went away, or the
        server shuts down: ``reason`` is the error the message and its followers get)."""
        if self._task is not None and not self._task.done():
            self._cancel_status = status
            self._cancel_error = reason
            self._task.cancel()

    async def run_to_end(self) -> TurnOutcome:
        """Start and wait for the whole answer (the non-streaming path)."""
        return await asyncio.shield(await self.start(relayed=False))

    async def wait(self) -> TurnOutcome:
        """The outcome, once the generation has ended (it must have been opened)."""
        if self._task is None:
            raise RuntimeError("wait() before open()")
        return await asyncio.shield(self._task)

    def stored_message(self) -> Message:
        """The assistant message as ``turn_record`` stored it (built from the outcome, no
        query); the generation must have ended."""
        outcome = self.outcome
        if outcome is None:
            raise RuntimeError("stored_message() before the outcome was stored")
        return Message(
            id=self.plan.assistant_message_id,
            conversation_id=self.plan.conversation_id,
            role=Message.Role.ASSISTANT,
            status=outcome.status,
            content=outcome.content,
            reasoning=outcome.reasoning,
            blocks=outcome.blocks,
            model=outcome.model,
            stop_reason=outcome.stop_reason,
            stop_sequence=outcome.stop_sequence or "",
            input_tokens=outcome.usage.input_tokens,
            output_tokens=outcome.usage.output_tokens,
            cached_input_tokens=outcome.usage.cached_input_tokens,
            provider_timings=provider_timings_json(outcome.usage),
            usage_estimated=outcome.usage_estimated,
            latency_ms=outcome.latency_ms,
            ttft_ms=outcome.ttft_ms,
            cost_usd=outcome.cost_usd,
            error=outcome.error,
        )

    async def follow(self, after: int = 0) -> AsyncIterator[bytes]:
        """The SSE bytes of every event with an id above ``after``, live until the end."""
        self._client_attached()
        position = after
        while True:
            if position < len(self.events):
                # Everything that piled up goes out as one write (same bytes, fewer sends).
                batch = self.events.after(position)
                position = len(self.events)
                yield batch
                continue
            if self.finished:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    async def push(self, write: Callable[[bytes], None], after: int = 0) -> None:
        """``follow`` for a response that can be written to directly (``write``: synchronous,
        ``chatapi.daphne_writes.body_writer``): the events with an id above ``after`` are
        written as they are appended, by the generation's own task, until the end. Nothing
        else is woken per event (``follow`` wakes the response's task, which then awaits the
        server's ``send``); the events of one turn of the event loop go out in one write."""
        sink = _Sink(write)
        if after < len(self.events):
            sink.add(self.events.after(after))
        if not self.finished:
            ended = asyncio.get_running_loop().create_future()
            self._end_waiters.append(ended)
            self._sinks.append(sink)
            # After the sink's first write is due: the events so far go out before the
            # provider's stream is read.
            self._client_attached()
            try:
                await ended
            finally:
                self._sinks.remove(sink)
        sink.flush()

    # --- the turn ----------------------------------------------------------------------------

    async def _run(self) -> TurnOutcome:
        status, error = await self._relay()
        error = self._emit_ending(status, error)
        outcome = await self._store(status, error=error)
        if status in (Message.Status.COMPLETE, Message.Status.CANCELLED):
            if self.store_deferred:
                self._emit(sse.error(error_type="api_error", message=NOT_STORED_MESSAGE))
            else:
                self._emit(sse.message_stop())
        self._finish()
        if status == Message.Status.COMPLETE and self.plan.auto_title and settings.TITLE_MODEL:
            title_generate_later(
                conversation_id=self.plan.conversation_id,
                user_id=self.plan.user_id,
                content=self.plan.user_message.content,
                auto_title=self.plan.auto_title,
                api_key_id=self.plan.api_key_id,
            )
        if self._writer is not None:
            self._writer.close()
        generation_forget(
            self.plan.assistant_message_id,
            ended=EndedGeneration(self.events),
            after_seconds=(
                _KEEP_FINISHED_SECONDS_WITH_REDIS
                if self._writer is not None
                else settings.GENERATION_EVENT_LOG_TTL_SECONDS
            ),
        )
        return outcome

    async def _relay(self) -> tuple[str, ProviderError | None]:
        """The provider's stream made into the answer's events, until it ends, fails or is
        cancelled; the status it ended with and the error to store."""
        status, error = Message.Status.COMPLETE, None
        try:
            if self._client is not None:
                await self._client
            async for event in self._stream:
                failure = self._apply(event)
                if self._first_unsent:
                    # The first token goes out now, not after what else has arrived with it.
                    self._first_unsent = False
                    for sink in self._sinks:
                        sink.flush()
                if failure is not None:
                    status, error = Message.Status.ERROR, failure
                    break
        except asyncio.CancelledError:
            status = self._cancel_status
        except Exception:
            logger.exception("generation %s failed", self.plan.assistant_message_id)
            status = Message.Status.ERROR
            error = ProviderError(500, "api_error", "The answer failed unexpectedly.")
        finally:
            await self._stream.aclose()  # closes the upstream connection if still open
            if self._heartbeat is not None:
                self._heartbeat.cancel()
        return status, error

    def _emit_ending(self, status: str, error: ProviderError | None) -> ProviderError | None:
        """The events that end the answer before it is stored; returns the error to store."""
        if status in (Message.Status.COMPLETE, Message.Status.CANCELLED):
            complete = status == Message.Status.COMPLETE
            blocks = self.answer.finish(complete=complete)
            if (
                complete
                and self.stop_reason in (None, sse.DEFAULT_STOP_REASON)
                and any(block["type"] == "tool_use" for block in blocks)
            ):
                # Some providers end a tool call with "stop": the answer waits for results.
                self.stop_reason = "tool_use"
            usage = self._final_usage()
            cached = usage.cached_input_tokens
            self._emit(
                sse.message_delta(
                    stop_reason=(self.stop_reason or sse.DEFAULT_STOP_REASON)
                    if complete
                    else sse.CANCELLED_STOP_REASON,
                    stop_sequence=self.stop_sequence if complete else None,
                    # Anthropic counts cached input apart from input_tokens.
                    input_tokens=usage.input_tokens - min(cached or 0, usage.input_tokens),
                    output_tokens=usage.output_tokens,
                    cache_read_input_tokens=cached,
                )
            )
        else:
            self.answer.abandon()
            if status == Message.Status.INCOMPLETE:
                error = self._cancel_error
            if error is not None:
                self._emit(sse.error(error_type=error.error_type, message=error.message))
        return error

    def _apply(self, event: StreamEvent) -> ProviderError | None:
        match event:
            case TextDelta(text=text):
                self._first_token()
                self.answer.text_delta(text)
            case ReasoningDelta(text=text):
                self._first_token()
                self.answer.thinking_delta(text)
            case ToolCallStart(index=index, id=tool_use_id, name=name):
                self._first_token()
                self.answer.tool_call_start(index=index, tool_use_id=tool_use_id, name=name)
            case ToolCallDelta(index=index, arguments=arguments):
                self.answer.tool_call_delta(index=index, arguments=arguments)
            case Usage():
                self.usage = event
            case Finish(stop_reason=stop_reason, stop_sequence=stop_sequence):
                self.stop_reason = stop_reason
                self.stop_sequence = stop_sequence
            case StreamFailed(message=message, error_type=error_type):
                metrics.UPSTREAM_ERRORS.labels(self.plan.model.provider, error_type).inc()
                return ProviderError(502, error_type, message)
            case Started():
                pass
        return None

    def _first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
            self._first_unsent = True
            metrics.TIME_TO_FIRST_TOKEN.labels(self.plan.model.id).observe(
                self.first_token_at - self.plan.started_at
            )

    # The event sink of ``self.answer`` (messaging.answer.EventSink).

    def emit(self, data: dict[str, Any]) -> None:
        self._emit(data)

    def emit_delta(self, *, index: int, block_type: str, text: str) -> None:
        self._append(
            sse.SSEEvent.delta(len(self.events) + 1, index=index, block_type=block_type, text=text)
        )

    def _final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        return Usage(
            input_tokens=self.plan.estimated_input_tokens,
            output_tokens=estimate_tokens(self.answer.reasoning)
            + estimate_tokens(self.answer.text)
            + sum(
                estimate_tokens(block["name"])
                + estimate_tokens(orjson.dumps(block["input"]).decode())
                for block in self.answer.blocks
                if block["type"] == "tool_use"
            ),
        )

    async def _beat(self) -> None:
        """A ``ping`` after ``ping_seconds`` without any other event, so proxies and clients
        keep an idle stream open while a reasoning model thinks."""
        while True:
            idle = time.perf_counter() - self._last_event_at
            if idle >= self.ping_seconds:
                self._emit(sse.ping())
                idle = 0.0
            await asyncio.sleep(self.ping_seconds - idle)

    async def _persist(self, outcome: TurnOutcome) -> bool:
        """Store the outcome, retrying while the database is unreachable, for up to
        GENERATION_STORE_GRACE_SECONDS; then hand it to this process's heartbeat, which
        retries until it is stored (``live.store_later``). True once stored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.GENERATION_STORE_GRACE_SECONDS
        delay = 0.1
        message_id = self.plan.assistant_message_id
        while True:
            try:
                await _record(plan=self.plan, outcome=outcome, then=self._on_stored)
            except (OperationalError, InterfaceError) as exc:
                if loop.time() + delay <= deadline:
                    logger.warning("generation %s not stored yet (%s); retrying", message_id, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                logger.error("generation %s not stored: the database is unreachable", message_id)
                store_later(message_id, functools.partial(self._store_late, outcome))
                return False
            except Exception:
                logger.exception("generation %s could not be stored", message_id)
                store_later(message_id, functools.partial(self._store_late, outcome))
                return False
            return True

    async def _store_late(self, outcome: TurnOutcome) -> None:
        await _record(plan=self.plan, outcome=outcome, then=self._on_stored)

    # --- plumbing ----------------------------------------------------------------------------

    def _emit(self, data: dict[str, Any]) -> None:
        self._append(sse.SSEEvent.build(len(self.events) + 1, data))

    def _append(self, event: sse.SSEEvent) -> None:
        self.events.append(event.raw)
        if self._writer is not None:
            self._writer.push(event)
        self._last_event_at = time.perf_counter()
        for sink in self._sinks:
            sink.add(event.raw)
        if self._waiters:
            self._wake()

    def discard(self) -> None:
        """The turn was written in a caller's transaction that then failed to commit: its
        messages do not exist. Nothing runs; what the turn holds (its stream slot) is given
        back. Only before ``open``."""
        if self._on_stored is not None:
            self._on_stored()

    def _client_attached(self) -> None:
        """The answer's response has attached, or will not: read the provider's stream."""
        if self._client_timer is not None:
            self._client_timer.cancel()
            self._client_timer = None
        if self._client is not None and not self._client.done():
            self._client.set_result(None)

    def _finish(self) -> None:
        self.finished = True
        self._wake()
        for ended in self._end_waiters:
            if not ended.done():
                ended.set_result(None)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _store(
        self, status: str, *, error: ProviderError | None = None, refused: bool = False
    ) -> TurnOutcome:
        """Record the outcome. A refused request produced nothing and costs nothing."""
        now = time.perf_counter()
        if refused:
            usage, estimated = Usage(input_tokens=0, output_tokens=0), False
        elif self.usage is not None:
            usage, estimated = self.usage, False
        else:
            usage, estimated = self._final_usage(), True
        started = self.plan.started_at
        complete = status == Message.Status.COMPLETE
        outcome = self.outcome = TurnOutcome(
            status=status,
            content=self.answer.text,
            reasoning=self.answer.reasoning,
            blocks=self.answer.blocks,
            model=self.model,
            stop_reason=(self.stop_reason or "") if complete else "",
            stop_sequence=self.stop_sequence if complete else None,
            usage=usage,
            usage_estimated=estimated,
            cost_usd=turn_cost(model=self.answering, usage=usage),
            latency_ms=round((now - started) * 1000),
            ttft_ms=(
                round((self.first_token_at - started) * 1000)
                if self.first_token_at is not None
                else None
            ),
            error={"type": error.error_type, "message": error.message} if error else None,
            answered_by=self.answering if self.answering is not self.plan.model else None,
        )
        # Waited for even when this task is cancelled meanwhile (a Stop, a disconnect): the
        # message must end in a final state before anything else happens.
        persisting = asyncio.ensure_future(self._persist(outcome))
        while not persisting.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(persisting)
        self.store_deferred = persisting.cancelled() or not persisting.result()
        return outcome
