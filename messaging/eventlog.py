"""Where a generation's events are kept so that any server process can replay and follow
them: Redis Streams when ``REDIS_URL`` is set, else nothing beyond the generating process's
own memory (``Generation.events``).

One stream per assistant message, key ``chatapi:gen:<message id>``. Entry ids are the SSE
event ids (``<n>-0``), so "the events after Last-Event-ID n" is ``XREAD ... <n>-0``, and each
entry keeps the event's exact wire bytes: a resumed stream is byte-for-byte the original.
https://redis.io/docs/latest/develop/data-types/streams/
"""

import asyncio
import contextlib
import logging
import uuid
import weakref
from typing import Any

from django.conf import settings
from redis.asyncio import Redis
from redis.exceptions import RedisError

from messaging.sse import SSEEvent

logger = logging.getLogger(__name__)

_KEY_PREFIX = "chatapi:gen:"
_READ_BATCH = 512
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis]
_clients = weakref.WeakKeyDictionary()


def redis_enabled() -> bool:
    return bool(settings.REDIS_URL)


def redis_client() -> Redis:
    """One client (with its connection pool) per event loop, i.e. per server process."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = Redis.from_url(str(settings.REDIS_URL), decode_responses=False)
        _clients[loop] = client
    return client


def log_key(message_id: uuid.UUID | str) -> str:
    return f"{_KEY_PREFIX}{message_id}"


def _event_from(entry_id: Any, fields: Any) -> SSEEvent:
    """An event from a stream entry (redis-py's reply types are loose: bytes here)."""
    return SSEEvent(
        id=int(entry_id.split(b"-", 1)[0]), type=fields[b"t"].decode(), raw=fields[b"b"]
    )


class RedisLogWriter:
    """Appends a generation's events to its stream in order, in the background: the
    generation never waits on Redis, and events that pile up go out in one pipeline."""

    def __init__(self, message_id: uuid.UUID) -> None:
        self.key = log_key(message_id)
        self._pending: list[SSEEvent] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._failed = False
        self._ttl = settings.GENERATION_EVENT_LOG_TTL_SECONDS
        self._task = asyncio.create_task(self._run())

    def push(self, event: SSEEvent) -> None:
        self._pending.append(event)
        self._wakeup.set()

    async def close(self) -> None:
        """Write what is left, then let the stream expire after the TTL."""
        self._closing = True
        self._wakeup.set()
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        client = redis_client()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            try:
                if batch:
                    async with client.pipeline(transaction=False) as pipe:
                        for event in batch:
                            pipe.xadd(
                                self.key, {"t": event.type, "b": event.raw}, id=f"{event.id}-0"
                            )
                        if self._closing and not self._pending:
                            pipe.expire(self.key, self._ttl)
                        await pipe.execute()
                elif self._closing:
                    await client.expire(self.key, self._ttl)
            except RedisError as exc:
                # The generation goes on and is stored; only cross-process resume suffers.
                # Once per log: while Redis is down every write fails.
                if not self._failed:
                    logger.warning("event log write to %s failed: %s", self.key, exc)
                self._failed = True
            if self._closing and not self._pending:
                return


async def read_log(message_id: uuid.UUID, *, after: int, block_ms: int) -> list[SSEEvent] | None:
    """The logged events with ids above ``after``, waiting up to ``block_ms`` for one to
    arrive; ``None`` when there is no log for this message (never written, or expired)."""
    client = redis_client()
    key = log_key(message_id)
    result: Any = await client.xread({key: f"{after}-0"}, count=_READ_BATCH, block=block_ms)
    if result:
        return [_event_from(entry_id, fields) for entry_id, fields in result[0][1]]
    if not await client.exists(key):
        return None
    return []


async def log_exists(message_id: uuid.UUID) -> bool:
    return bool(await redis_client().exists(log_key(message_id)))


async def log_tail_is_terminal(message_id: uuid.UUID) -> bool:
    """Whether the log's last event ends the stream."""
    entries: Any = await redis_client().xrevrange(log_key(message_id), count=1)
    return bool(entries) and _event_from(*entries[0]).terminal


async def log_events(message_id: uuid.UUID) -> list[SSEEvent]:
    """Everything logged for a message so far (the sweeper rebuilds partial answers)."""
    client = redis_client()
    entries: Any = await client.xrange(log_key(message_id))
    return [_event_from(entry_id, fields) for entry_id, fields in entries]


async def append_events(message_id: uuid.UUID, events: list[SSEEvent]) -> None:
    """Append events to a log written by a process that is gone (the sweeper's ending)."""
    client = redis_client()
    key = log_key(message_id)
    with contextlib.suppress(RedisError):
        async with client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(key, {"t": event.type, "b": event.raw}, id=f"{event.id}-0")
            pipe.expire(key, settings.GENERATION_EVENT_LOG_TTL_SECONDS)
            await pipe.execute()
