"""Following a message's events from any server process: live from this process's memory,
from the Redis event log, or, once the log has expired, as a replay of the stored message.

A replay of the stored message also answers a follower whose log vanished under it (deleted
after it lost events to a Redis failure), one whose log will never end (its process died
after storing the answer, before logging its end), and a client that already has more events
than the log: its events did not all reach Redis before their process died, and the stored
answer (the sweeper's, from the log) is shorter than what it saw. A replay starts again at
event 1 with ``message_start``; the client replaces what it had."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.db import connection
from redis.exceptions import RedisError

from chatapi import daphne_writes
from conversations.blocks import text_blocks
from conversations.models import Message
from messaging import sse
from messaging.endings import LOG_LOST_ERROR
from messaging.eventlog import LOG_READ_BATCH, log_exists, log_tail, read_log, redis_enabled
from messaging.live import generation_get
from messaging.sweeper import worker_ensure_running

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.5
# How often a follower that waits on a log asks the database whether its answer has ended
# meanwhile (the log's writer died between storing the answer and logging its end).
_ABANDONED_CHECK_SECONDS = 5.0
_KEEPALIVE_SECONDS = 15.0
# An SSE comment: keeps proxies from closing an idle stream; clients ignore it.
_KEEPALIVE = b": keepalive\n\n"


@sync_to_async(thread_sensitive=False)
def _load(message_id: uuid.UUID) -> Message:
    try:
        return Message.objects.get(pk=message_id)
    finally:
        connection.close()


def stored_message_events(message: Message) -> list[sse.SSEEvent]:
    """A finished message as a complete, well-formed event sequence (ids from 1)."""
    error = message.error or {"type": "api_error", "message": "The answer is incomplete."}
    stop_reason = None
    if message.status == Message.Status.COMPLETE:
        stop_reason = message.stop_reason or sse.DEFAULT_STOP_REASON
    elif message.status == Message.Status.CANCELLED:
        stop_reason = sse.CANCELLED_STOP_REASON
    return sse.answer_replay(
        message_id=str(message.pk),
        model=message.model,
        input_tokens=message.input_tokens or 0,
        output_tokens=message.output_tokens or 0,
        # Rows stored without blocks (the sweeper's) replay their text.
        blocks=message.blocks or text_blocks(message.content, message.reasoning),
        stop_reason=stop_reason,
        stop_sequence=(message.stop_sequence or None)
        if message.status == Message.Status.COMPLETE
        else None,
        cached_input_tokens=message.cached_input_tokens,
        error_type=error["type"],
        error_message=error["message"],
    )


async def message_events(
    message: Message, *, after: int, to_client: bool = False
) -> AsyncIterator[bytes]:
    """The message's SSE bytes after event ``after``, live until its end.

    ``to_client``: the bytes are the response's as they are (the native routes); a
    generation running in this process then writes them to the connection itself under
    daphne (``Generation.push``), and this yields nothing of them."""
    # This process now waits on other processes' generations: it must sweep too, or a
    # generation whose process died would keep its followers waiting.
    worker_ensure_running()
    generation = generation_get(message.pk)
    if generation is not None:
        write = daphne_writes.body_writer() if to_client else None
        if write is not None:
            await generation.push(write, after)
            return
        async for chunk in generation.follow(after):
            yield chunk
        return
    if redis_enabled() and await _log_readable(message.pk):
        async for chunk in _follow_redis(message.pk, after=after):
            yield chunk
        return
    # No log: wait for the stored outcome (a sweeper finishes a dead process's message).
    async for chunk in _stored_replay(message):
        yield chunk


async def _stored_replay(message: Message) -> AsyncIterator[bytes]:
    """Keepalives while the message is in progress, then the stored message's events."""
    async for item in _until_final(message):
        if isinstance(item, Message):
            message = item
        else:
            yield item
    for event in stored_message_events(message):
        yield event.raw


async def _log_readable(message_id: uuid.UUID) -> bool:
    """Whether the message has a log in Redis; False when Redis fails (the stored message
    is then followed instead: the same answer, replayed once it is finished)."""
    try:
        return await log_exists(message_id)
    except RedisError as exc:
        logger.warning("event log of %s unreadable (%s); following storage", message_id, exc)
        return False


async def _until_final(message: Message) -> AsyncIterator[bytes | Message]:
    """Keepalives while the message is in progress, then the message as finished."""
    idle = 0.0
    while message.status == Message.Status.IN_PROGRESS:
        await asyncio.sleep(_POLL_SECONDS)
        idle += _POLL_SECONDS
        if idle >= _KEEPALIVE_SECONDS:
            idle = 0.0
            yield _KEEPALIVE
        message = await _load(message.pk)
    yield message


async def _log_lost(message_id: uuid.UUID, position: int) -> AsyncIterator[bytes]:
    """The rest of the log is lost to this follower: end cleanly once the answer is stored,
    pointing at the stored copy (a resume replays it)."""
    async for item in _until_final(await _load(message_id)):
        if not isinstance(item, Message):
            yield item
    yield sse.SSEEvent.build(
        position + 1,
        sse.error(error_type=LOG_LOST_ERROR["type"], message=LOG_LOST_ERROR["message"]),
    ).raw


async def _finished(message_id: uuid.UUID) -> bool:
    return (await _load(message_id)).status != Message.Status.IN_PROGRESS


async def _follow_redis(message_id: uuid.UUID, *, after: int) -> AsyncIterator[bytes]:
    """Ends at a terminal event, or at once when the client already has it."""
    position = after
    loop = asyncio.get_running_loop()
    check_at = loop.time()
    caught_up = False  # read at once until a read returns less than there could be
    while True:
        tail = None
        abandoned = False
        try:
            events = await read_log(message_id, after=position, wait=caught_up)
            caught_up = len(events) < LOG_READ_BATCH
            if not events:  # nothing new yet, nothing more, or no log
                tail = await log_tail(message_id)
                if tail is not None and not tail.terminal:
                    if loop.time() >= check_at:
                        check_at = loop.time() + _ABANDONED_CHECK_SECONDS
                        abandoned = await _finished(message_id)
                    if not abandoned:
                        continue
        except RedisError as exc:
            logger.warning("event log of %s lost while followed (%s)", message_id, exc)
            async for chunk in _log_lost(message_id, position):
                yield chunk
            return
        if abandoned or (not events and (tail is None or tail.id < position)):
            # The log was abandoned unended, vanished, or holds less than the client has:
            # the stored answer.
            async for chunk in _stored_replay(await _load(message_id)):
                yield chunk
            return
        if not events:
            return
        for event in events:
            yield event.raw
            position = event.id
            if event.terminal:
                return


async def message_wait_final(message: Message) -> Message:
    """The message once its generation has ended, wherever it runs."""
    worker_ensure_running()
    generation = generation_get(message.pk)
    if generation is not None:
        await generation.wait()
    while message.status == Message.Status.IN_PROGRESS:
        await asyncio.sleep(_POLL_SECONDS / 5)
        message = await _load(message.pk)
    return await _load(message.pk) if generation is not None else message
