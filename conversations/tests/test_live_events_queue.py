"""A live events socket whose client stops reading: the consumer driven over ASGI by a server
whose sends wait while the client reads nothing (as uvicorn's do: daphne's never wait, and
its WebSocket pings drop such a client instead), with the real channel layer and database."""

import asyncio
import json
from typing import Any

import pytest

from accounts.models import User
from chatapi.live_events import event_publish
from conversations.consumers import LiveEventsConsumer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

QUEUE_SIZE = 3
WAIT = 15.0  # seconds: an upper bound on a busy machine, never the expected time


class StalledClient:
    """The server side of a socket whose client reads its first frame, then nothing: every
    later send waits. Closes go through (a server closes without waiting for the reader)."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[dict[str, Any]] = []
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.authenticated = asyncio.Event()
        self.never = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close":
            self.closed.set_result(message["code"])
        elif message["type"] == "websocket.send":
            if self.frames:
                await self.never.wait()  # the client stopped reading
            self.frames.append(json.loads(message["text"]))
            self.authenticated.set()


async def test_a_client_that_stops_reading_is_closed_with_1013_once_its_queue_is_full(
    settings: Any, user: User, make_token: Any
) -> None:
    # given: an authenticated socket whose client has stopped reading
    settings.LIVE_EVENTS_QUEUE_SIZE = QUEUE_SIZE
    token = make_token(user)
    client = StalledClient()
    scope = {"type": "websocket", "path": "/ws/v1/events", "headers": [], "query_string": b""}
    app = asyncio.create_task(LiveEventsConsumer.as_asgi()(scope, client.receive, client.send))
    await client.incoming.put({"type": "websocket.connect"})
    await client.incoming.put(
        {"type": "websocket.receive", "text": json.dumps({"type": "authenticate", "token": token})}
    )
    await asyncio.wait_for(client.authenticated.wait(), WAIT)

    # when: more events than the queue holds, while the client reads none
    for number in range(QUEUE_SIZE + 2):
        event_publish(user_id=user.pk, event="conversation.updated", data={"n": number})
    code = await asyncio.wait_for(client.closed, WAIT)

    await client.incoming.put({"type": "websocket.disconnect", "code": code})
    await asyncio.wait_for(app, WAIT)

    # then: closed with 1013, having been sent nothing more than it read
    assert client.frames == [{"type": "authenticated", "user_id": str(user.pk)}]
    assert code == 1013
