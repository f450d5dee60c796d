"""ASGI entry point: `daphne chatapi.asgi:application` (see the README's deployment guide)."""

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")

application = ProtocolTypeRouter({"http": get_asgi_application()})
