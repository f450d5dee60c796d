"""``GET /ws/v1/events``: one WebSocket per client for everything that happens to its user's
conversations, on any device or server process (docs/api.md, "Live events").

The client's first message authenticates it, within LIVE_EVENTS_AUTH_TIMEOUT_SECONDS, with
the credentials the REST API takes (a Supabase access token, or an API key with the
``conversations:read`` scope); a token is never read from the URL. The socket then joins its
user's group (chatapi.live_events), and every frame it is sent goes through one bounded queue:
a client that falls LIVE_EVENTS_QUEUE_SIZE frames behind is closed instead of buffered for.
"""

import asyncio
import logging
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import connection
from django.urls import path

from accounts.authentication import credential_authenticate
from accounts.keys import ApiKeyCaller
from accounts.models import ApiKeyScope, User
from accounts.selectors import api_key_is_usable
from chatapi import live_events
from chatapi.errors import ApiError
from chatapi.ratelimits import live_slot_acquire, live_slot_release
from chatapi.shutdown import draining, signal_handlers_install

logger = logging.getLogger(__name__)

# Close codes (docs/api.md). 1012 (service restart) is chatapi.live_events'.
CLOSE_UNAUTHENTICATED = 4401  # bad or expired credentials, or no `authenticate` in time
CLOSE_FORBIDDEN = 4403  # an API key without the conversations:read scope
CLOSE_TOO_MANY = 4429  # the user has LIVE_EVENTS_MAX_CONNECTIONS_PER_USER sockets open
CLOSE_TOO_SLOW = 1013  # the client fell LIVE_EVENTS_QUEUE_SIZE frames behind (try again later)
CLOSE_BAD_MESSAGE = 1003  # a message after authentication that is not a JSON ping

_PING = orjson.dumps({"type": "ping"}).decode()
_PONG = orjson.dumps({"type": "pong"}).decode()


def _origin_allowed(scope: dict[str, Any]) -> bool:
    """API clients send no Origin; a browser's page must be the API's own origin or one of
    CORS_ALLOWED_ORIGINS (as for the REST API)."""
    headers: dict[bytes, bytes] = dict(scope.get("headers", []))
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin:
        return True
    allowed: list[str] = settings.CORS_ALLOWED_ORIGINS
    if origin in allowed:
        return True
    return urlsplit(origin).netloc == headers.get(b"host", b"").decode("latin-1")


@sync_to_async(thread_sensitive=False)
def _authenticate(token: str) -> tuple[User, Any]:
    try:
        return credential_authenticate(token)
    finally:
        connection.close()


@sync_to_async(thread_sensitive=False)
def _still_authorized(user_id: uuid.UUID, slot: str, api_key_id: uuid.UUID | None) -> bool:
    """Renew the socket's connection slot; False when its API key no longer authenticates
    (revoked, expired, its owner disabled)."""
    live_slot_acquire(user_id, slot)
    if api_key_id is None:
        return True
    try:
        return api_key_is_usable(api_key_id=api_key_id)
    finally:
        connection.close()


class LiveEventsConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # untyped
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    async def connect(self) -> None:
        if not _origin_allowed(self.scope):
            await self.close()  # before accepting: the handshake is refused (403)
            return
        if settings.SHUTDOWN_HANDLE_SIGNALS:
            signal_handlers_install()
        await self.accept()
        if draining():
            await self.close(code=live_events.CLOSE_SERVICE_RESTART)
            return
        self.slot = uuid.uuid4().hex
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=settings.LIVE_EVENTS_QUEUE_SIZE)
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        live_events.socket_register(self, self._close)
        loop = asyncio.get_running_loop()
        self.auth_timer = loop.call_later(
            settings.LIVE_EVENTS_AUTH_TIMEOUT_SECONDS,
            lambda: self._close_soon(CLOSE_UNAUTHENTICATED, "No authenticate message in time."),
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return  # what a client sends after its socket was closed is not read
        try:
            message = orjson.loads(text_data if text_data is not None else bytes_data or b"")
        except orjson.JSONDecodeError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if self.user_id is None:
            await self._authenticate(message if kind == "authenticate" else None)
        elif kind == "ping":
            self._enqueue(_PONG)
        elif kind != "pong":
            await self._close(CLOSE_BAD_MESSAGE, 'Send only {"type": "ping"} here.')

    async def _authenticate(self, message: dict[str, Any] | None) -> None:
        self.auth_timer.cancel()
        token = message.get("token") if message is not None else None
        if not isinstance(token, str) or not token:
            await self._close(
                CLOSE_UNAUTHENTICATED,
                'The first message must be {"type": "authenticate", "token": "..."}.',
            )
            return
        try:
            user, auth = await _authenticate(token)
        except ApiError as exc:
            await self._close(CLOSE_UNAUTHENTICATED, str(exc.detail))
            return
        if isinstance(auth, ApiKeyCaller) and ApiKeyScope.CONVERSATIONS_READ not in auth.scopes:
            await self._close(CLOSE_FORBIDDEN, "This API key lacks the scope 'conversations:read'.")
            return
        if not await sync_to_async(live_slot_acquire, thread_sensitive=False)(user.pk, self.slot):
            limit = settings.LIVE_EVENTS_MAX_CONNECTIONS_PER_USER
            await self._close(CLOSE_TOO_MANY, f"At most {limit} live event connections per user.")
            return
        self.user_id = user.pk
        self.api_key_id = auth.key_id if isinstance(auth, ApiKeyCaller) else None
        await self.channel_layer.group_add(live_events.user_group(user.pk), self.channel_name)
        loop = asyncio.get_running_loop()
        if isinstance(auth, ApiKeyCaller):
            expires_at = auth.claims.expires_at
        else:  # a token is accepted as long as the REST API accepts it
            expires_at = auth.expires_at + settings.SUPABASE_JWT_LEEWAY_SECONDS
        if expires_at:
            self.auth_timer = loop.call_later(
                max(expires_at - time.time(), 0),
                lambda: self._close_soon(CLOSE_UNAUTHENTICATED, "The credentials expired."),
            )
        self.tasks = [loop.create_task(self._write()), loop.create_task(self._heartbeat())]
        self._enqueue(orjson.dumps({"type": "authenticated", "user_id": str(user.pk)}).decode())

    async def live_event(self, message: dict[str, Any]) -> None:
        """An event of the user's (chatapi.live_events), from any process."""
        self._enqueue(message["text"])

    def _enqueue(self, frame: str) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._close_soon(CLOSE_TOO_SLOW, "The client did not keep up with its events.")

    async def _write(self) -> None:
        """The one writer of the socket: a send that waits (a slow client, under a server that
        pushes back) lets the queue fill up to its bound."""
        while True:
            await self.send(text_data=await self.queue.get())

    async def _heartbeat(self) -> None:
        """A ping every LIVE_EVENTS_PING_SECONDS, which also renews the socket's slot and
        closes the socket of an API key revoked meanwhile."""
        while self.user_id is not None:
            await asyncio.sleep(settings.LIVE_EVENTS_PING_SECONDS)
            self._enqueue(_PING)
            if not await _still_authorized(self.user_id, self.slot, self.api_key_id):
                await self._close(CLOSE_UNAUTHENTICATED, "The API key no longer authenticates.")
                return

    def _close_soon(self, code: int, reason: str) -> None:
        asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        logger.info("closing live events socket %s: %d %s", self.channel_name, code, reason)
        # A close reason has at most 123 bytes.
        await self.close(code=code, reason=reason.encode()[:123].decode(errors="ignore"))

    async def disconnect(self, code: int) -> None:
        live_events.socket_unregister(self)
        if not hasattr(self, "slot"):
            return  # refused before it was accepted
        self.auth_timer.cancel()
        for task in self.tasks:
            task.cancel()
        # A writer whose socket went away may have ended with an error of its own.
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.user_id is not None:
            await self.channel_layer.group_discard(
                live_events.user_group(self.user_id), self.channel_name
            )
            await sync_to_async(live_slot_release, thread_sensitive=False)(self.user_id, self.slot)


websocket_urlpatterns = [path("ws/v1/events", LiveEventsConsumer.as_asgi())]
