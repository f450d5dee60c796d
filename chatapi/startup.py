"""What a server process starts with its event loop, before any request: the apps' background
services (the generations' heartbeat and sweeper). An app registers a hook from its
``AppConfig.ready()`` (chatapi imports no app); ``chatapi.asgi`` runs the hooks on the server's
loop as it starts (daphne: on the reactor's first turn; uvicorn, granian: the ASGI lifespan
startup). Each hook is synchronous, runs on the running loop, and starts its own tasks."""

from collections.abc import Callable

StartupHook = Callable[[], None]

_hooks: list[StartupHook] = []


def startup_hook_register(hook: StartupHook) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def startup_hooks_run() -> None:
    for hook in _hooks:
        hook()
