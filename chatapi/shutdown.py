"""Graceful shutdown: on SIGTERM (or SIGINT) a server process stops taking requests, lets the
answers it is generating finish for up to ``SHUTDOWN_GRACE_SECONDS``, stores the rest as
``incomplete`` (their followers get an ``error`` event), lets open streams write their last
bytes, and only then hands the signal to the server (daphne, uvicorn), which exits.

A second signal skips the wait. The handlers are installed at the first request, from the
event loop's thread when it is the main thread: the server installs its own at start-up, and
ours chain to them. Meanwhile every new request gets a 503 with ``Connection: close`` and
``/api/v1/health`` fails, so a load balancer moves traffic to the other processes.
"""

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from chatapi.errors import error_body

logger = logging.getLogger(__name__)

# Waits given the loop time by which the grace period ends.
DrainHook = Callable[[float], Awaitable[None]]
SignalHandler = Callable[[int, FrameType | None], Any] | int | None

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How long open streams get to write their last events once every generation is stored.
_FLUSH_SECONDS = 5.0
DRAINING_MESSAGE = "This server process is shutting down; retry the request."


class _State:
    installed = False
    draining = False
    open_streams = 0
    hooks: list[DrainHook] = []
    streams_closed: asyncio.Event | None = None


_state = _State()


def draining() -> bool:
    return _state.draining


def drain_hook_register(hook: DrainHook) -> None:
    """Run ``hook(deadline)`` when the process drains; it returns once its work is done or
    stopped (``deadline`` is in the event loop's time)."""
    if hook not in _state.hooks:
        _state.hooks.append(hook)


async def stream_tracked(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A response body the drain waits for (so a stream's final events reach the client
    before the server closes its connections)."""
    _state.open_streams += 1
    try:
        async for chunk in body:
            yield chunk
    finally:
        _state.open_streams -= 1
        if _state.open_streams == 0 and _state.streams_closed is not None:
            _state.streams_closed.set()


def signal_handlers_install() -> None:
    """Put the drain in front of the server's SIGTERM/SIGINT handlers, once per process;
    called from the event loop (only its main thread may set signal handlers)."""
    if _state.installed or threading.current_thread() is not threading.main_thread():
        return
    _state.installed = True
    loop = asyncio.get_running_loop()
    for signum in _SIGNALS:
        previous = signal.getsignal(signum)

        def handler(
            signum: int,
            frame: FrameType | None,
            previous: SignalHandler = previous,
        ) -> None:
            if _state.draining:  # the second signal: no more waiting
                _chain(signum, previous)
                return
            _state.draining = True
            loop.call_soon_threadsafe(_start_drain, signum, previous)

        signal.signal(signum, handler)


def _start_drain(signum: int, previous: SignalHandler) -> None:
    asyncio.get_running_loop().create_task(_drain_then_chain(signum, previous))


async def _drain_then_chain(signum: int, previous: SignalHandler) -> None:
    try:
        await drain(settings.SHUTDOWN_GRACE_SECONDS)
    except Exception:
        logger.exception("graceful shutdown failed; stopping anyway")
    finally:
        _chain(signum, previous)


async def drain(grace_seconds: float) -> None:
    """Refuse new requests, give the registered work until ``grace_seconds`` from now, then
    let open streams flush."""
    _state.draining = True
    loop = asyncio.get_running_loop()
    logger.warning(
        "shutting down: draining for up to %.1fs (%d open streams)",
        grace_seconds,
        _state.open_streams,
    )
    deadline = loop.time() + grace_seconds
    await asyncio.gather(*(hook(deadline) for hook in _state.hooks))
    if _state.open_streams:
        _state.streams_closed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_state.streams_closed.wait(), _FLUSH_SECONDS)
    logger.warning("shutdown drain done (%d streams still open)", _state.open_streams)


def _chain(signum: int, previous: SignalHandler) -> None:
    """Hand the signal to the handler that was there before ours (the server's)."""
    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    if callable(previous):
        previous(signum, None)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signum)


def _draining_response(request: HttpRequest) -> HttpResponseBase:
    response = JsonResponse(
        error_body(
            status_code=503,
            message=DRAINING_MESSAGE,
            request_id=getattr(request, "request_id", None),
        ),
        status=503,
        json_dumps_params={"separators": (",", ":")},
    )
    response["Retry-After"] = "1"
    response["Connection"] = "close"
    return response


@sync_and_async_middleware
def draining_middleware(
    get_response: Callable[[HttpRequest], Any],
) -> Callable[[HttpRequest], Any]:
    """Installs the signal handlers on the first request, and answers 503 while draining."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            if not _state.installed and settings.SHUTDOWN_HANDLE_SIGNALS:
                signal_handlers_install()
            if _state.draining:
                return _draining_response(request)
            response: HttpResponseBase = await get_response(request)
            return response

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        if _state.draining:
            return _draining_response(request)
        response: HttpResponseBase = get_response(request)
        return response

    return middleware
