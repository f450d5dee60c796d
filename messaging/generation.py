"""One assistant turn as a unit that runs on its own: provider events in, Anthropic SSE
events out into an in-memory log, the outcome stored at the end.

The HTTP response only *follows* the log (``follow``), so the generation does not depend on
the response that started it. Today a client disconnect cancels it (and the partial answer is
stored as ``incomplete``); resumable generations build on the same log.
"""

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection

from messaging import sse
from messaging.llm.base import (
    ChatProvider,
    Finish,
    ProviderError,
    ReasoningDelta,
    Started,
    StreamEvent,
    StreamFailed,
    TextDelta,
    Usage,
)
from messaging.models import Message
from messaging.tokens import estimate_tokens
from messaging.turns import TurnOutcome, TurnPlan, turn_cost, turn_record

logger = logging.getLogger(__name__)


@sync_to_async(thread_sensitive=False)
def _record(*, plan: TurnPlan, outcome: TurnOutcome) -> None:
    """``turn_record`` on a worker thread, outside any request; its connection goes back to
    the pool at once."""
    try:
        turn_record(plan=plan, outcome=outcome)
    finally:
        connection.close()


class Generation:
    def __init__(
        self, plan: TurnPlan, provider: ChatProvider, *, ping_seconds: float = 15.0
    ) -> None:
        self.plan = plan
        self.ping_seconds = ping_seconds
        self.log: list[sse.SSEEvent] = []
        self.finished = False
        self.outcome: TurnOutcome | None = None
        self._stream = provider.stream(plan.request)
        self._task: asyncio.Task[TurnOutcome] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._last_event_at = time.perf_counter()
        # What the answer is made of so far.
        self.model = plan.model.id
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.usage: Usage | None = None
        self.stop_reason: str | None = None
        self.first_token_at: float | None = None
        self._block_index = -1
        self._block_type: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> "asyncio.Task[TurnOutcome]":
        """Wait until the provider accepts the request, then run the rest in a task.

        Raises ``ProviderError`` while nothing has been sent, so the caller can still answer
        with an ordinary HTTP error; the assistant message is then stored as ``error``.
        """
        try:
            first = await anext(self._stream)
        except StopAsyncIteration:
            first = None
        except ProviderError as exc:
            await self._store(Message.Status.ERROR, error=exc, refused=True)
            raise
        if not isinstance(first, Started):
            error = ProviderError(502, "api_error", "The model provider sent no answer.")
            await self._store(Message.Status.ERROR, error=error, refused=True)
            raise error
        if first.model:
            self.model = first.model
        self._emit(
            sse.message_start(
                message_id=str(self.plan.assistant_message_id),
                model=self.model,
                input_tokens=self.plan.estimated_input_tokens,
            )
        )
        # A fresh context: the generation must not inherit the request's (it outlives it).
        self._task = asyncio.create_task(self._run(), context=contextvars.Context())
        self._heartbeat = asyncio.create_task(self._beat(), context=contextvars.Context())
        return self._task

    def cancel(self) -> None:
        """Stop generating: the upstream connection closes and the partial answer is kept."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run_to_end(self) -> TurnOutcome:
        """Open and wait for the whole answer (the non-streaming path)."""
        return await asyncio.shield(await self.open())

    async def follow(self, after: int = 0) -> AsyncIterator[bytes]:
        """The SSE bytes of every event with an id above ``after``, live until the end."""
        position = after
        while True:
            while position < len(self.log):
                yield self.log[position].encode()
                position += 1
            if self.finished:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    # --- the turn ----------------------------------------------------------------------------

    async def _run(self) -> TurnOutcome:
        status, error = Message.Status.COMPLETE, None
        try:
            async for event in self._stream:
                failure = self._apply(event)
                if failure is not None:
                    status, error = Message.Status.ERROR, failure
                    break
        except asyncio.CancelledError:
            status = Message.Status.INCOMPLETE
        except Exception:
            logger.exception("generation %s failed", self.plan.assistant_message_id)
            status = Message.Status.ERROR
            error = ProviderError(500, "api_error", "The answer failed unexpectedly.")
        finally:
            await self._stream.aclose()  # closes the upstream connection if still open
            if self._heartbeat is not None:
                self._heartbeat.cancel()
        if status == Message.Status.COMPLETE:
            self._close_block()
            usage = self._final_usage()
            self._emit(
                sse.message_delta(
                    stop_reason=self.stop_reason or "end_turn",
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                )
            )
        elif error is not None:
            self._emit(sse.error(error_type=error.error_type, message=error.message))
        outcome = await self._store(status, error=error)
        if status == Message.Status.COMPLETE:
            self._emit(sse.message_stop())
        self.finished = True
        self._wake()
        return outcome

    def _apply(self, event: StreamEvent) -> ProviderError | None:
        match event:
            case TextDelta(text=text):
                self._delta("text", text)
                self.text.append(text)
            case ReasoningDelta(text=text):
                self._delta("thinking", text)
                self.reasoning.append(text)
            case Usage():
                self.usage = event
            case Finish(stop_reason=stop_reason):
                self.stop_reason = stop_reason
            case StreamFailed(message=message, error_type=error_type):
                return ProviderError(502, error_type, message)
            case Started():
                pass
        return None

    def _delta(self, block_type: str, text: str) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if self._block_type != block_type:
            self._close_block()
            self._block_index += 1
            self._block_type = block_type
            self._emit(sse.content_block_start(index=self._block_index, block_type=block_type))
        self._emit(
            sse.content_block_delta(index=self._block_index, block_type=block_type, text=text)
        )

    def _close_block(self) -> None:
        if self._block_type is not None:
            self._emit(sse.content_block_stop(index=self._block_index))
            self._block_type = None

    def _final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        return Usage(
            input_tokens=self.plan.estimated_input_tokens,
            output_tokens=estimate_tokens("".join(self.reasoning) + "".join(self.text)),
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

    # --- plumbing ----------------------------------------------------------------------------

    def _emit(self, data: dict[str, Any]) -> None:
        self.log.append(sse.SSEEvent(id=len(self.log) + 1, data=data))
        self._last_event_at = time.perf_counter()
        self._wake()

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
        outcome = self.outcome = TurnOutcome(
            status=status,
            content="".join(self.text),
            reasoning="".join(self.reasoning),
            model=self.model,
            stop_reason=(self.stop_reason or "") if status == Message.Status.COMPLETE else "",
            usage=usage,
            usage_estimated=estimated,
            cost_usd=turn_cost(model=self.plan.model, usage=usage),
            latency_ms=round((now - started) * 1000),
            ttft_ms=(
                round((self.first_token_at - started) * 1000)
                if self.first_token_at is not None
                else None
            ),
            error={"type": error.error_type, "message": error.message} if error else None,
        )
        # Shielded: a cancelled request must still leave its message in a final state.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(_record(plan=self.plan, outcome=outcome))
        return outcome
