"""Idempotency-Key on POST .../messages: a retry gets the same turn, never a second one."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from conversations.models import Conversation
from messaging.models import IdempotencyKey
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import stored

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]


def send(
    conversation: Conversation, auth: dict[str, str], body: dict[str, Any], key: str = "key-1"
) -> ASGIRequest:
    return ASGIRequest(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages",
        headers={**auth, "idempotency-key": key},
        json_body=body,
    )


async def test_retry_after_completion_returns_the_same_turn(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    first = await send(conversation, auth, {"content": "Hi"}).start()
    original = await first.json()

    # when
    retry = await send(conversation, auth, {"content": "Hi"}).start()
    repeated = await retry.json()

    # then
    assert (first.status, retry.status) == (201, 201)
    assert repeated == original
    assert len(await stored(conversation)) == 2
    assert len(fake_groq.received) == 1


async def test_streaming_retry_mid_generation_attaches_to_the_same_stream(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a slow streamed answer whose client vanished
    fake_groq.replies.append(Reply(text=[f"t{i}" for i in range(10)], interval=0.03))
    first = await send(conversation, auth, {"content": "Hi", "stream": True}).start()
    chunks = first.chunks()
    await anext(chunks)
    await first.disconnect()

    # when: the client retries with the same key
    retry = await send(conversation, auth, {"content": "Hi", "stream": True}).start()
    events = parse_sse(await retry.read())

    # then: the whole stream of the one generation, from the first event
    user_message, assistant = await stored(conversation)
    assert retry.status == 200
    assert retry.headers["user-message-id"] == str(user_message.pk)
    assert events[0].data["message"]["id"] == str(assistant.pk)
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "message_stop"
    assert len(fake_groq.received) == 1


async def test_same_key_with_another_body_is_422(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    await (await send(conversation, auth, {"content": "Hi"}).start()).read()

    retry = await send(conversation, auth, {"content": "Something else"}).start()
    body = await retry.json()

    assert retry.status == 422
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "This Idempotency-Key was already used with a different request; use a new key.",
    }
    assert len(await stored(conversation)) == 2


async def test_concurrent_requests_with_one_key_make_one_turn(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    fake_groq.replies.append(Reply(text=["a", "b"], interval=0.05))

    requests = [send(conversation, auth, {"content": "Hi"}) for _ in range(3)]
    await asyncio.gather(*(r.start() for r in requests))
    bodies = await asyncio.gather(*(r.json() for r in requests))

    assert [r.status for r in requests] == [201, 201, 201]
    assert len({b["id"] for b in bodies}) == 1
    assert len({b["user_message"]["id"] for b in bodies}) == 1
    assert len(await stored(conversation)) == 2
    assert len(fake_groq.received) == 1


async def test_an_expired_key_starts_a_new_turn(
    settings, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    await (await send(conversation, auth, {"content": "Hi"}).start()).read()

    @sync_to_async
    def age_keys() -> None:
        IdempotencyKey.objects.update(
            created_at=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS + 1)
        )

    await age_keys()

    retry = await send(conversation, auth, {"content": "Hi"}).start()
    await retry.read()

    assert retry.status == 201
    assert len(await stored(conversation)) == 4
    assert len(fake_groq.received) == 2


@pytest.mark.parametrize("key", ["", "x" * 256])
async def test_malformed_keys_are_400(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str], key: str
) -> None:
    response = await send(conversation, auth, {"content": "Hi"}, key=key).start()
    body = await response.json()

    assert response.status == 400
    assert body["error"]["details"] == {"fields": {"Idempotency-Key": ["Invalid idempotency key."]}}
    assert await stored(conversation) == []
