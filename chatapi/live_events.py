"""The live events' transport: what happened to a user's conversations, published to every
WebSocket that user has open (``GET /ws/v1/events``), on whichever server process.

Each user's sockets join the channel layer group ``user.<id>``. With ``REDIS_URL`` set the
layer is Redis pub/sub (``channels_redis``), so an event published by one process reaches
the sockets of every process; without it, the in-memory layer reaches this process's only.

Publishing never fails or slows the request that caused the event: ``event_publish`` waits
for the transaction to commit, then hands the event to the server's event loop, where it is
sent in a task of its own with a bounded wait. An event that cannot be sent (Redis down or
hung, too many sends waiting) is dropped, logged and counted; while Redis is down, sends skip
it for a few seconds at a time (chatapi.redis_breaker). A process that serves no requests
(a management command, a shell) publishes nothing.

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
# Sends waiting at once in this process; past that, new events are dropped (a hung Redis
# must not pile up tasks).
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
    pending: set[asyncio.Task[None]] = set()
    overflowing = False
    sockets: dict[object, Closer] = {}
    sockets_closed: asyncio.Event | None = None


_state = _State()
_breaker = Breaker("live events")


def user_group(user_id: uuid.UUID | str) -> str:
    """The channel layer group of a user's open sockets."""
    return f"user.{user_id}"


def loop_capture() -> None:
    """Remember the server's event loop (a start-up hook, chatapi.startup): events published
    from the thread pool are sent on it."""
    _state.loop = asyncio.get_running_loop()


def event_publish(*, user_id: uuid.UUID | str, event: str, data: dict[str, Any]) -> None:
    """Tell ``user_id``'s open sockets that ``event`` happened, once the current transaction
    commits (at once outside one, and from async code, which holds none open). Never raises
    for the transport, never waits on it."""
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
    if len(_state.pending) >= MAX_PENDING_SENDS:
        metrics.LIVE_EVENTS.labels(outcome="dropped").inc()
        if not _state.overflowing:  # one warning per overflow, not one per event
            _state.overflowing = True
            logger.warning("live events dropped: %d sends already waiting", MAX_PENDING_SENDS)
        return
    _state.overflowing = False
    task = asyncio.get_running_loop().create_task(_send(group, frame))
    _state.pending.add(task)
    task.add_done_callback(_state.pending.discard)


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
