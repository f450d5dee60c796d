"""Clients that go away: a disconnect at every stage of a stream, with
GENERATION_CONTINUE_ON_DISCONNECT on (the default: the answer finishes and is stored whole)
and off (the upstream is closed and what exists is stored ``incomplete``; an answer the
upstream already finished stays ``complete``). Whatever the stage, the user message is kept,
usage is on the ledger (flagged estimated when the provider could not report it), the
concurrent-stream slot is given back, and nothing stays ``in_progress``.

The fake upstream holds its reply at a chosen chunk until the test lets it go
(``Reply.hold_at``), and a row lock held by the test keeps the generation between its
``message_delta`` and its ``message_stop`` (the answer is being stored), so each stage is
reached exactly, not by timing."""

import asyncio
import threading
import uuid
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import MODEL, settled
from usage.models import UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]

WORDS = [f"w{i} " for i in range(6)]
ANSWER = "".join(WORDS)


def send(conversation: Conversation, auth: dict[str, str]) -> ASGIRequest:
    return ASGIRequest(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages",
        headers=auth,
        json_body={"content": "Hi", "stream": True},
    )


class Reader:
    """A stream's bytes so far, read on demand."""

    def __init__(self, response: ASGIRequest) -> None:
        self._chunks = response.chunks()
        self.received = b""

    async def until(self, event: str, count: int = 1) -> None:
        """Read until ``count`` whole events of type ``event`` arrived."""
        while self.received.count(f"event: {event}\n".encode()) < count:
            self.received += await anext(self._chunks)

    def events(self) -> list[str]:
        return [e.event for e in parse_sse(self.received)]

    def message_id(self) -> uuid.UUID:
        return uuid.UUID(parse_sse(self.received)[0].data["message"]["id"])


class RowLock:
    """Holds a row lock on a message in a transaction of its own (another thread and
    connection), so the generation's final UPDATE waits until ``release``."""

    def __init__(self, message_id: uuid.UUID) -> None:
        self._locked = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(message_id,), daemon=True)
        self._thread.start()

    def _hold(self, message_id: uuid.UUID) -> None:
        try:
            with transaction.atomic():
                Message.objects.select_for_update().get(pk=message_id)
                self._locked.set()
                self._release.wait(15)
        finally:
            connection.close()

    async def locked(self) -> None:
        assert await asyncio.to_thread(self._locked.wait, 5)

    async def release(self) -> None:
        self._release.set()
        await asyncio.to_thread(self._thread.join, 5)


@dataclass(frozen=True)
class Expected:
    received: list[str]  # the event types the client had when it left
    status: str
    content: str
    estimated: bool


STAGES: dict[str, tuple[str | None, int]] = {
    # The upstream has not answered yet: the request is waiting for its first chunk.
    "before message_start": (None, 0),
    "after message_start": ("message_start", 1),
    "mid content_block_delta": ("content_block_delta", 2),
    # The answer is complete upstream and being stored.
    "after message_delta, before message_stop": ("message_delta", 1),
}
EXPECTED = {
    (True, "before message_start"): Expected([], "complete", ANSWER, False),
    (True, "after message_start"): Expected(["message_start"], "complete", ANSWER, False),
    (True, "mid content_block_delta"): Expected(
        ["message_start", "content_block_start", "content_block_delta", "content_block_delta"],
        "complete",
        ANSWER,
        False,
    ),
    (True, "after message_delta, before message_stop"): Expected(
        ["message_start", "content_block_start"]
        + ["content_block_delta"] * len(WORDS)
        + ["content_block_stop", "message_delta"],
        "complete",
        ANSWER,
        False,
    ),
    (False, "before message_start"): Expected([], "incomplete", "", True),
    (False, "after message_start"): Expected(["message_start"], "incomplete", "", True),
    (False, "mid content_block_delta"): Expected(
        ["message_start", "content_block_start", "content_block_delta", "content_block_delta"],
        "incomplete",
        "w0 w1 ",
        True,
    ),
    (False, "after message_delta, before message_stop"): Expected(
        ["message_start", "content_block_start"]
        + ["content_block_delta"] * len(WORDS)
        + ["content_block_stop", "message_delta"],
        "complete",
        ANSWER,
        False,
    ),
}


@pytest.mark.parametrize("continue_on_disconnect", [True, False], ids=["continue", "stop"])
@pytest.mark.parametrize("stage", list(STAGES))
async def test_disconnect_at_every_stage_stores_the_documented_outcome(
    settings,
    fake_groq: FakeGroq,
    user: User,
    auth: dict[str, str],
    stage: str,
    continue_on_disconnect: bool,
) -> None:
    # given: one stream allowed at a time (to see the slot given back), an upstream held at
    # the chunk that makes the stage
    settings.GENERATION_CONTINUE_ON_DISCONNECT = continue_on_disconnect
    settings.RATE_LIMIT_CONCURRENT_STREAMS = 1
    conversation, later = [
        await sync_to_async(conversation_create)(owner=user, model=MODEL) for _ in range(2)
    ]
    expected = EXPECTED[(continue_on_disconnect, stage)]
    event, count = STAGES[stage]
    last_stage = stage.startswith("after message_delta")
    # Chunks: 0 the head (message_start), 1.. the words, then the tail (finish, usage).
    hold_at = {"before message_start": 0, "after message_start": 1}.get(
        stage, 3 if stage.startswith("mid") else len(WORDS) + 1
    )
    reply = Reply(text=WORDS, prompt_tokens=40, completion_tokens=6, hold_at=hold_at)
    fake_groq.replies.append(reply)
    response = send(conversation, auth)
    lock: RowLock | None = None

    # when: the client reads up to the stage, and goes away
    if event is None:
        response.begin()
        assert await asyncio.to_thread(fake_groq.wait_for_hold)
        received: list[str] = []
    else:
        await response.start()
        assert response.status == 200
        reader = Reader(response)
        assert await asyncio.to_thread(fake_groq.wait_for_hold)
        if last_stage:
            await reader.until("message_start")
            lock = RowLock(reader.message_id())
            await lock.locked()
            reply.hold.set()
        await reader.until(event, count)
        received = reader.events()
    await response.disconnect()
    reply.hold.set()
    if lock is not None:
        await lock.release()

    # then
    assert received == expected.received
    user_message, assistant = await settled(conversation)
    assert (user_message.role, user_message.content, user_message.status) == (
        "user",
        "Hi",
        "complete",
    )
    assert (assistant.status, assistant.content) == (expected.status, expected.content)
    assert assistant.usage_estimated is expected.estimated
    assert assistant.completed_at is not None
    if expected.status == "complete":
        assert (assistant.input_tokens, assistant.output_tokens) == (40, 6)
        assert assistant.error is None
        assert fake_groq.disconnects == 0
    else:
        assert assistant.output_tokens == (2 if expected.content else 0)
        assert assistant.error == {
            "type": "api_error",
            "message": "The client disconnected and the generation was stopped; "
            "the answer is incomplete.",
        }
        assert await asyncio.to_thread(fake_groq.wait_for_disconnect, 5.0)
    record = await sync_to_async(UsageRecord.objects.get)(message_id=assistant.pk)
    assert (record.output_tokens, record.usage_estimated) == (
        assistant.output_tokens,
        expected.estimated,
    )
    assert await _slot_given_back(later, auth)


async def _slot_given_back(conversation: Conversation, auth: dict[str, str]) -> bool:
    """A send in another conversation is accepted (not 429) within a few seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        response = await ASGIRequest(
            "POST",
            f"/api/v1/conversations/{conversation.pk}/messages",
            headers=auth,
            json_body={"content": "again"},
        ).start()
        await response.read()
        if response.status == 201:
            return True
        assert response.status == 429, response.status
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
