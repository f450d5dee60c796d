"""ASGI entry point: `daphne chatapi.asgi:application` (see the README's deployment guide)."""

import os
from typing import Any

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")

_router = ProtocolTypeRouter({"http": get_asgi_application()})

from chatapi.dispatch import offloaded  # noqa: E402 - needs the settings configured above


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The API's views dispatch in the thread pool (``chatapi.dispatch``) when served here."""
    offloaded.set(True)
    await _router(scope, receive, send)
