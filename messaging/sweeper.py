"""This process's heartbeat and the sweeper that finishes a dead process's answers.

Every process that generates answers registers as a ``GenerationWorker`` and refreshes its
``heartbeat_at`` every ``GENERATION_HEARTBEAT_SECONDS``; each in-progress message records its
worker (``messaging.process``). A message whose worker has been silent for
``GENERATION_STALE_SECONDS`` belongs to a dead process: the sweeper (run by every live
worker's heartbeat, and by ``manage.py sweep_generations``) stores it as ``incomplete`` with
the partial answer from the event log, and ends its log so followers stop waiting.
"""

import asyncio
import logging
import uuid
import weakref
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.rls import service_role
from chatapi import shutdown
from conversations.models import Message
from messaging import sse
from messaging.endings import SWEPT_ERROR
from messaging.eventlog import append_events, log_events, redis_enabled
from messaging.live import cancels_listen, generations_drain, stores_retry
from messaging.models import GenerationWorker
from messaging.process import WORKER_ID
from messaging.turns import turn_record_swept

logger = logging.getLogger(__name__)

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


@sync_to_async(thread_sensitive=False)
def _record_swept(*, message_id: uuid.UUID, content: str | None, reasoning: str) -> None:
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
    await stores_retry()
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
    content, reasoning = sse.partial_answer(events) if events else (None, "")
    await _record_swept(message_id=message_id, content=content, reasoning=reasoning)
    if events and not events[-1].terminal:
        ending = sse.SSEEvent.build(
            events[-1].id + 1,
            sse.error(error_type=SWEPT_ERROR["type"], message=SWEPT_ERROR["message"]),
        )
        await append_events(message_id, [ending])


# --- per-process services -------------------------------------------------------------------


def worker_ensure_running() -> None:
    """Start this process's heartbeat/sweeper and cancel listener, once per event loop."""
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
