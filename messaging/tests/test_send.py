"""Sending a message: the SSE stream in Anthropic's event format, the JSON reply, and what is
stored. The model provider is the fake Groq server on loopback; the app runs in-process under
ASGI (testsupport/asgi.py), so streams are read chunk by chunk and can be disconnected."""

import asyncio
import gc
import json
import logging
import uuid
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from messaging.llm.base import ChatMessage
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.factories import make_chat_model, make_message
from testsupport.fake_groq import ErrorReply, FakeGroq, Reply
from testsupport.helpers import MODEL, settled, stored
from usage.models import UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]


@pytest.fixture
def conversation(user: User) -> Conversation:
    return conversation_create(owner=user, model=MODEL, system_prompt="Be brief.")


def send(
    conversation: Conversation,
    auth: dict[str, str],
    body: dict[str, Any],
    *,
    path: str = "",
    headers: dict[str, str] | None = None,
) -> ASGIRequest:
    return ASGIRequest(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages{path}",
        headers={**auth, **(headers or {})},
        json_body=body,
    )


async def test_stream_is_the_anthropic_event_sequence(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.append(
        Reply(
            reasoning=["Greet ", "back."],
            text=["Hel", "lo!"],
            prompt_tokens=30,
            completion_tokens=9,
        )
    )

    # when
    response = await send(conversation, auth, {"content": "Hi", "stream": True}).start()
    events = parse_sse(await response.read())

    # then
    user_message, assistant = await settled(conversation)
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["conversation-id"] == str(conversation.pk)
    assert response.headers["user-message-id"] == str(user_message.pk)
    assert [e.id for e in events] == list(range(1, 12))
    estimated_input = events[0].data["message"]["usage"]["input_tokens"]
    assert estimated_input == 12  # "Be brief." 3 + 4, "Hi" 1 + 4: messaging/llm/token_estimates.py
    assert [e.data for e in events] == [
        {
            "type": "message_start",
            "message": {
                "id": str(assistant.pk),
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": MODEL,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 0},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Greet "},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "back."},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "lo!"}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"input_tokens": 30, "output_tokens": 9},
        },
        {"type": "message_stop"},
    ]


async def test_stream_is_stored_with_every_field(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: 1,000,000 tokens in and out at $0.075 / $0.30 per million
    fake_groq.replies.append(
        Reply(
            reasoning=["Hmm."],
            text=["Hi", " there"],
            prompt_tokens=1_000_000,
            completion_tokens=1_000_000,
        )
    )

    # when
    response = await send(conversation, auth, {"content": "Hello", "stream": True}).start()
    await response.read()

    # then
    user_message, assistant = await settled(conversation)
    assert (user_message.role, user_message.content, user_message.status) == (
        "user",
        "Hello",
        "complete",
    )
    assert assistant.role == "assistant"
    assert assistant.status == "complete"
    assert assistant.content == "Hi there"
    assert assistant.reasoning == "Hmm."
    assert assistant.stop_reason == "end_turn"
    assert assistant.model == MODEL
    assert (assistant.input_tokens, assistant.output_tokens) == (1_000_000, 1_000_000)
    assert assistant.usage_estimated is False
    assert assistant.cost_usd == Decimal("0.3750000000")
    assert assistant.ttft_ms is not None
    assert assistant.latency_ms is not None
    assert 0 <= assistant.ttft_ms <= assistant.latency_ms
    assert assistant.error is None
    assert assistant.completed_at is not None
    refreshed = await sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert refreshed.title == "Hello"
    assert refreshed.last_message_at == assistant.completed_at


async def test_first_event_arrives_before_the_upstream_finishes(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: an upstream that takes 0.2 s between chunks
    fake_groq.replies.append(Reply(text=["a", "b", "c", "d", "e"], interval=0.2))

    # when
    response = await send(conversation, auth, {"content": "Hi", "stream": True}).start()
    chunks = response.chunks()
    received = b""
    while b"text_delta" not in received:
        received += await anext(chunks)

    # then: the first text delta is here while the upstream is still sending
    assert received.startswith(b"id: 1\nevent: message_start\n")
    assert b'"text_delta","text":"a"' in received
    assert b'"text":"b"' not in received
    assert fake_groq.completed_streams == 0
    rest = b"".join([chunk async for chunk in chunks])
    assert rest.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    await settled(conversation)


def _holding(marker: str, *, received: list[Any]) -> list[object]:
    """Live objects of this process holding history text with ``marker``: chat messages and
    the provider request's message dicts, apart from what the fake upstream recorded. (The
    stored messages themselves may be alive: a finished generation keeps its plan a while for
    same-process resumes.) Matched by exact type: touching a dead weak proxy among the objects
    would raise."""
    recorded: set[int] = set()
    pending: list[Any] = list(received)
    while pending:
        item = pending.pop()
        recorded.add(id(item))
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    gc.collect()
    return [
        o
        for o in gc.get_objects()
        if id(o) not in recorded
        and (
            (type(o) is ChatMessage and marker in o.content)
            or (
                type(o) is dict
                and "role" in o
                and "_state" not in o
                and marker in str(o.get("content"))
            )
        )
    ]


async def test_an_open_stream_holds_none_of_the_history_it_sent(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a first turn whose question ends with a marker, then an answer held open
    marker = f"marker-{uuid.uuid4().hex}"
    fake_groq.replies.append(Reply(text=["Noted."]))
    first = await send(conversation, auth, {"content": "Remember this: " + marker}).start()
    await first.read()
    held = Reply(text=["a", "b", "c"], hold_at=2)
    fake_groq.replies.append(held)

    # when: the second answer has started and is held mid-stream
    response = await send(conversation, auth, {"content": "And now?", "stream": True}).start()
    assert await asyncio.to_thread(fake_groq.wait_for_hold)

    # then: the history went to the provider, and nothing of it is kept while the stream is open
    sent = [m["content"] for m in fake_groq.received[-1].body["messages"]]
    assert any(marker in str(content) for content in sent)
    assert _holding(marker, received=[r.body for r in fake_groq.received]) == []
    held.hold.set()
    await response.read()
    await settled(conversation)


async def test_accept_event_stream_header_streams(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    response = await send(
        conversation, auth, {"content": "Hi"}, headers={"accept": "text/event-stream"}
    ).start()
    events = parse_sse(await response.read())

    assert response.status == 200
    assert events[-1].event == "message_stop"
    await settled(conversation)


async def test_a_turn_logs_its_access_line_and_no_line_of_the_http_client_s_own(
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: logs at INFO, production's level
    caplog.set_level(logging.INFO)

    # when
    response = await send(conversation, auth, {"content": "Hi"}).start()
    await response.read()
    await settled(conversation)

    # then: httpx's own line for the upstream request ("HTTP Request: POST ... 200 OK") is not
    # there beside the access line
    assert response.status == 201
    assert [record.name for record in caplog.records if record.name == "chatapi.access"]
    assert [record.getMessage() for record in caplog.records if record.name == "httpx"] == []


async def test_older_stream_path_always_streams(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    response = await send(conversation, auth, {"content": "Hi"}, path="/stream").start()
    events = parse_sse(await response.read())

    assert response.status == 200
    assert events[0].event == "message_start"
    assert events[-1].event == "message_stop"
    await settled(conversation)


async def test_non_streaming_reply_is_an_anthropic_message(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.append(
        Reply(reasoning=["Think."], text=["Hello", "!"], prompt_tokens=20, completion_tokens=4)
    )

    # when
    response = await send(conversation, auth, {"content": "Hi"}).start()
    body = await response.json()

    # then
    user_message, assistant = await stored(conversation)
    assert response.status == 201
    assert response.headers["content-type"] == "application/json"
    assert body["id"] == str(assistant.pk)
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["content"] == [
        {"type": "thinking", "thinking": "Think."},
        {"type": "text", "text": "Hello!"},
    ]
    assert body["model"] == MODEL
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    assert body["usage"] == {
        "input_tokens": 20,
        "output_tokens": 4,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert body["conversation_id"] == str(conversation.pk)
    assert body["user_message"]["id"] == str(user_message.pk)
    assert body["user_message"]["content"] == "Hi"
    assert body["cost_usd"] == "0.0000027000"
    assert body["latency_ms"] == assistant.latency_ms
    assert body["ttft_ms"] == assistant.ttft_ms
    assert assistant.status == "complete"


async def test_upstream_refusal_is_an_http_error_and_both_messages_are_kept(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.append(
        ErrorReply(
            400, message="The model `x` has been decommissioned", code="model_decommissioned"
        )
    )

    # when
    response = await send(conversation, auth, {"content": "Hi", "stream": True}).start()
    body = await response.json()

    # then
    assert response.status == 400
    assert body["type"] == "error"
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "The model `x` has been decommissioned",
    }
    assert body["request_id"] == response.headers["request-id"]
    user_message, assistant = await stored(conversation)
    assert (user_message.content, user_message.status) == ("Hi", "complete")
    assert assistant.status == "error"
    assert assistant.error == {
        "type": "invalid_request_error",
        "message": "The model `x` has been decommissioned",
    }
    assert (assistant.input_tokens, assistant.output_tokens, assistant.cost_usd) == (
        0,
        0,
        Decimal("0E-10"),
    )


async def test_rate_limit_passes_retry_after_to_the_client(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    fake_groq.replies.append(
        ErrorReply(
            429,
            message="Rate limit reached",
            type="tokens",
            code="rate_limit_exceeded",
            headers={"retry-after": "42"},
        )
    )

    response = await send(conversation, auth, {"content": "Hi"}).start()
    body = await response.json()

    assert response.status == 429
    assert response.headers["retry-after"] == "42"
    assert body["error"]["type"] == "rate_limit_error"


async def test_error_mid_stream_is_an_error_event_and_partial_content_is_kept(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.append(Reply(text=["Par", "tial", "never"], groq_error_after=2))

    # when
    response = await send(conversation, auth, {"content": "Hi", "stream": True}).start()
    events = parse_sse(await response.read())

    # then
    assert response.status == 200
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "error",
    ]
    assert events[-1].data == {
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "The model provider failed: upstream model crashed",
        },
    }
    _, assistant = await settled(conversation)
    assert assistant.status == "error"
    assert assistant.content == "Partial"
    assert assistant.error == events[-1].data["error"]
    assert assistant.usage_estimated is True
    assert assistant.output_tokens == 2


async def test_error_before_completion_without_streaming_is_a_502(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    fake_groq.replies.append(Reply(text=["a", "b", "c"], drop_after=1))

    response = await send(conversation, auth, {"content": "Hi"}).start()
    body = await response.json()

    assert response.status == 502
    assert body["error"] == {
        "type": "api_error",
        "message": "The model provider closed the connection mid-stream.",
    }
    _, assistant = await stored(conversation)
    assert (assistant.status, assistant.content) == ("error", "a")


async def test_ping_after_idle_upstream(
    settings, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    settings.SSE_PING_SECONDS = 0.1
    fake_groq.replies.append(Reply(text=["slow", " answer"], interval=0.35))

    # when
    response = await send(conversation, auth, {"content": "Hi", "stream": True}).start()
    events = parse_sse(await response.read())

    # then
    assert "ping" in [e.event for e in events]
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "message_stop"
    await settled(conversation)


async def test_context_keeps_the_newest_history_that_fits(
    settings, fake_groq: FakeGroq, user: User, auth: dict[str, str]
) -> None:
    # given: a model with a tiny context window and a long history
    await sync_to_async(make_chat_model)("tiny", context_window=120, max_output_tokens=40)
    settings.DEFAULT_CHAT_MODEL = "tiny"

    @sync_to_async
    def make_history() -> Conversation:
        conversation = conversation_create(owner=user, model="tiny", system_prompt="Sys.")
        for i in range(20):
            make_message(
                conversation=conversation,
                role=Message.Role.USER,
                content=f"question {i:02d} " + "x" * 40,
            )
            make_message(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                content=f"answer {i:02d} " + "y" * 40,
            )
        return conversation

    conversation = await make_history()

    # when
    response = await send(
        conversation, auth, {"content": "newest", "max_output_tokens": 40}
    ).start()
    await response.read()

    # then: the system prompt, the newest history that fits, the new message. The budget is
    # 120 - 40 (output) - 5 (system) - 6 (new) = 69 estimated tokens, and each old message
    # costs 17 (52 or 50 bytes / 4, plus 4): four fit.
    sent = fake_groq.received[0].body["messages"]
    assert sent == [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "question 18 " + "x" * 40},
        {"role": "assistant", "content": "answer 18 " + "y" * 40},
        {"role": "user", "content": "question 19 " + "x" * 40},
        {"role": "assistant", "content": "answer 19 " + "y" * 40},
        {"role": "user", "content": "newest"},
    ]


async def test_a_long_history_is_read_across_pages_newest_first_without_gaps(
    settings, fake_groq: FakeGroq, user: User, auth: dict[str, str]
) -> None:
    # given: 250 messages (the history is read 100 at a time), a third of them with the same
    # timestamp (ties are ordered by id), one not in the context (an error), and a window
    # that fits 200 of them: each costs 5 estimated tokens (4 bytes / 4 + 4), the new
    # message 6, the output 40
    await sync_to_async(make_chat_model)("mid", context_window=1046, max_output_tokens=40)
    settings.DEFAULT_CHAT_MODEL = "mid"

    @sync_to_async
    def make_history() -> tuple[Conversation, list[str]]:
        conversation = conversation_create(owner=user, model="mid")
        tied = None
        contents = []
        for i in range(251):
            role = Message.Role.USER if i % 2 == 0 else Message.Role.ASSISTANT
            message = make_message(conversation=conversation, role=role, content=f"m{i:03d}")
            if i == 7:
                Message.objects.filter(pk=message.pk).update(status=Message.Status.ERROR)
                continue
            if i == 100:
                tied = message.created_at
            elif 100 < i < 180:
                Message.objects.filter(pk=message.pk).update(created_at=tied)
            contents.append(message.content)
        return conversation, contents

    conversation, contents = await make_history()
    tied_in_id_order = await sync_to_async(
        lambda: list(
            Message.objects.filter(conversation=conversation, content__in=contents[99:179])
            .order_by("created_at", "id")
            .values_list("content", flat=True)
        )
    )()
    in_order = contents[:99] + tied_in_id_order + contents[179:]

    # when
    response = await send(
        conversation, auth, {"content": "newest", "max_output_tokens": 40}
    ).start()
    await response.read()

    # then: (1046 - 40 - 6) // 5 = 200 of the newest, in order
    sent = [m["content"] for m in fake_groq.received[0].body["messages"]]
    assert sent == [*in_order[-200:], "newest"]
    await settled(conversation)


async def test_message_too_long_for_the_context_is_a_400(
    settings, fake_groq: FakeGroq, user: User, auth: dict[str, str]
) -> None:
    await sync_to_async(make_chat_model)("tiny", context_window=50, max_output_tokens=40)
    conversation = await sync_to_async(conversation_create)(owner=user, model="tiny")

    response = await send(conversation, auth, {"content": "z" * 400}).start()
    body = await response.json()

    assert response.status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["details"] == {
        "fields": {"content": ["Too long for the model's context window."]}
    }
    assert await stored(conversation) == []
    assert fake_groq.received == []


CITY_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        "strict": True,
    },
}


async def test_a_response_format_is_this_turns_and_the_providers_to_hold(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.extend([Reply(text=['{"name": "Lisbon"}']), Reply(text=["Porto."])])

    # when: one turn with a JSON schema, the next without
    formatted = await send(
        conversation, auth, {"content": "A city?", "response_format": CITY_FORMAT}
    ).start()
    body = await formatted.json()
    plain = await send(conversation, auth, {"content": "Another?"}).start()
    await plain.read()

    # then
    assert formatted.status == 201
    assert body["content"] == [{"type": "text", "text": '{"name": "Lisbon"}'}]
    assert fake_groq.received[0].body["response_format"] == CITY_FORMAT
    assert "response_format" not in fake_groq.received[1].body


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "xml"},
        {"type": "json_object", "strict": True},
        {"type": "json_schema", "json_schema": {"name": "a city"}},
        "json",
    ],
)
async def test_a_malformed_response_format_is_a_400_naming_it(
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    response_format: Any,
) -> None:
    response = await send(
        conversation, auth, {"content": "A city?", "response_format": response_format}
    ).start()
    body = await response.json()

    assert response.status == 400
    (problem,) = body["error"]["details"]["fields"]["response_format"]
    assert problem.startswith("{type: text}, {type: json_object}, or {type: json_schema")
    assert await stored(conversation) == []
    assert fake_groq.received == []


# In estimated tokens: the name 1, the description 4, the schema 14 (55 bytes of compact JSON)
# and 4 of overhead: 23.
CLOCK = {
    "name": "now",
    "description": "The time now.",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
}


async def test_the_tools_take_their_room_in_the_context_window(
    settings, fake_groq: FakeGroq, user: User, auth: dict[str, str]
) -> None:
    # given: the window of the test above, and the same history, with a tool
    await sync_to_async(make_chat_model)("tiny", context_window=120, max_output_tokens=40)

    @sync_to_async
    def make_history() -> Conversation:
        conversation = conversation_create(
            owner=user, model="tiny", system_prompt="Sys.", tools=[CLOCK]
        )
        for _ in range(20):
            make_message(conversation=conversation, role=Message.Role.USER, content="q" * 48)
            make_message(conversation=conversation, role=Message.Role.ASSISTANT, content="a" * 48)
        return conversation

    conversation = await make_history()

    # when
    response = await send(
        conversation, auth, {"content": "newest", "max_output_tokens": 40}
    ).start()
    await response.read()

    # then: 69 estimated tokens were left for the history without the tool; the tool takes
    # 23, so two old messages of 16 tokens fit (32 of 46), not four (64 of 69)
    sent = fake_groq.received[0].body
    assert [m["content"] for m in sent["messages"]] == ["Sys.", "q" * 48, "a" * 48, "newest"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["now"]


async def test_a_message_that_fits_only_without_the_tools_is_a_400(
    fake_groq: FakeGroq, user: User, auth: dict[str, str]
) -> None:
    # given: 50 - 40 (output) = 10 tokens of room; the message takes 6, the tool 23
    await sync_to_async(make_chat_model)("tiny", context_window=50, max_output_tokens=40)
    conversation = await sync_to_async(conversation_create)(owner=user, model="tiny")

    fits = await send(conversation, auth, {"content": "newest"}).start()
    await fits.read()
    too_long = await send(conversation, auth, {"content": "newest", "tools": [CLOCK]}).start()
    body = await too_long.json()

    assert fits.status == 201
    assert too_long.status == 400
    assert body["error"]["message"] == (
        "The message is too long for tiny: its context window is 50 tokens, 40 are reserved for "
        "the answer and 23 for the tools' definitions."
    )
    assert len(fake_groq.received) == 1


async def test_two_concurrent_sends_one_generates_the_other_is_409(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.default_reply = Reply(text=["x", "y", "z"], interval=0.05)

    # when: two sends race in the same conversation
    first = send(conversation, auth, {"content": "one", "stream": True})
    second = send(conversation, auth, {"content": "two", "stream": True})
    await asyncio.gather(first.start(), second.start())
    bodies = await asyncio.gather(first.read(), second.read())

    # then: one streams to the end, the other is told which message is in progress
    (winner, winner_body), (loser, loser_body) = sorted(
        zip([first, second], bodies, strict=True), key=lambda pair: pair[0].status or 0
    )
    assert (winner.status, loser.status) == (200, 409)
    assert parse_sse(winner_body)[-1].event == "message_stop"
    messages = await settled(conversation)
    assert [m.status for m in messages] == ["complete", "complete"]
    error = json.loads(loser_body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["details"] == {"in_progress_message_id": str(messages[1].pk)}
    assert len(fake_groq.received) == 1


async def test_a_message_of_the_maximum_length_is_sent_and_one_character_more_is_400(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: 100,000 characters, 3 bytes each in UTF-8 (300 kB, well under the body cap; an
    # estimated 75,000 tokens, so the output budget is kept small enough to fit the window)
    longest = "€" * 100_000

    # when
    too_long = await send(conversation, auth, {"content": longest + "€"}).start()
    too_long_body = await too_long.json()
    stored_after_refusal = await stored(conversation)
    accepted = await send(
        conversation, auth, {"content": longest, "max_output_tokens": 1000}
    ).start()
    await accepted.read()

    # then
    assert too_long.status == 400
    assert too_long_body["error"] == {
        "type": "invalid_request_error",
        "message": "content: Ensure this field has no more than 100000 characters.",
        "details": {
            "fields": {"content": ["Ensure this field has no more than 100000 characters."]}
        },
    }
    assert stored_after_refusal == []
    assert accepted.status == 201
    user_message, assistant = await settled(conversation)
    assert user_message.content == longest
    assert assistant.status == "complete"
    (call,) = fake_groq.received
    assert call.body["messages"][-1] == {"role": "user", "content": longest}


async def test_a_maximum_message_of_emoji_in_ascii_escaped_json_is_under_the_body_cap(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: 100,000 characters outside the BMP, as Python's json.dumps writes them by default
    # (a surrogate pair of \\u escapes each: 12 bytes a character, 1.2 MB in all)
    longest = "😀" * 100_000
    request = send(conversation, auth, {"content": longest, "max_output_tokens": 1000})
    assert len(request.body) > 1_200_000

    # when
    accepted = await request.start()
    await accepted.read()

    # then
    assert accepted.status == 201
    user_message, assistant = await settled(conversation)
    assert user_message.content == longest
    assert assistant.status == "complete"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({}, "content"),
        ({"content": "hi", "colour": "red"}, "colour"),
        ({"content": "hi", "temperature": 3}, "temperature"),
        ({"content": "hi", "max_output_tokens": 10**6}, "max_output_tokens"),
        ({"content": "hi", "model": "nope/nope"}, "model"),
        ({"content": "hi", "stream": "sometimes"}, "stream"),
        ({"content": "a\x00b"}, "content"),
        ({"content": 42}, "content"),
        ({"content": "hi", "stream": "true"}, "stream"),
        ({"content": "hi", "stream": 1}, "stream"),
        ({"content": "hi", "temperature": "0.5"}, "temperature"),
    ],
)
async def test_invalid_sends_are_400_and_store_nothing(
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    body: dict[str, Any],
    field: str,
) -> None:
    response = await send(conversation, auth, body).start()
    payload = await response.json()

    assert response.status == 400
    assert payload["error"]["type"] == "invalid_request_error"
    assert field in payload["error"]["details"]["fields"]
    assert await stored(conversation) == []
    assert fake_groq.received == []


async def test_another_users_conversation_is_404_and_nothing_is_sent(
    fake_groq: FakeGroq, other_user: User, auth: dict[str, str]
) -> None:
    theirs = await sync_to_async(conversation_create)(owner=other_user, model=MODEL)

    response = await send(theirs, auth, {"content": "Hi", "stream": True}).start()
    body = await response.json()

    assert response.status == 404
    assert body["error"] == {"type": "not_found_error", "message": "Conversation not found."}
    assert await stored(theirs) == []
    assert fake_groq.received == []


async def test_unconfigured_provider_is_503_before_anything_is_stored(
    settings, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    settings.LLM_PROVIDERS = {
        "groq": {
            "class": "messaging.llm.openai_compat.GroqClient",
            "base_url": fake_groq.base_url,
            "api_key": None,
        }
    }

    response = await send(conversation, auth, {"content": "Hi"}).start()
    body = await response.json()

    assert response.status == 503
    assert body["error"]["message"] == (
        "The model provider 'groq' has no API key on this server (GROQ_API_KEY for Groq)."
    )
    assert await stored(conversation) == []


async def test_local_development_model_streams_offline(
    settings, user: User, auth: dict[str, str]
) -> None:
    # given: make run's catalog without a Groq key (the seeded local/dev-echo model, usable
    # because the "local" provider is configured)
    settings.LLM_PROVIDERS = {
        "local": {"class": "messaging.llm.dev.DevEchoProvider", "delay_seconds": 0.001}
    }
    conversation = await sync_to_async(conversation_create)(owner=user, model="local/dev-echo")

    # when
    response = await send(conversation, auth, {"content": "ping?", "stream": True}).start()
    events = parse_sse(await response.read())

    # then
    text = "".join(e.data["delta"]["text"] for e in events if e.event == "content_block_delta")
    assert text == (
        "This is chatapi's local development model (no GROQ_API_KEY is set), "
        "so this reply is canned. You said: ping?"
    )
    _, assistant = await settled(conversation)
    assert (assistant.status, assistant.model, assistant.cost_usd) == (
        "complete",
        "local/dev-echo",
        Decimal("0E-10"),
    )


async def test_concurrent_generations_per_user_are_limited(
    settings, fake_groq: FakeGroq, user: User, auth: dict[str, str]
) -> None:
    # given: one generation allowed at a time, and one running
    settings.RATE_LIMIT_CONCURRENT_STREAMS = 1
    first_conversation, second_conversation = [
        await sync_to_async(conversation_create)(owner=user, model=MODEL) for _ in range(2)
    ]
    fake_groq.replies.append(Reply(text=["a", "b", "c"], interval=0.1))
    running = await send(first_conversation, auth, {"content": "Hi", "stream": True}).start()

    # when: a second send meanwhile, and another after the first ended
    refused = await send(second_conversation, auth, {"content": "Hi"}).start()
    refused_body = await refused.json()
    stored_after_refusal = await stored(second_conversation)
    await running.read()
    await settled(first_conversation)
    accepted = await send(second_conversation, auth, {"content": "Hi"}).start()
    await accepted.read()

    # then
    assert refused.status == 429
    assert refused.headers["retry-after"] == "1"
    assert refused_body["error"] == {
        "type": "rate_limit_error",
        "message": "At most 1 answers can be generated at once; wait for one to finish, "
        "or cancel one.",
    }
    assert stored_after_refusal == []
    assert accepted.status == 201


async def test_title_model_titles_the_conversation_after_the_first_answer(
    settings, fake_groq: FakeGroq, user: User, auth: dict[str, str]
) -> None:
    # given: a title model, and an untitled conversation
    settings.TITLE_MODEL = MODEL
    untitled = await sync_to_async(conversation_create)(owner=user, model=MODEL)
    fake_groq.replies.extend(
        [
            Reply(text=["The", " answer"]),
            Reply(
                reasoning=["Short."],
                text=['"Planning a trip', ' to Lisbon."'],
                prompt_tokens=60,
                completion_tokens=8,
            ),
        ]
    )

    # when
    response = await send(untitled, auth, {"content": "Help me plan a trip to Lisbon"}).start()
    await response.read()
    title = await _eventually_titled(untitled)

    # then: the stream was not delayed by it, and the call is on the ledger
    assert title == "Planning a trip to Lisbon"
    assert len(fake_groq.received) == 2
    assert fake_groq.received[1].body["messages"][1] == {
        "role": "user",
        "content": "Help me plan a trip to Lisbon",
    }
    record = await sync_to_async(
        lambda: UsageRecord.objects.get(conversation_id=untitled.pk, kind="title")
    )()
    assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (60, 8, False)


async def _eventually_titled(conversation: Conversation, wait: float = 5.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        title = await sync_to_async(
            lambda: Conversation.objects.values_list("title", flat=True).get(pk=conversation.pk)
        )()
        if title != "Help me plan a trip to Lisbon":
            return str(title)
        assert loop.time() < deadline, "never titled"
        await asyncio.sleep(0.02)
