"""This process's heartbeat and the sweeper that finishes a dead process's answers.

Every server process registers as a ``GenerationWorker`` when it starts (``chatapi.asgi``) and
refreshes its ``heartbeat_at`` every ``GENERATION_HEARTBEAT_SECONDS``; each in-progress message
records its worker (``messaging.process``). A message whose worker has been silent for
``GENERATION_STALE_SECONDS`` belongs to a dead process: the sweeper (run by every live
process's heartbeat whatever it is doing, and by ``manage.py sweep_generations``) stores it
as ``incomplete`` with the partial answer from the event log, and deletes its log: followers
replay the stored answer. A send that meets such a message sweeps it itself
(``generations_sweep_stale_in``).
"""

import asyncio
import logging
import uuid
import weakref
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.rls import service_role
from chatapi import shutdown
from conversations.models import Message
from messaging import sse
from messaging.eventlog import log_delete, log_events, redis_enabled
from messaging.live import cancels_listen, generations_drain, stores_retry
from messaging.models import GenerationWorker
from messaging.process import WORKER_ID
from messaging.turns import turn_record_swept

logger = logging.getLogger(__name__)

_SWEEP_CONCURRENCY = 8
_services: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Task[None]]]
_services = weakref.WeakKeyDictionary()


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


def generations_orphaned(
    *, stale_seconds: float, conversation_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """The messages in progress on workers silent for ``stale_seconds`` (or on no known
    worker), in one conversation or all: the sweeper's to finish (``turn_record_swept``)."""
    cutoff = timezone.now() - timedelta(seconds=stale_seconds)
    live = GenerationWorker.objects.filter(heartbeat_at__gte=cutoff).values("id")
    in_progress = Message.objects.filter(status=Message.Status.IN_PROGRESS)
    if conversation_id is not None:
        in_progress = in_progress.filter(conversation_id=conversation_id)
    return list(
        # Old enough that its worker must have beaten since it was created.
        in_progress.filter(created_at__lt=cutoff)
        .exclude(worker_id__in=live)
        .values_list("id", flat=True)
    )


def generations_sweep_stale_in(*, conversation_id: uuid.UUID) -> bool:
    """Finish the conversation's answer in progress as the sweeper would if its process has
    been silent for ``GENERATION_STALE_SECONDS``: a send that meets it (``message_send``) is
    then refused no longer than that, not until some process's next heartbeat. True if
    there was one.

    Synchronous, for the send's thread; only the event log is read and deleted on the event
    loop (``async_to_sync``), which touches no database."""
    with service_role():  # the workers table is closed to users
        orphans = generations_orphaned(
            stale_seconds=settings.GENERATION_STALE_SECONDS, conversation_id=conversation_id
        )
    swept = False
    for message_id in orphans:
        events = async_to_sync(_swept_log_events)(message_id)
        content, reasoning = sse.partial_answer(events) if events else (None, "")
        if turn_record_swept(message_id=message_id, content=content, reasoning=reasoning):
            async_to_sync(_swept_log_drop)(message_id)
            swept = True
    return swept


@sync_to_async(thread_sensitive=False)
def _record_swept(*, message_id: uuid.UUID, content: str | None, reasoning: str) -> bool:
    try:
        return turn_record_swept(message_id=message_id, content=content, reasoning=reasoning)
    finally:
        connection.close()


@sync_to_async(thread_sensitive=False)
def _in_db_thread_heartbeat_and_orphans() -> list[uuid.UUID]:
    try:
        worker_heartbeat(worker_id=WORKER_ID)
        with service_role():
            GenerationWorker.objects.filter(
                heartbeat_at__lt=timezone.now() - timedelta(days=1)
            ).delete()
        return generations_orphaned(stale_seconds=settings.GENERATION_STALE_SECONDS)
    finally:
        connection.close()


async def sweep_once() -> list[uuid.UUID]:
    """Store what could not be stored before, beat, and finish each orphaned message with
    its partial answer, deleting its log; returns the ids this call finished."""
    await stores_retry()
    orphans = await _in_db_thread_heartbeat_and_orphans()
    # A few at a time: one by one, the hundred answers of a killed process took 45 s under
    # load (make chaos), far past the stale period; all at once would empty the pool.
    gate = asyncio.Semaphore(_SWEEP_CONCURRENCY)

    async def finish(message_id: uuid.UUID) -> bool:
        async with gate:
            events = await _swept_log_events(message_id)
            content, reasoning = sse.partial_answer(events) if events else (None, "")
            # False: another sweeper, or the generation itself, finished it meanwhile.
            if not await _record_swept(message_id=message_id, content=content, reasoning=reasoning):
                return False
            await _swept_log_drop(message_id)
            return True

    finished = await asyncio.gather(*(finish(message_id) for message_id in orphans))
    return [message_id for message_id, done in zip(orphans, finished, strict=True) if done]


async def _swept_log_events(message_id: uuid.UUID) -> list[sse.SSEEvent]:
    """What a swept message's event log holds (nothing without Redis: the log died with the
    process that held it)."""
    if not redis_enabled():
        return []
    try:
        return await log_events(message_id)
    except RedisError:
        logger.exception("could not read the event log of swept message %s", message_id)
        return []


async def _swept_log_drop(message_id: uuid.UUID) -> None:
    """Delete a swept message's log: followers then replay the stored answer, from event 1.
    The log cannot be ended with an event of its own: the dead process may have sent its
    clients events that never reached the log, so any id given to an ending may already
    mean another event to them."""
    if redis_enabled():
        await log_delete(message_id)


# --- per-process services -------------------------------------------------------------------


def worker_ensure_running() -> None:
    """Start this process's heartbeat/sweeper and cancel listener, once per event loop: at
    server start-up (``chatapi.asgi``), and again wherever generations run or are followed,
    for event loops that started without it (the tests' in-process ASGI driver)."""
    loop = asyncio.get_running_loop()
    if loop in _services:
        return
    shutdown.drain_hook_register(generations_drain)
    tasks = [loop.create_task(_beat_forever())]
    if redis_enabled():
        tasks.append(loop.create_task(cancels_listen()))
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
