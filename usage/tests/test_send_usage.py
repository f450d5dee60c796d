"""The send path end to end (ASGI in-process, the Groq stand-in on loopback): each turn's
ledger row and the settlement of its budget reservation."""

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.db import connection

from accounts.models import ApiKey, User
from accounts.services import api_key_create
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.fake_groq import ErrorReply, FakeGroq, Reply
from usage.models import BudgetReservation, UsageRecord

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def providers(settings, fake_groq: FakeGroq) -> None:
    settings.LLM_PROVIDERS = {
        "groq": {
            "class": "messaging.llm.openai_compat.GroqClient",
            "base_url": fake_groq.base_url,
            "api_key": "gsk_test",
            "max_retries": 0,
        },
    }
    settings.USAGE_MONTHLY_TOKEN_LIMIT = 10_000_000  # so every send holds a reservation


@pytest_asyncio.fixture(autouse=True)
async def close_worker_connection() -> AsyncIterator[None]:
    """The tests' sync_to_async calls share one worker thread: close its connection."""
    yield
    await _close_connection()


@sync_to_async
def _close_connection() -> None:
    connection.close()


@pytest.fixture
def conversation(user: User) -> Conversation:
    return conversation_create(owner=user, model="openai/gpt-oss-20b")


def _send(conversation: Conversation, token: str) -> ASGIRequest:
    return ASGIRequest(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages",
        headers={"authorization": f"Bearer {token}"},
        json_body={"content": "Hi", "stream": True},
    )


@sync_to_async
def _ledger_and_messages(
    conversation: Conversation,
) -> tuple[list[UsageRecord], list[Message], int]:
    return (
        list(UsageRecord.objects.all()),
        list(Message.objects.filter(conversation=conversation, role="assistant")),
        BudgetReservation.objects.count(),
    )


async def _settled(conversation: Conversation) -> tuple[list[UsageRecord], list[Message], int]:
    for _ in range(250):
        ledger, messages, held = await _ledger_and_messages(conversation)
        if all(m.status != Message.Status.IN_PROGRESS for m in messages):
            return ledger, messages, held
        await asyncio.sleep(0.02)
    raise AssertionError("the generation never settled")


async def test_a_streamed_turn_is_billed_from_the_providers_report(
    fake_groq: FakeGroq, conversation: Conversation, user: User, make_token
) -> None:
    # given: Groq reports 30 input and 9 output tokens, 4 of them reasoning
    fake_groq.replies.append(
        Reply(reasoning=["Hm."], text=["Hel", "lo!"], prompt_tokens=30, completion_tokens=9)
    )

    # when
    response = await _send(conversation, make_token(user)).start()
    events = parse_sse(await response.read())

    # then: (30 x 0.075 + 9 x 0.30) / 10^6
    assert events[-1].event == "message_stop"
    ledger, (assistant,), held = await _settled(conversation)
    (row,) = ledger
    assert (row.input_tokens, row.output_tokens, row.usage_estimated) == (30, 9, False)
    assert row.cost_usd == assistant.cost_usd == Decimal("0.0000049500")
    assert (row.message_id, row.conversation_id, row.user_id) == (
        assistant.pk,
        conversation.pk,
        user.pk,
    )
    assert held == 0


async def test_a_refused_request_is_not_billed_and_releases_its_reservation(
    fake_groq: FakeGroq, conversation: Conversation, user: User, make_token
) -> None:
    fake_groq.replies.append(ErrorReply(400, message="Bad request"))

    response = await _send(conversation, make_token(user)).start()
    await response.read()

    assert response.status == 400
    ledger, (assistant,), held = await _settled(conversation)
    assert (ledger, assistant.status, held) == ([], "error", 0)


async def _send_with_a_new_key(conversation: Conversation, user: User) -> tuple[ApiKey, int]:
    """A streamed "Hi" sent with a new API key of ``user``'s, read to its end; the key and
    the response's status."""
    api_key, secret = await sync_to_async(api_key_create)(
        user=user, name="script", scopes=["conversations:write"]
    )
    response = await ASGIRequest(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages",
        headers={"x-api-key": secret},
        json_body={"content": "Hi", "stream": True},
    ).start()
    await response.read()
    assert response.status is not None
    return api_key, response.status


async def test_a_turn_sent_with_an_api_key_is_billed_to_that_key(
    fake_groq: FakeGroq, conversation: Conversation, user: User
) -> None:
    # given
    fake_groq.replies.append(Reply(text=["Hi"], prompt_tokens=30, completion_tokens=9))

    # when
    api_key, status = await _send_with_a_new_key(conversation, user)

    # then
    assert status == 200
    ledger, _, _ = await _settled(conversation)
    (row,) = ledger
    assert (row.user_id, row.api_key_id, row.input_tokens) == (user.pk, api_key.pk, 30)


async def test_the_title_call_of_a_turn_sent_with_an_api_key_is_billed_to_that_key(
    settings, fake_groq: FakeGroq, conversation: Conversation, user: User
) -> None:
    # given: a title model, and an untitled conversation written to with a key
    settings.TITLE_MODEL = "openai/gpt-oss-20b"
    fake_groq.replies.extend(
        [
            Reply(text=["Hi"], prompt_tokens=30, completion_tokens=9),
            Reply(text=["Greetings"], prompt_tokens=50, completion_tokens=3),
        ]
    )

    # when
    api_key, status = await _send_with_a_new_key(conversation, user)

    # then: both ledger rows, the answer's and the title's, name the key
    assert status == 200
    rows: list[UsageRecord] = []
    for _ in range(250):
        rows = await sync_to_async(
            lambda: list(UsageRecord.objects.filter(conversation_id=conversation.pk))
        )()
        if len(rows) == 2:
            break
        await asyncio.sleep(0.02)
    assert sorted((row.kind, row.api_key_id, row.input_tokens) for row in rows) == [
        ("chat", api_key.pk, 30),
        ("title", api_key.pk, 50),
    ]
