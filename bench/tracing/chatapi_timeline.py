"""The API's ASGI application with the send path's steps timed, for ``bench.timeline``: each
step appends ``(label, time.perf_counter_ns())``; on SIGUSR1 a server process writes them to
``$CHATAPI_TIMELINE_FILE.<pid>`` as JSON. ``perf_counter`` is the system's monotonic clock,
so the driver lines the steps up with its own clock.

A module of its own, outside the ``bench`` package, so that it wraps whichever checkout's
``chatapi`` is on the path; a step whose function a checkout lacks is left out."""

import functools
import inspect
import json
import os
import signal
import time
from typing import Any

from chatapi.asgi import application as _application

_marks: list[tuple[str, int]] = []


def _mark(label: str) -> None:
    _marks.append((label, time.perf_counter_ns()))


def _around(owner: Any, name: str, before: str | None, after: str | None) -> None:
    """Mark ``before`` when ``owner.name`` is called and ``after`` when it returns."""
    function = getattr(owner, name, None)
    if function is None:
        return
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            if before:
                _mark(before)
            try:
                return await function(*args, **kwargs)
            finally:
                if after:
                    _mark(after)

        setattr(owner, name, timed_async)
        return

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if before:
            _mark(before)
        try:
            return function(*args, **kwargs)
        finally:
            if after:
                _mark(after)

    setattr(owner, name, timed)


def _statement(sql: str) -> str | None:
    if sql.startswith("WITH RECURSIVE"):
        return "the turn's statement"
    if sql.startswith("WITH ended"):
        return "the answer's end statement"
    if sql.startswith('SELECT "conversations_conversation"'):
        return "the conversation's read"
    return None


def _install() -> None:
    from django.db.backends import utils

    from chatapi import asgi, daphne_writes, dispatch
    from messaging import generation

    _around(asgi.OneThreadASGIHandler, "run_get_response", "Django's handler: request built", None)
    _around(dispatch.APIView, "dispatch", "the view dispatched (event loop)", None)
    _around(dispatch.APIView, "dispatch_sync", "in a pool thread", "pool thread done")
    _around(dispatch.APIView, "_continue", "back on the event loop", None)
    _around(generation.Generation, "open", "provider request begun", "provider answered")
    _around(asgi.OneThreadASGIHandler, "send_response", "response handed to daphne", None)
    _around(generation.Generation, "_first_token", "first token made", None)
    _around(daphne_writes, "_unsent", "a write to the client's socket", None)

    execute = utils.CursorWrapper.execute

    @functools.wraps(execute)
    def timed_execute(self: Any, sql: str, params: Any = None) -> Any:
        label = _statement(sql)
        if label:
            _mark(f"{label}: sent")
        try:
            return execute(self, sql, params)
        finally:
            if label:
                _mark(f"{label}: done")

    utils.CursorWrapper.execute = timed_execute  # type: ignore[method-assign,assignment]


def _dump(*_: Any) -> None:
    path = f"{os.environ['CHATAPI_TIMELINE_FILE']}.{os.getpid()}"
    with open(path, "w") as out:  # noqa: PTH123 - from a signal handler
        json.dump(_marks, out)


_install()
signal.signal(signal.SIGUSR1, _dump)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope.get("method") == "POST":
        _mark("request received (ASGI)")
    await _application(scope, receive, send)
