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
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from chatapi.redis_breaker import CONNECT_TIMEOUT_SECONDS, RETRIED_ERRORS, Breaker
from messaging.sse import SSEEvent

logger = logging.getLogger(__name__)

_KEY_PREFIX = "chatapi:gen:"
LOG_READ_BATCH = 512
# How long after the TTL an abandoned log (its process died before closing it) still lives:
# the longest an answer may take.
_ABANDONED_LOG_SECONDS = 86400
_READ_BLOCK_MS = 1000  # a follower's longest wait for new events before it checks the log
# The shared read's BLOCK (``_LogReader``): a follower that starts waiting while it blocks is
# read from at the next one, this long later at most.
_SHARED_BLOCK_MS = 100
# Connections per process. Nothing holds one longer than a command: the followers' waits share
# one read. A command that finds them all busy waits for one (up to the socket timeout).
_POOL_SIZE = 100
# Above the XREAD wait: a hung Redis fails a command after this long instead of never (the
# cancel listener's pub/sub reads are not bounded by it: they wait for messages).
_SOCKET_TIMEOUT_SECONDS = _READ_BLOCK_MS / 1000 + 2.0
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis]
_clients = weakref.WeakKeyDictionary()


def redis_enabled() -> bool:
    return bool(settings.REDIS_URL)


def redis_client() -> Redis:
    """One client (with its connection pool) per event loop, i.e. per server process."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        pool = BlockingConnectionPool.from_url(
            str(settings.REDIS_URL),
            max_connections=_POOL_SIZE,
            timeout=_SOCKET_TIMEOUT_SECONDS,
            decode_responses=False,
            socket_timeout=_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1, supported_errors=RETRIED_ERRORS),
        )
        client = Redis(connection_pool=pool)
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
    events of many streams, and no generation ever waits on Redis. While Redis fails, the
    events are dropped (resumes then replay stored answers) and Redis is tried again every
    few seconds, not on every event.

    A log is never left with a hole: only the first event creates it (the others are written
    with NOMKSTREAM, so a log that Redis lost, restarting empty, is not begun again from the
    middle), and a log that lost events is deleted and written no more. Followers then find
    no log and replay the stored answer."""

    def __init__(self) -> None:
        self._pending: dict[str, list[SSEEvent]] = {}
        self._closing: set[str] = set()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._breaker = Breaker("generation event logs")
        self._ttl = settings.GENERATION_EVENT_LOG_TTL_SECONDS
        # Logs that lost events (dropped, or Redis lost the log): deleted, then skipped; by
        # key, whether the delete is done. Forgotten once deleted and their generation ended.
        self._broken: dict[str, bool] = {}
        self._ended: set[str] = set()
        self._task = asyncio.create_task(self._run())

    def push(self, key: str, event: SSEEvent) -> None:
        self._pending.setdefault(key, []).append(event)
        self._idle.clear()
        self._wakeup.set()

    def close(self, key: str) -> None:
        """Let the log expire after the TTL, once everything pushed for it is written."""
        self._closing.add(key)
        self._idle.clear()
        self._wakeup.set()

    async def idle(self) -> None:
        """Returns once everything pushed and closed so far is written (or dropped)."""
        await self._idle.wait()

    async def _run(self) -> None:
        client = redis_client()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            pending, self._pending = self._pending, {}
            closing, self._closing = self._closing, set()
            if self._breaker.allows():
                await self._write(client, pending, closing)
            else:
                self._lost(pending)
            self._ended |= closing & self._broken.keys()
            for key in [k for k in self._ended if self._broken[k]]:
                del self._broken[key]
                self._ended.discard(key)
            if not self._pending and not self._closing:
                self._idle.set()

    def _lost(self, pending: dict[str, list[SSEEvent]]) -> None:
        for key in pending:
            self._broken.setdefault(key, False)

    async def _write(
        self, client: Redis, pending: dict[str, list[SSEEvent]], closing: set[str]
    ) -> None:
        added: dict[int, str] = {}  # the key of each XADD, by its place in the pipeline
        deleting = [key for key, deleted in self._broken.items() if not deleted]
        try:
            async with client.pipeline(transaction=False) as pipe:
                for key in deleting:
                    pipe.delete(key)
                for key, events in pending.items():
                    if key in self._broken:
                        continue
                    for event in events:
                        added[len(pipe)] = key
                        pipe.xadd(
                            key,
                            {"t": event.type, "b": event.raw},
                            id=f"{event.id}-0",
                            nomkstream=event.id != 1,
                        )
                    if events[0].id == 1:
                        # A log whose process dies before closing it expires anyway.
                        pipe.expire(key, self._ttl + _ABANDONED_LOG_SECONDS)
                for key in closing - self._broken.keys():
                    pipe.expire(key, self._ttl)
                results = await pipe.execute(raise_on_error=False)
        except RedisError as exc:
            # The generations go on and are stored; only cross-process resume suffers.
            self._breaker.failed(exc)
            self._lost(pending)
            return
        except Exception:  # this task must outlive any failure
            logger.exception("event log write failed (%d logs)", len(pending))
            self._lost(pending)
            return
        self._breaker.succeeded()
        for key in deleting:
            self._broken[key] = True
        # None: the log was not there to add to (Redis lost it).
        self._lost({key: [] for place, key in added.items() if results[place] is None})
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            logger.error("%d event log writes failed: %s", len(failed), failed[0])


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

    def close(self) -> None:
        """Let the stream expire after the TTL once what is left is written. Nothing waits for
        it (a hung Redis delays no answer); a process shutting down waits in ``logs_written``."""
        self._flusher.close(self.key)


async def logs_written() -> None:
    """Returns once this process's event logs are written (or dropped, Redis failing): at
    shutdown, so that other processes can replay the last answers from them."""
    flusher = _flushers.get(asyncio.get_running_loop())
    if flusher is not None:
        await flusher.idle()


class _Wait:
    __slots__ = ("after", "future", "key", "until")

    def __init__(self, key: str, after: int, future: "asyncio.Future[list[SSEEvent]]") -> None:
        self.key = key
        self.after = after
        self.future = future
        self.until = future.get_loop().time() + _READ_BLOCK_MS / 1000


class _LogReader:
    """Waits for the next events of every log followed in this process with one blocking
    XREAD over all of them, so a follower holds no Redis connection while it waits. (With a
    blocking XREAD each, a process following 100 answers of a killed one took every
    connection of its pool, and the sweeper's reads failed with "Too many connections".)

    A wait ends with the events after its position as soon as any arrive, or empty after
    ``_READ_BLOCK_MS``; every wait fails with the error when the read fails."""

    def __init__(self) -> None:
        self._waits: list[_Wait] = []  # to join the next read
        self._reading: list[_Wait] = []  # in the read under way
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def waiting(self) -> int:
        return sum(not wait.future.done() for wait in (*self._reading, *self._waits))

    def wait(self, key: str, after: int) -> "asyncio.Future[list[SSEEvent]]":
        future: asyncio.Future[list[SSEEvent]] = asyncio.get_running_loop().create_future()
        self._waits.append(_Wait(key, after, future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._waits:
                    await self._read()
        except Exception:
            logger.exception("the event log reader failed")  # the next wait starts another
        finally:
            # Cancelled with its loop: nobody is left waiting on a read that will not come.
            _readers.pop(asyncio.get_running_loop(), None)
            self._fail([*self._reading, *self._waits], RedisError("the event log reader stopped"))

    async def _read(self) -> None:
        waits, self._waits = [w for w in self._waits if not w.future.done()], []
        if not waits:
            return
        self._reading = waits
        positions: dict[str, int] = {}
        for wait in waits:
            positions[wait.key] = min(positions.get(wait.key, wait.after), wait.after)
        try:
            result: Any = await redis_client().xread(
                {key: f"{after}-0" for key, after in positions.items()},
                count=LOG_READ_BATCH,
                block=_SHARED_BLOCK_MS,
            )
        except RedisError as exc:  # every follower is told (and ends as its log was lost)
            self._fail(waits, exc)
            return
        finally:
            self._reading = []
        arrived = {
            key.decode(): [_event_from(entry_id, fields) for entry_id, fields in entries]
            for key, entries in result or ()
        }
        now = asyncio.get_running_loop().time()
        still: list[_Wait] = []
        for wait in waits:
            if wait.future.done():  # its follower went away meanwhile
                continue
            events = [event for event in arrived.get(wait.key, ()) if event.id > wait.after]
            if events or now >= wait.until:
                wait.future.set_result(events)
            else:
                still.append(wait)
        # The waits that began during the read join the next one.
        self._waits = still + self._waits

    @staticmethod
    def _fail(waits: list[_Wait], error: RedisError) -> None:
        for wait in waits:
            if not wait.future.done():
                wait.future.set_exception(error)


_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LogReader]
_readers = weakref.WeakKeyDictionary()


async def read_log(message_id: uuid.UUID, *, after: int, wait: bool) -> list[SSEEvent]:
    """The logged events with ids above ``after`` (a batch at most; none when there is no log).

    ``wait``: the follower has read all there was, so this waits up to ``_READ_BLOCK_MS`` for
    more, in this process's one shared read (``_LogReader``). Otherwise it reads at once what
    is there (a follower catching up)."""
    key = log_key(message_id)
    if not wait:
        result: Any = await redis_client().xread({key: f"{after}-0"}, count=LOG_READ_BATCH)
        if not result:
            return []
        return [_event_from(entry_id, fields) for entry_id, fields in result[0][1]]
    loop = asyncio.get_running_loop()
    reader = _readers.get(loop)
    if reader is None:
        reader = _readers[loop] = _LogReader()
    return await reader.wait(key, after)


async def log_exists(message_id: uuid.UUID) -> bool:
    return bool(await redis_client().exists(log_key(message_id)))


async def log_tail(message_id: uuid.UUID) -> SSEEvent | None:
    """The log's last event (None: no log)."""
    entries: Any = await redis_client().xrevrange(log_key(message_id), count=1)
    return _event_from(*entries[0]) if entries else None


async def log_events(message_id: uuid.UUID) -> list[SSEEvent]:
    """Everything logged for a message so far (the sweeper rebuilds partial answers)."""
    client = redis_client()
    entries: Any = await client.xrange(log_key(message_id))
    return [_event_from(entry_id, fields) for entry_id, fields in entries]


async def log_delete(message_id: uuid.UUID) -> None:
    """Drop a message's log (the sweeper's, once the stored answer is the only true one)."""
    with contextlib.suppress(RedisError):
        await redis_client().delete(log_key(message_id))
