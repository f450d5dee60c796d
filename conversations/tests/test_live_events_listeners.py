"""Without Redis the live events' layer is this process's memory: an event is built and sent
only while a socket is open here, since nothing else could receive it."""

import asyncio
import json
import uuid
from typing import Any

import pytest
from channels.layers import get_channel_layer

from chatapi import live_events

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
WAIT = 5.0  # seconds: an upper bound on a busy machine


async def _member(user_id: uuid.UUID) -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(live_events.user_group(user_id), channel)
    return layer, channel


@pytest.mark.asyncio
async def test_with_no_socket_open_here_no_event_is_sent(settings: Any) -> None:
    # given: the in-memory layer, a member of the user's group, and no socket registered
    settings.CHANNEL_LAYERS = IN_MEMORY
    user_id = uuid.uuid4()
    layer, channel = await _member(user_id)
    assert not live_events.events_wanted()

    # when
    live_events.event_publish(user_id=user_id, event="conversation.created", data={"n": 1})

    # then: nothing reached the layer
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.3)


@pytest.mark.asyncio
async def test_with_a_socket_open_here_the_event_is_sent(settings: Any) -> None:
    # given: the in-memory layer and a socket of this process registered
    settings.CHANNEL_LAYERS = IN_MEMORY
    user_id = uuid.uuid4()
    layer, channel = await _member(user_id)
    socket = object()

    async def close(code: int) -> None:
        return None

    live_events.socket_register(socket, close)
    try:
        assert live_events.events_wanted()

        # when
        live_events.event_publish(user_id=user_id, event="conversation.created", data={"n": 1})

        # then
        message = await asyncio.wait_for(layer.receive(channel), WAIT)
    finally:
        live_events.socket_unregister(socket)
    frame = json.loads(message["text"])
    assert (frame["type"], frame["data"]) == ("conversation.created", {"n": 1})


def test_with_redis_events_are_always_wanted(settings: Any) -> None:
    # Another process's sockets may be listening: the event goes to Redis.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    assert live_events.events_wanted()
