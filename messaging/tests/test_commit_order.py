"""A send's turn is committed before its provider is asked: the user message is durable
before the model sees it. A commit that fails is answered 503, as any failure of the
database is, the provider never asked, nothing stored and the turn's stream slot given back.

The suite's RLS pass (DB_RLS_PER_REQUEST) runs these too: there the turn is written in the
caller transaction, which commits when the view's synchronous part returns
(``accounts.rls.CallerAPIView``)."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from conversations.models import Conversation, Message
from testsupport.asgi import message_post, parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import settled, stored
from usage.models import UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("close_worker_connection", "groq_providers"),
]

SLOW = "a slow commit"
FAILING = "a failing commit"


@pytest.fixture
def commit_hook() -> Iterator[None]:
    """A deferred trigger on new messages, run at the commit of the transaction that
    inserted them: a user message saying SLOW makes the commit take 0.3 s; one saying FAILING
    makes it fail, as PostgreSQL fails a commit it cannot make (serialization_failure)."""
    table = Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION test_commit_hook() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.content = '{SLOW}' THEN PERFORM pg_sleep(0.3); END IF;
                IF NEW.content = '{FAILING}' THEN
                    RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'serialization_failure';
                END IF;
                RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER test_commit_hook AFTER INSERT ON {table}
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_commit_hook();
            """
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            f"DROP TRIGGER test_commit_hook ON {table}; DROP FUNCTION test_commit_hook();"
        )


@pytest.mark.parametrize("stream", [False, True])
async def test_the_provider_is_asked_once_the_turn_is_committed(
    stream: bool,
    commit_hook: None,
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
) -> None:
    # given: a commit that takes 0.3 s, and a provider that answers when the test says
    reply = Reply(text=["one", " two"], hold_at=0)
    fake_groq.replies.append(reply)

    # when: a message is sent
    request = message_post(conversation, auth, {"content": SLOW, "stream": stream}).begin()

    # then: when the provider has the request, both messages are committed
    assert await asyncio.to_thread(fake_groq.wait_for_hold, 5.0)
    assert [(m.role, m.status) for m in await stored(conversation)] == [
        ("user", Message.Status.COMPLETE),
        ("assistant", Message.Status.IN_PROGRESS),
    ]

    # when: the provider answers
    reply.hold.set()
    await request.start()
    body = await request.read()

    # then: the answer is the client's and is stored
    assert request.status == (200 if stream else 201)
    if stream:
        events = parse_sse(body)
        assert events[0].event == "message_start"
        assert events[-1].event == "message_stop"
    messages = await settled(conversation)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", SLOW, Message.Status.COMPLETE),
        ("assistant", "one two", Message.Status.COMPLETE),
    ]
    assert await UsageRecord.objects.filter(message_id=messages[1].pk).acount() == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_a_commit_that_fails_is_a_503_and_leaves_nothing(
    stream: bool,
    commit_hook: None,
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    settings: Any,
) -> None:
    # given: one stream slot
    settings.RATE_LIMIT_CONCURRENT_STREAMS = 1

    # when: a send's commit fails
    response = await message_post(
        conversation, auth, {"content": FAILING, "stream": stream}
    ).start()

    # then: it is refused as the database's failure it is, the provider never asked, and
    # nothing stored
    assert response.status == 503
    body = await response.json()
    assert body["error"]["message"] == "The database is unreachable; try again shortly."
    assert fake_groq.received == []
    assert await stored(conversation) == []
    await conversation.arefresh_from_db()
    assert conversation.current_leaf_id is None
    assert await UsageRecord.objects.acount() == 0

    # when: the next send comes
    fake_groq.replies.append(Reply(text=["fine"]))
    again = await message_post(conversation, auth, {"content": "Hi"}).start()

    # then: the stream slot was given back: it is answered
    assert again.status == 201, await again.read()
    assert [m.content for m in await settled(conversation)] == ["Hi", "fine"]
