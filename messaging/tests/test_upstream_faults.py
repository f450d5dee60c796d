"""Upstream faults end to end: what the client sees and what is stored. The provider client's
own handling of each fault is in test_groq_client.py, and an ``x_groq.error`` mid-stream,
a 400 refusal, a 429's Retry-After and a drop without streaming are in test_send.py; these
are the rest: a stream dropped, stalled past the read timeout or sent a malformed chunk
after it started, and 429/500/503 still failing after the retries."""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Conversation
from testsupport.asgi import message_post, parse_sse
from testsupport.fake_groq import ErrorReply, FakeGroq, Reply
from testsupport.helpers import settled, stored
from usage.models import UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]


@pytest.mark.parametrize(
    ("reply", "error_type", "message"),
    [
        (
            Reply(text=["Par", "tial", "never"], drop_after=2),
            "api_error",
            "The model provider closed the connection mid-stream.",
        ),
        (
            Reply(text=["Par", "tial", "never"], stall_after=2),
            "timeout_error",
            "The model provider stopped sending.",
        ),
        (
            Reply(text=["Par", "tial", "never"], malformed_after=2),
            "api_error",
            "The model provider sent a malformed chunk.",
        ),
    ],
    ids=["dropped", "stalled past the read timeout", "malformed chunk"],
)
async def test_a_failure_mid_stream_ends_with_an_error_event_and_keeps_the_partial_answer(
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    reply: Reply,
    error_type: str,
    message: str,
) -> None:
    # given
    fake_groq.replies.append(reply)

    # when
    response = await message_post(conversation, auth, {"content": "Hi", "stream": True}).start()
    events = parse_sse(await response.read(wait=15))

    # then: the stream ends with one terminal error event, no message_stop
    assert response.status == 200
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "error",
    ]
    assert events[-1].data == {"type": "error", "error": {"type": error_type, "message": message}}
    user_message, assistant = await settled(conversation)
    assert (user_message.content, user_message.status) == ("Hi", "complete")
    assert (assistant.status, assistant.content) == ("error", "Partial")
    assert assistant.error == {"type": error_type, "message": message}
    # usage: the estimate (no report came), flagged, and on the ledger
    assert (assistant.input_tokens, assistant.output_tokens) == (5, 2)  # "Hi": 1 + 4
    assert assistant.usage_estimated is True
    assert assistant.cost_usd == Decimal("0.0000009750")
    record = await sync_to_async(UsageRecord.objects.get)(message_id=assistant.pk)
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (5, 2, True)


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (ErrorReply(429, message="Rate limit reached", type="tokens"), 429, "rate_limit_error"),
        (ErrorReply(500, message="Internal error", type="internal_server_error"), 502, "api_error"),
        (
            ErrorReply(503, message="Over capacity", type="service_unavailable"),
            529,
            "overloaded_error",
        ),
    ],
    ids=["429", "500", "503"],
)
async def test_an_upstream_still_failing_after_the_retries_is_an_http_error_and_nothing_is_billed(
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    error: ErrorReply,
    status: int,
    error_type: str,
) -> None:
    # given: the first try and the one retry both fail
    fake_groq.replies.extend([error, error])

    # when
    response = await message_post(conversation, auth, {"content": "Hi", "stream": True}).start()
    body = await response.json()

    # then
    assert len(fake_groq.received) == 2
    assert response.status == status
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"] == response.headers["request-id"]
    user_message, assistant = await stored(conversation)
    assert (user_message.content, user_message.status) == ("Hi", "complete")
    assert assistant.status == "error"
    assert assistant.error == body["error"]
    assert (assistant.input_tokens, assistant.output_tokens, assistant.usage_estimated) == (
        0,
        0,
        False,
    )
    assert not await sync_to_async(UsageRecord.objects.filter(message_id=assistant.pk).exists)()
