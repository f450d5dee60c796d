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


class _LogFlusher:
    """Writes the events of every generation of this process (event loop): whatever piled up
    since the last write goes out in one pipeline, so under load one round trip carries the
    events of many streams, and no generation ever waits on Redis."""

    def __init__(self) -> None:
        self._pending: dict[str, list[SSEEvent]] = {}
        self._closing: dict[str, asyncio.Future[None]] = {}
        self._wakeup = asyncio.Event()
        self._failing = False  # one warning per outage, not one per write
        self._ttl = settings.GENERATION_EVENT_LOG_TTL_SECONDS
        self._task = asyncio.create_task(self._run())

    def push(self, key: str, event: SSEEvent) -> None:
        self._pending.setdefault(key, []).append(event)
        self._wakeup.set()

    def close(self, key: str) -> "asyncio.Future[None]":
        """Resolved once everything pushed for ``key`` is written and its expiry is set."""
        done = self._closing.get(key)
        if done is None:
            done = self._closing[key] = asyncio.get_running_loop().create_future()
            self._wakeup.set()
        return done

    async def _run(self) -> None:
        client = redis_client()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            pending, self._pending = self._pending, {}
            closing, self._closing = self._closing, {}
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for key, events in pending.items():
                        for event in events:
                            pipe.xadd(key, {"t": event.type, "b": event.raw}, id=f"{event.id}-0")
                    for key in closing:
                        pipe.expire(key, self._ttl)
                    results = await pipe.execute(raise_on_error=False)
                failed = [r for r in results if isinstance(r, Exception)]
                if failed:
                    logger.error("%d event log writes failed: %s", len(failed), failed[0])
                if self._failing:
                    logger.warning("event log writes to Redis work again")
                    self._failing = False
            except RedisError as exc:
                # The generations go on and are stored; only cross-process resume suffers.
                if not self._failing:
                    logger.warning("event log writes to Redis fail: %s", exc)
                self._failing = True
            except Exception:  # this task must outlive any failure
                logger.exception("event log write failed (%d logs)", len(pending))
            for done in closing.values():
                if not done.done():
                    done.set_result(None)


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LogFlusher]
_flushers = weakref.WeakKeyDictionary()


class RedisLogWriter:
    """Appends one generation's events to its stream, in order, through this process's
    flusher."""

    def __init__(self, message_id: uuid.UUID) -> None:
        self.key = log_key(message_id)
        loop = asyncio.get_running_loop()
        flusher = _flushers.get(loop)
        if flusher is None:
            flusher = _flushers[loop] = _LogFlusher()
        self._flusher = flusher

    def push(self, event: SSEEvent) -> None:
        self._flusher.push(self.key, event)

    async def close(self) -> None:
        """Write what is left, then let the stream expire after the TTL."""
        await asyncio.shield(self._flusher.close(self.key))


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
