"""The generations this server process runs, and cancellation across processes.

A generation registers here once its provider has answered, so responses in this process
follow it from memory, a Stop reaches it, and a graceful shutdown can drain it. Cancellation
reaches whichever process runs a generation through Redis pub/sub (``chatapi:cancel``);
without Redis there is one process and it is this one.

The registry knows a generation only by the ``LiveGeneration`` protocol, so it need not
import ``messaging.generation`` (which registers its generations here).
"""

import asyncio
import contextlib
import contextvars
import heapq
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from redis.exceptions import RedisError

from conversations.models import Message
from messaging.endings import SHUTDOWN_ERROR
from messaging.eventlog import logs_written, redis_client, redis_enabled
from messaging.llm.base import ProviderError
from messaging.llm.registry import providers_close

logger = logging.getLogger(__name__)

CANCEL_CHANNEL = "chatapi:cancel"
# How long a shutdown waits for stopped generations to store their outcome.
_DRAIN_STORE_SECONDS = 30.0
_DRAIN_LOG_SECONDS = 5.0  # for the last events to reach the Redis log


class LiveGeneration(Protocol):
    """What this module needs of a ``messaging.generation.Generation``."""

    finished: bool

    @property
    def task(self) -> "asyncio.Task[Any] | None": ...

    def cancel(self, status: Message.Status = ..., *, reason: ProviderError = ...) -> None: ...

    def follow(self, after: int = 0) -> AsyncIterator[bytes]: ...

    async def push(self, write: Callable[[bytes], None], after: int = 0) -> None: ...

    async def wait(self) -> Any: ...


_generations: dict[uuid.UUID, LiveGeneration] = {}
# When each ended generation is to be dropped, soonest first, and the one timer that drops
# them. A timer each would keep the event loop's heap of timers as large as the number of
# ended generations kept (thousands under load), and asyncio clears cancelled timers out of
# it only once they are half of it: until then each keeps the context it was created in
# (a request's, with its objects).
_expiring: list[tuple[float, uuid.UUID]] = []
_expiry: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None
_NO_CONTEXT = contextvars.Context()
# Outcomes of this process's generations that could not be stored (the database was
# unreachable), by message id: the heartbeat retries them before anything else.
_store_later: dict[uuid.UUID, Callable[[], Awaitable[None]]] = {}


def generation_register(message_id: uuid.UUID, generation: LiveGeneration) -> None:
    _generations[message_id] = generation


def generation_get(message_id: uuid.UUID) -> LiveGeneration | None:
    return _generations.get(message_id)


def generation_forget(
    message_id: uuid.UUID, *, ended: LiveGeneration, after_seconds: float
) -> None:
    """A generation has finished: keep ``ended`` (what is left of it: its events) in its
    place, and drop that once followers had time to read the end from memory."""
    _generations[message_id] = ended
    loop = asyncio.get_running_loop()
    heapq.heappush(_expiring, (loop.time() + after_seconds, message_id))
    _expiry_schedule(loop)


def _expiry_schedule(loop: asyncio.AbstractEventLoop) -> None:
    global _expiry  # noqa: PLW0603 - this module's one timer
    when = _expiring[0][0]
    if _expiry is not None and _expiry[0] is loop and _expiry[1].when() <= when:
        return
    if _expiry is not None:
        _expiry[1].cancel()
    # In an empty context: no request's context is kept until then.
    _expiry = (loop, loop.call_at(when, _expire, loop, context=_NO_CONTEXT))


def _expire(loop: asyncio.AbstractEventLoop) -> None:
    global _expiry  # noqa: PLW0603
    _expiry = None
    now = loop.time()
    while _expiring and _expiring[0][0] <= now:
        _generations.pop(heapq.heappop(_expiring)[1], None)
    if _expiring:
        _expiry_schedule(loop)


def _cancel_here(message_id: uuid.UUID) -> bool:
    generation = _generations.get(message_id)
    if generation is not None and not generation.finished:
        generation.cancel(Message.Status.CANCELLED)
        return True
    return False


async def generation_cancel(message_id: uuid.UUID) -> bool:
    """Ask whichever process runs this generation to stop it. True if this process does."""
    if _cancel_here(message_id):
        return True
    if redis_enabled():
        with contextlib.suppress(RedisError):
            await redis_client().publish(CANCEL_CHANNEL, str(message_id))
    return False


async def cancels_listen() -> None:
    """Stop this process's generations that other processes cancel (runs for ever)."""
    delay = 0.0
    while True:
        try:
            async with redis_client().pubsub() as pubsub:
                await pubsub.subscribe(CANCEL_CHANNEL)
                if delay:
                    logger.warning("cancel listener reconnected to Redis")
                delay = 0.0
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    with contextlib.suppress(ValueError):
                        _cancel_here(uuid.UUID(message["data"].decode()))
        except RedisError as exc:
            # Cancels from other processes cannot reach this one until Redis is back.
            if not delay:
                logger.warning("cancel listener lost Redis (%s); reconnecting", exc)
            delay = min(delay * 2 or 0.5, 5.0)
            await asyncio.sleep(delay)


async def generations_drain(deadline: float) -> None:
    """Graceful shutdown (``chatapi.shutdown``): let this process's generations run until
    ``deadline`` (loop time), then stop the rest as ``incomplete``; returns once every one of
    them is stored and their events are in the Redis log."""
    running = [g for g in _generations.values() if not g.finished and g.task is not None]
    if running:
        await _generations_stop(running, deadline)
    if redis_enabled():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DRAIN_LOG_SECONDS):
                await logs_written()
    await providers_close()


async def _generations_stop(running: list[LiveGeneration], deadline: float) -> None:
    tasks = [g.task for g in running if g.task is not None]
    loop = asyncio.get_running_loop()
    await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
    late = [g for g in running if not g.finished]
    for generation in late:
        generation.cancel(Message.Status.INCOMPLETE, reason=SHUTDOWN_ERROR)
    logger.warning(
        "shutdown: %d generations finished, %d stopped as incomplete",
        len(running) - len(late),
        len(late),
    )
    # Each stores its outcome before its task ends; a database that does not answer leaves
    # the rest to the sweeper of another process.
    await asyncio.wait(tasks, timeout=_DRAIN_STORE_SECONDS)


def store_later(message_id: uuid.UUID, store: Callable[[], Awaitable[None]]) -> None:
    """Have the heartbeat call ``store`` until it succeeds. The message stays in progress
    on this (live) worker meanwhile, so no sweeper takes it."""
    _store_later[message_id] = store


async def stores_retry() -> None:
    """Retry the outcomes not stored yet, oldest first; stops at the first that fails."""
    for message_id, store in list(_store_later.items()):
        try:
            await store()
        except Exception:
            logger.warning("message %s still not stored", message_id, exc_info=True)
            return
        del _store_later[message_id]
        logger.info("message %s stored late", message_id)
