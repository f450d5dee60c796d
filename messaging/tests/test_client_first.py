"""An answer started for a client reads the provider's stream once the client's response has
attached: a provider that sends a whole short answer at once must not have it relayed, ended
and stored before the response's headers go out (the first token would reach the client
last). Nothing waits for a client that will not come."""

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from conversations.models import Conversation, Message
from messaging import generation as generation_module
from messaging.services import NewTurn, message_send
from testsupport.asgi import parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import settled

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("close_worker_connection", "groq_providers"),
]

WORDS = [f"w{i} " for i in range(20)]


async def new_turn(conversation: Conversation, user: User) -> NewTurn:
    turn = await sync_to_async(message_send)(
        conversation=conversation, user=user, data={"content": "Hi"}, idempotency_key=None
    )
    assert isinstance(turn, NewTurn)
    return turn


def event_types(raw: bytes) -> list[str]:
    return [event.event for event in parse_sse(raw)]


async def test_a_streamed_answer_waits_for_its_response_then_relays_it_all(
    fake_groq: FakeGroq, conversation: Conversation, user: User
) -> None:
    # given: a provider that writes the whole answer in one burst, already received
    fake_groq.replies.append(Reply(text=WORDS, batch=len(WORDS) + 5))
    generation = (await new_turn(conversation, user)).generation
    await generation.start()
    await asyncio.sleep(0.2)

    # then: nothing but message_start is made before a response attaches
    assert event_types(generation.events.after(0)) == ["message_start"]
    assert not generation.finished

    # when: the response attaches
    received = b"".join([chunk async for chunk in generation.follow()])

    # then: it gets the whole answer, from its first event, and the answer is stored
    events = parse_sse(received)
    assert [event.id for event in events] == list(range(1, len(events) + 1))
    assert events[0].event == "message_start"
    assert events[-1].event == "message_stop"
    text = "".join(
        event.data["delta"]["text"] for event in events if event.event == "content_block_delta"
    )
    assert text == "".join(WORDS)
    answer = (await settled(conversation))[-1]
    assert (answer.status, answer.content) == (Message.Status.COMPLETE, "".join(WORDS))


async def test_an_answer_whose_response_never_attaches_goes_on_after_the_grace(
    fake_groq: FakeGroq,
    conversation: Conversation,
    user: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: a short grace
    monkeypatch.setattr(generation_module, "CLIENT_ATTACH_SECONDS", 0.1)
    fake_groq.replies.append(Reply(text=WORDS, batch=len(WORDS) + 5))

    # when: an answer is started for a response that never comes
    generation = (await new_turn(conversation, user)).generation
    task = await generation.start()

    # then: it is generated and stored all the same
    outcome = await asyncio.wait_for(asyncio.shield(task), 5)
    assert outcome.status == Message.Status.COMPLETE
    assert (await settled(conversation))[-1].content == "".join(WORDS)


async def test_an_answer_awaited_whole_or_whose_request_went_away_does_not_wait(
    fake_groq: FakeGroq,
    conversation: Conversation,
    user: User,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    # given: a grace far longer than the test may take; answers go on without their client
    monkeypatch.setattr(generation_module, "CLIENT_ATTACH_SECONDS", 600.0)
    settings.GENERATION_CONTINUE_ON_DISCONNECT = True
    fake_groq.replies.extend(
        [Reply(text=WORDS), Reply(text=WORDS, ttft=0.3)]  # the second answers late
    )

    # when: a non-streaming answer runs to its end
    awaited = await asyncio.wait_for(
        (await new_turn(conversation, user)).generation.run_to_end(), 5
    )

    # then: nothing waited for a response
    assert awaited.status == Message.Status.COMPLETE

    # when: a streamed answer's request goes away before the provider answers
    generation = (await new_turn(conversation, user)).generation
    starting = asyncio.ensure_future(generation.start())
    await asyncio.sleep(0.05)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting

    # then: the answer goes on at once, not waiting for a response that will never attach
    answer = (await settled(conversation))[-1]
    assert (answer.status, answer.content) == (Message.Status.COMPLETE, "".join(WORDS))
