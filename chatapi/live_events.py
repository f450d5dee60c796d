"""The live events' transport: what happened to a user's conversations, published to every
WebSocket that user has open (``GET /ws/v1/events``), on whichever server process.

Each user's sockets join the channel layer group ``user.<id>``. With ``REDIS_URL`` set the
layer is Redis pub/sub (``channels_redis``), so an event published by one process reaches
the sockets of every process; without it, the in-memory layer reaches this process's only,
and an event is not even built while this process has no socket open (nobody could get it).

Publishing never fails or slows the request that caused the event: ``event_publish`` waits
for the transaction to commit, then hands the event to the server's event loop, where the
process's one publisher task sends the events in order, each with a bounded wait. An event
that cannot be sent (Redis down or hung, too many waiting) is dropped, logged and counted;
while Redis is down, sends skip it for a few seconds at a time (chatapi.redis_breaker). A
process that serves no requests (a management command, a shell) publishes nothing.

The open sockets register here, so that a draining process (chatapi.shutdown) closes them
with 1012 (service restart) and their clients reconnect to another process.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chatapi import metrics
from chatapi.redis_breaker import Breaker
from chatapi.shutdown import drain_hook_register

logger = logging.getLogger(__name__)

# The channel layer message a socket's consumer receives (handled by its ``live_event``).
MESSAGE_TYPE = "live.event"
# How long one send may wait on the channel layer before it is given up.
SEND_TIMEOUT_SECONDS = 1.0
# Events waiting to be sent in this process; past that, new ones are dropped (a hung Redis
# must not pile them up).
MAX_PENDING_SENDS = 1000
# Close code of every socket of a process that shuts down: reconnect (to another process).
CLOSE_SERVICE_RESTART = 1012
# How long the drain waits for the closed sockets' clients to see the close.
_CLOSE_WAIT_SECONDS = 2.0

# What a send can fail with: Redis refusing, dropping or not answering in time; the
# in-memory layer's full channel.
_TRANSPORT_ERRORS = (redis.RedisError, OSError, TimeoutError, ChannelFull)

Closer = Callable[[int], Awaitable[None]]


class _State:
    loop: asyncio.AbstractEventLoop | None = None
    outbox: asyncio.Queue[tuple[str, str]] | None = None
    publisher: asyncio.Task[None] | None = None
    overflowing = False
    sockets: dict[object, Closer] = {}
    sockets_closed: asyncio.Event | None = None


_state = _State()
_IN_MEMORY = "channels.layers.InMemoryChannelLayer"
_breaker = Breaker("live events")


def user_group(user_id: uuid.UUID | str) -> str:
    """The channel layer group of a user's open sockets."""
    return f"user.{user_id}"


def loop_capture() -> None:
    """Remember the server's event loop (a start-up hook, chatapi.startup): events published
    from the thread pool are sent on it."""
    _state.loop = asyncio.get_running_loop()


def events_wanted() -> bool:
    """False when no socket can receive an event published now: the layer is this process's
    memory (no REDIS_URL) and no socket is open in this process; callers skip building the
    event. (A socket opened later would not get it anyway: layers deliver to the sockets
    present.)"""
    return bool(_state.sockets) or settings.CHANNEL_LAYERS["default"]["BACKEND"] != _IN_MEMORY


def event_publish(*, user_id: uuid.UUID | str, event: str, data: dict[str, Any]) -> None:
    """Tell ``user_id``'s open sockets that ``event`` happened, once the current transaction
    commits (at once outside one, and from async code, which holds none open). Never raises
    for the transport, never waits on it."""
    if not events_wanted():
        return
    frame = orjson.dumps(
        {
            "type": event,
            "id": uuid.uuid4().hex,
            "created_at": timezone.now().isoformat(),
            "data": data,
        }
    ).decode()
    group = user_group(user_id)
    if _loop_running_here():
        _spawn(group, frame)  # async code holds no transaction open
    else:
        transaction.on_commit(lambda: _hand_over(group, frame), robust=True)


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _hand_over(group: str, frame: str) -> None:
    """Start the send on the server's loop: from its own thread or from the thread pool."""
    if _loop_running_here():
        _spawn(group, frame)
    elif _state.loop is not None and _state.loop.is_running():
        _state.loop.call_soon_threadsafe(_spawn, group, frame)
    else:
        metrics.LIVE_EVENTS.labels(outcome="skipped").inc()


def _spawn(group: str, frame: str) -> None:
    """Queue the event for this loop's publisher (started on first use)."""
    loop = asyncio.get_running_loop()
    if _state.outbox is None or _state.publisher is None or _state.publisher.get_loop() is not loop:
        _state.outbox = asyncio.Queue(maxsize=MAX_PENDING_SENDS)
        _state.publisher = loop.create_task(_publish_forever(_state.outbox))
    try:
        _state.outbox.put_nowait((group, frame))
    except asyncio.QueueFull:
        metrics.LIVE_EVENTS.labels(outcome="dropped").inc()
        if not _state.overflowing:  # one warning per overflow, not one per event
            _state.overflowing = True
            logger.warning("live events dropped: %d sends already waiting", MAX_PENDING_SENDS)
        return
    _state.overflowing = False


async def _publish_forever(outbox: asyncio.Queue[tuple[str, str]]) -> None:
    """The process's one publisher: events leave in the order they were caused, one send
    in flight at a time (the pub/sub layer sends on one connection anyway), so a busy loop
    delays them without piling up sends that time out together."""
    while True:
        group, frame = await outbox.get()
        await _send(group, frame)


async def _send(group: str, frame: str) -> None:
    if not _breaker.allows():
        metrics.LIVE_EVENTS.labels(outcome="dropped").inc()
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            await layer.group_send(group, {"type": MESSAGE_TYPE, "text": frame})
    except _TRANSPORT_ERRORS as exc:  # the event is lost, never the change it tells of
        _breaker.failed(exc)
        metrics.LIVE_EVENTS.labels(outcome="failed").inc()
        return
    _breaker.succeeded()
    metrics.LIVE_EVENTS.labels(outcome="sent").inc()


# --- open sockets ----------------------------------------------------------------------------


def socket_register(socket: object, close: Closer) -> None:
    """Track an open socket; ``close(code)`` closes it when the process drains."""
    _state.sockets[socket] = close
    metrics.LIVE_CONNECTIONS.set(len(_state.sockets))


def socket_unregister(socket: object) -> None:
    _state.sockets.pop(socket, None)
    metrics.LIVE_CONNECTIONS.set(len(_state.sockets))
    if not _state.sockets and _state.sockets_closed is not None:
        _state.sockets_closed.set()


async def _sockets_close(deadline: float) -> None:
    """The drain's hook: close every open socket with 1012 at once (their clients reconnect
    to a process that stays; the events of answers still finishing here reach them there
    through Redis), and wait a moment for the closes to be seen."""
    if not _state.sockets:
        return
    _state.sockets_closed = asyncio.Event()
    closes = list(_state.sockets.values())
    logger.warning("closing %d live event sockets", len(closes))
    await asyncio.gather(*(close(CLOSE_SERVICE_RESTART) for close in closes))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_state.sockets_closed.wait(), _CLOSE_WAIT_SECONDS)


drain_hook_register(_sockets_close)
