"""What a server process starts with its event loop, before any request: the apps' background
services (the generations' heartbeat and sweeper). An app registers a hook from its
``AppConfig.ready()`` (chatapi imports no app); ``chatapi.asgi`` runs the hooks on the server's
loop as it starts (daphne: on the reactor's first turn; uvicorn, granian: the ASGI lifespan
startup). Each hook is synchronous, runs on the running loop, and starts its own tasks.
Then the heap the process starts with is frozen (``heap_freeze``)."""

import gc
from collections.abc import Callable

StartupHook = Callable[[], None]

_hooks: list[StartupHook] = []


def startup_hook_register(hook: StartupHook) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def startup_hooks_run() -> None:
    for hook in _hooks:
        hook()
    heap_freeze()


def heap_freeze() -> None:
    """Move what the process holds once it has started (its code, Django's settings, URLconf
    and models: some 270,000 objects that live as long as the process) to the garbage
    collector's permanent generation, after collecting what start-up left behind. A full
    collection then walks only what was allocated since. Without it, a server under load ran
    one every few seconds that walked them all: 100-200 ms with every request and stream of
    the process stopped (bench/README.md, "What the profiles found")."""
    gc.collect()
    gc.freeze()
