"""The generations this server process runs, its heartbeat, the sweeper, and cancellation
across processes.

Every process that generates answers registers as a ``GenerationWorker`` and refreshes its
``heartbeat_at`` every ``GENERATION_HEARTBEAT_SECONDS``; each in-progress message records its
worker. A message whose worker has been silent for ``GENERATION_STALE_SECONDS`` belongs to a
dead process: the sweeper (run by every live worker's heartbeat, and by ``manage.py
sweep_generations``) stores it as ``incomplete`` with the partial answer from the event log,
and ends its log so followers stop waiting.

Cancellation reaches whichever process runs a generation through Redis pub/sub
(``chatapi:cancel``); without Redis there is one process and it is this one.
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
import weakref
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.rls import service_role
from chatapi import shutdown
from conversations.models import Message
from messaging import sse
from messaging.eventlog import (
    append_events,
    log_events,
    logs_written,
    redis_client,
    redis_enabled,
)
from messaging.models import GenerationWorker

if TYPE_CHECKING:
    from messaging.generation import Generation

logger = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
CANCEL_CHANNEL = "chatapi:cancel"
SWEPT_ERROR = {
    "type": "api_error",
    "message": "The server generating this answer stopped; the partial answer was kept.",
}

# How long a shutdown waits for stopped generations to store their outcome.
_DRAIN_STORE_SECONDS = 30.0
_DRAIN_LOG_SECONDS = 5.0  # for the last events to reach the Redis log

_generations: dict[uuid.UUID, "Generation"] = {}
# Outcomes of this process's generations that could not be stored (the database was
# unreachable), by message id: the heartbeat retries them before anything else.
_store_later: dict[uuid.UUID, Callable[[], Awaitable[None]]] = {}
_services: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Task[None]]]
_services = weakref.WeakKeyDictionary()


# --- this process's generations -------------------------------------------------------------


def generation_register(generation: "Generation") -> None:
    _generations[generation.plan.assistant_message_id] = generation


def generation_get(message_id: uuid.UUID) -> "Generation | None":
    return _generations.get(message_id)


def generation_forget(message_id: uuid.UUID, *, after_seconds: float) -> None:
    """Drop a finished generation once followers had time to read its end from memory."""
    asyncio.get_running_loop().call_later(after_seconds, _generations.pop, message_id, None)


async def generation_cancel(message_id: uuid.UUID) -> bool:
    """Ask whichever process runs this generation to stop it. True if this process does."""
    generation = _generations.get(message_id)
    if generation is not None and not generation.finished:
        generation.cancel(Message.Status.CANCELLED)
        return True
    if redis_enabled():
        with contextlib.suppress(RedisError):
            await redis_client().publish(CANCEL_CHANNEL, str(message_id))
    return False


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


async def _generations_stop(running: list["Generation"], deadline: float) -> None:
    from messaging.generation import SHUTDOWN_ERROR  # generation imports this module

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


async def _store_pending() -> None:
    for message_id, store in list(_store_later.items()):
        try:
            await store()
        except Exception:
            logger.warning("message %s still not stored", message_id, exc_info=True)
            return
        del _store_later[message_id]
        logger.info("message %s stored late", message_id)


# --- the database side -------------------------------------------------------------------------


def worker_heartbeat(*, worker_id: str) -> None:
    now = timezone.now()
    with service_role():  # the workers table is closed to users
        GenerationWorker.objects.update_or_create(
            id=worker_id, defaults={"heartbeat_at": now}, create_defaults={"started_at": now}
        )


def worker_is_alive(*, worker_id: str) -> bool:
    cutoff = timezone.now() - timedelta(seconds=settings.GENERATION_STALE_SECONDS)
    with service_role():  # the workers table is closed to users (a cancel asks in a request)
        return GenerationWorker.objects.filter(id=worker_id, heartbeat_at__gte=cutoff).exists()


def generations_sweep(*, stale_seconds: float) -> list[uuid.UUID]:
    """Finish the messages in progress on workers silent for ``stale_seconds`` (or on no
    known worker) as ``incomplete``; returns their ids."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_seconds)
    live = GenerationWorker.objects.filter(heartbeat_at__gte=cutoff).values("id")
    orphans = list(
        # Old enough that its worker must have beaten since it was created.
        Message.objects.filter(status=Message.Status.IN_PROGRESS, created_at__lt=cutoff)
        .exclude(worker_id__in=live)
        .values_list("id", flat=True)
    )
    if not orphans:
        return []
    with transaction.atomic():
        # Locked and conditional on the status: of several sweepers (and a late
        # turn_record), each message is finished by exactly one.
        swept = list(
            Message.objects.filter(id__in=orphans, status=Message.Status.IN_PROGRESS)
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)
        )
        Message.objects.filter(id__in=swept).update(
            status=Message.Status.INCOMPLETE,
            error=SWEPT_ERROR,
            usage_estimated=True,
            completed_at=now,
        )
    GenerationWorker.objects.filter(heartbeat_at__lt=now - timedelta(days=1)).delete()
    return swept


def _partial_answer(events: list[sse.SSEEvent]) -> tuple[str, str]:
    text: list[str] = []
    reasoning: list[str] = []
    for event in events:
        if event.type != "content_block_delta":
            continue
        delta = event.data()["delta"]
        if delta["type"] == "text_delta":
            text.append(delta["text"])
        elif delta["type"] == "thinking_delta":
            reasoning.append(delta["thinking"])
    return "".join(text), "".join(reasoning)


@sync_to_async(thread_sensitive=False)
def _record_swept(*, message_id: uuid.UUID, content: str | None, reasoning: str) -> None:
    from messaging.turns import turn_record_swept  # turns imports this module

    try:
        turn_record_swept(message_id=message_id, content=content, reasoning=reasoning)
    finally:
        connection.close()


@sync_to_async(thread_sensitive=False)
def _in_db_thread_heartbeat_and_sweep() -> list[uuid.UUID]:
    try:
        worker_heartbeat(worker_id=WORKER_ID)
        return generations_sweep(stale_seconds=settings.GENERATION_STALE_SECONDS)
    finally:
        connection.close()


async def sweep_once() -> list[uuid.UUID]:
    """Store what could not be stored before, beat, sweep, and give each swept message its
    partial answer and a logged ending."""
    await _store_pending()
    swept = await _in_db_thread_heartbeat_and_sweep()
    for message_id in swept:
        await _finish_swept(message_id)
    return swept


async def _finish_swept(message_id: uuid.UUID) -> None:
    events: list[sse.SSEEvent] = []
    if redis_enabled():  # without Redis the log died with the process that held it
        try:
            events = await log_events(message_id)
        except RedisError:
            logger.exception("could not read the event log of swept message %s", message_id)
    content, reasoning = _partial_answer(events) if events else (None, "")
    await _record_swept(message_id=message_id, content=content, reasoning=reasoning)
    if events and not events[-1].terminal:
        ending = sse.SSEEvent.build(events[-1].id + 1, sse.error(**_error_fields()))
        await append_events(message_id, [ending])


def _error_fields() -> dict[str, str]:
    return {"error_type": SWEPT_ERROR["type"], "message": SWEPT_ERROR["message"]}


# --- per-process services -------------------------------------------------------------------


def worker_ensure_running() -> None:
    """Start this process's heartbeat/sweeper and cancel listener, once per event loop."""
    loop = asyncio.get_running_loop()
    if loop in _services:
        return
    shutdown.drain_hook_register(generations_drain)
    tasks = [loop.create_task(_beat_forever())]
    if redis_enabled():
        tasks.append(loop.create_task(_listen_for_cancels()))
    _services[loop] = tasks


async def _beat_forever() -> None:
    while True:
        try:
            await sweep_once()
        except (OperationalError, InterfaceError) as exc:
            # PostgreSQL is down or restarting: one line per beat, not a traceback.
            logger.warning("generation heartbeat/sweep: database unreachable: %s", exc)
        except Exception:
            logger.exception("generation heartbeat/sweep failed")
        await asyncio.sleep(settings.GENERATION_HEARTBEAT_SECONDS)


async def _listen_for_cancels() -> None:
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
                        generation = _generations.get(uuid.UUID(message["data"].decode()))
                        if generation is not None and not generation.finished:
                            generation.cancel(Message.Status.CANCELLED)
        except RedisError as exc:
            # Cancels from other processes cannot reach this one until Redis is back.
            if not delay:
                logger.warning("cancel listener lost Redis (%s); reconnecting", exc)
            delay = min(delay * 2 or 0.5, 5.0)
            await asyncio.sleep(delay)
