"""The API's ASGI application with tracemalloc on, for the benchmark's memory per open stream
(``bench.run``): on SIGUSR2 a server process appends the memory Python has allocated and not
freed (everything allocated since start-up, the application's imports included) and how many
HTTP requests it has open to ``$CHATAPI_TRACE_FILE.<pid>``, one JSON line each time.

A module of its own, outside the ``bench`` package, so that it wraps whichever checkout's
``chatapi`` is on the path (the benchmark can measure another commit's API)."""

import json
import os
import signal
import tracemalloc
from typing import Any

tracemalloc.start(int(os.environ.get("CHATAPI_TRACE_FRAMES", "1")))

from chatapi.asgi import application as _application  # noqa: E402 - traced from here on

_open_requests = 0


def _report(*_: Any) -> None:
    traced, _peak = tracemalloc.get_traced_memory()
    path = f"{os.environ['CHATAPI_TRACE_FILE']}.{os.getpid()}"
    with open(path, "a") as out:  # noqa: PTH123 - one line, from a signal handler
        out.write(json.dumps({"traced": traced, "open": _open_requests}) + "\n")
    if os.environ.get("CHATAPI_TRACE_FRAMES"):  # where it was allocated, for bench.memory
        tracemalloc.take_snapshot().dump(f"{path}.{_open_requests}.snapshot")


signal.signal(signal.SIGUSR2, _report)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _open_requests  # noqa: PLW0603 - the count the report reads
    if scope["type"] != "http":
        await _application(scope, receive, send)
        return
    _open_requests += 1
    try:
        await _application(scope, receive, send)
    finally:
        _open_requests -= 1
