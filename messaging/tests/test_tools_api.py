"""Tool use through the API: a model's tool calls stream as Anthropic tool_use blocks byte for
byte, are stored as blocks, and the next message answers them with tool_result blocks that go
upstream as OpenAI tool messages after the reconstructed tool_calls. The provider is the fake
Groq on loopback; the app runs in-process under ASGI."""

from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from testsupport.asgi import ASGIRequest, message_post, parse_sse
from testsupport.factories import make_message
from testsupport.fake_groq import ErrorReply, FakeGroq, Reply, ToolCallReply
from testsupport.helpers import MODEL, settled
from usage.models import UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]

WEATHER = {
    "name": "get_weather",
    "description": "The weather now in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
WEATHER_UPSTREAM = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now in a city.",
        "parameters": WEATHER["input_schema"],
    },
}


@pytest.fixture
def conversation(user: User) -> Conversation:
    return conversation_create(owner=user, model=MODEL, system_prompt="Be brief.", tools=[WEATHER])


def weather_call(*pieces: str, call_id: str = "call_1") -> ToolCallReply:
    return ToolCallReply("get_weather", list(pieces), id=call_id)


async def test_a_tool_call_streams_as_a_tool_use_block_byte_for_byte(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: the model says a word, then calls the tool with its arguments in pieces
    fake_groq.replies.append(
        Reply(
            text=["Checking."],
            tool_calls=[weather_call('{"city":', ' "Lis', 'bon"}')],
            prompt_tokens=80,
            completion_tokens=20,
        )
    )

    # when
    response = await message_post(
        conversation, auth, {"content": "Weather in Lisbon?", "stream": True}
    ).start()
    raw = await response.read()

    # then: the text block, then the call, then the tool_use stop reason
    assert response.status == 200
    tail = raw[raw.index(b"id: 5\n") :]
    assert tail == (
        b"id: 5\nevent: content_block_start\n"
        b'data: {"type":"content_block_start","index":1,"content_block":'
        b'{"type":"tool_use","id":"call_1","name":"get_weather","input":{}}}\n\n'
        b"id: 6\nevent: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":1,"delta":'
        b'{"type":"input_json_delta","partial_json":"{\\"city\\": \\"Lisbon\\"}"}}\n\n'
        b"id: 7\nevent: content_block_stop\n"
        b'data: {"type":"content_block_stop","index":1}\n\n'
        b"id: 8\nevent: message_delta\n"
        b'data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
        b'"usage":{"input_tokens":80,"output_tokens":20}}\n\n'
        b'id: 9\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert [e.event for e in parse_sse(raw)][:4] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    ]
    _, assistant = await settled(conversation)
    assert (assistant.status, assistant.stop_reason, assistant.content, assistant.blocks) == (
        Message.Status.COMPLETE,
        "tool_use",
        "Checking.",
        [
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {"city": "Lisbon"},
            },
        ],
    )
    assert fake_groq.received[0].body["tools"] == [WEATHER_UPSTREAM]


async def test_a_full_round_trip_sends_the_exact_history_upstream_each_turn(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: the model calls two tools, then answers with their results
    fake_groq.replies.extend(
        [
            Reply(
                text=[],
                tool_calls=[
                    weather_call('{"city":"Lisbon"}', call_id="call_1"),
                    ToolCallReply("get_weather", ['{"city":"Porto"}'], id="call_2", whole=True),
                ],
            ),
            Reply(text=["Lisbon 18 C, Porto 15 C."]),
        ]
    )

    # when: the call, answered without streaming
    called = await message_post(conversation, auth, {"content": "Lisbon and Porto?"}).start()
    call_reply = await called.json()
    results = await message_post(
        conversation,
        auth,
        {
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C, sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "15 C, rain"}],
                },
            ]
        },
    ).start()
    final = await results.json()

    # then: the call's reply is an Anthropic Message with both tool_use blocks
    assert called.status == 201
    assert (call_reply["stop_reason"], call_reply["content"]) == (
        "tool_use",
        [
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {"city": "Lisbon"},
            },
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Porto"}},
        ],
    )
    assert fake_groq.received[0].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Lisbon and Porto?"},
    ]
    # ...and the results went upstream after the reconstructed calls
    assert results.status == 201
    assert final["content"] == [{"type": "text", "text": "Lisbon 18 C, Porto 15 C."}]
    assert final["stop_reason"] == "end_turn"
    assert fake_groq.received[1].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Lisbon and Porto?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Porto"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "15 C, rain"},
    ]
    assert fake_groq.received[1].body["tools"] == [WEATHER_UPSTREAM]
    messages = await settled(conversation)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Lisbon and Porto?"),
        ("assistant", ""),
        ("user", ""),
        ("assistant", "Lisbon 18 C, Porto 15 C."),
    ]
    assert messages[2].blocks == [
        {
            "type": "tool_result",
            "tool_use_id": "call_1",
            "content": "18 C, sunny",
            "is_error": False,
        },
        {
            "type": "tool_result",
            "tool_use_id": "call_2",
            "content": [{"type": "text", "text": "15 C, rain"}],
            "is_error": False,
        },
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "What now?",
            (
                "The previous answer called tools: the next message must carry a tool_result "
                "block for each of call_1, call_2."
            ),
        ),
        (
            [{"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"}],
            (
                "The tool_result blocks must answer exactly the open tool calls (call_1, call_2): "
                "missing a result for call_2."
            ),
        ),
        (
            [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "15 C"},
                {"type": "tool_result", "tool_use_id": "call_9", "content": "?"},
            ],
            (
                "The tool_result blocks must answer exactly the open tool calls (call_1, call_2): "
                "results for unknown tool calls call_9."
            ),
        ),
    ],
)
async def test_results_that_do_not_answer_the_open_calls_are_a_400_naming_them(
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    content: Any,
    message: str,
) -> None:
    # given: an answer that called two tools
    fake_groq.replies.append(
        Reply(text=[], tool_calls=[weather_call("{}"), weather_call("{}", call_id="call_2")])
    )
    await (await message_post(conversation, auth, {"content": "Weather?"}).start()).read()
    await settled(conversation)
    before = await Conversation.objects.aget(pk=conversation.pk)

    # when
    response = await message_post(conversation, auth, {"content": content}).start()
    body = await response.json()

    # then: nothing was stored or sent upstream, and the conversation is as it was
    assert response.status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == message
    assert body["error"]["details"] == {
        "fields": {"content": [message]},
        "open_tool_use_ids": ["call_1", "call_2"],
    }
    assert len(await settled(conversation)) == 2
    assert len(fake_groq.received) == 1
    after = await Conversation.objects.aget(pk=conversation.pk)
    assert (after.current_leaf_id, after.activity_at, after.last_message_at, after.title) == (
        before.current_leaf_id,
        before.activity_at,
        before.last_message_at,
        before.title,
    )


async def test_tool_results_without_open_calls_are_a_400(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    response = await message_post(
        conversation,
        auth,
        {"content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "x"}]},
    ).start()

    body = await response.json()
    assert response.status == 400
    assert body["error"]["message"] == (
        "There are no open tool calls to answer: tool_result blocks name call_1."
    )
    assert fake_groq.received == []


async def test_malformed_arguments_end_the_block_with_the_raw_text_kept(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: the model's arguments are not JSON
    fake_groq.replies.append(Reply(text=[], tool_calls=[weather_call("{city: Lis", "bon")]))

    # when
    response = await message_post(
        conversation, auth, {"content": "Weather?", "stream": True}
    ).start()
    events = parse_sse(await response.read())

    # then: the block opens and closes with no input delta, and the stream ends cleanly
    assert [e.data for e in events[1:]] == [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {},
            },
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"input_tokens": 42, "output_tokens": 3},
        },
        {"type": "message_stop"},
    ]
    _, assistant = await settled(conversation)
    assert assistant.blocks == [
        {
            "type": "tool_use",
            "id": "call_1",
            "name": "get_weather",
            "input": {},
            "is_error": True,
            "raw_input": "{city: Lisbon",
        }
    ]

    # and when the user reports the error, the model's own text goes back upstream
    fake_groq.replies.append(Reply(text=["Sorry."]))
    await (
        await message_post(
            conversation,
            auth,
            {
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_1",
                        "content": "Arguments are not JSON.",
                        "is_error": True,
                    }
                ]
            },
        ).start()
    ).read()
    assert fake_groq.received[1].body["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{city: Lisbon"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Error: Arguments are not JSON."},
    ]


async def test_tool_choice_and_service_tier_override_per_send(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    response = await message_post(
        conversation,
        auth,
        {
            "content": "Weather?",
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "service_tier": "auto",
        },
    ).start()
    await response.read()

    body = fake_groq.received[0].body
    assert (body["tool_choice"], body["service_tier"]) == (
        {"type": "function", "function": {"name": "get_weather"}},
        "auto",
    )


async def test_a_tool_choice_naming_no_tool_is_a_400(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    response = await message_post(
        conversation, auth, {"content": "Hi", "tool_choice": {"type": "tool", "name": "nope"}}
    ).start()

    body = await response.json()
    assert response.status == 400
    assert body["error"]["details"] == {
        "fields": {"tool_choice": ["tool_choice names nope, which is not one of the tools."]}
    }


async def test_cached_prompt_tokens_are_reported_as_anthropic_does_and_cost_half(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: 1,500 of the 2,000 prompt tokens came from Groq's cache
    fake_groq.replies.append(
        Reply(text=["Hi"], prompt_tokens=2000, cached_tokens=1500, completion_tokens=100)
    )

    # when
    response = await message_post(conversation, auth, {"content": "Hi", "stream": True}).start()
    events = parse_sse(await response.read())

    # then: Anthropic's input_tokens leaves out the cached part
    assert events[-2].data["usage"] == {
        "input_tokens": 500,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1500,
        "output_tokens": 100,
    }
    # (500 x 0.075 + 1,500 x 0.0375 + 100 x 0.30) / 10^6 = 123.75 / 10^6
    _, assistant = await settled(conversation)
    row = await sync_to_async(UsageRecord.objects.get)()
    assert (assistant.input_tokens, assistant.cached_input_tokens, assistant.cost_usd) == (
        2000,
        1500,
        Decimal("0.0001237500"),
    )
    assert (row.input_tokens, row.cached_input_tokens, row.cost_usd) == (
        2000,
        1500,
        Decimal("0.0001237500"),
    )
    assert assistant.provider_timings == {"queue": 0.01, "prompt": 0.002, "completion": 0.03}


async def test_the_json_reply_carries_the_cache_counts(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    fake_groq.replies.append(
        Reply(text=["Hi"], prompt_tokens=2000, cached_tokens=1500, completion_tokens=100)
    )

    body = await (await message_post(conversation, auth, {"content": "Hi"}).start()).json()

    assert body["usage"] == {
        "input_tokens": 500,
        "output_tokens": 100,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1500,
    }
    assert body["user_message"]["usage"]["cached_input_tokens"] is None


async def test_a_stop_sequence_ends_the_answer_before_it_and_is_named(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: the sequence spans two chunks
    fake_groq.replies.append(Reply(text=["The answer is 42.", " EN", "D and more", " text"]))

    # when
    response = await message_post(
        conversation, auth, {"content": "Hi", "stream": True, "stop_sequences": ["END"]}
    ).start()
    events = parse_sse(await response.read())

    # then
    text = "".join(e.data["delta"]["text"] for e in events if e.event == "content_block_delta")
    assert text == "The answer is 42. "
    assert events[-2].data["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    _, assistant = await settled(conversation)
    assert (assistant.content, assistant.stop_reason, assistant.stop_sequence) == (
        "The answer is 42. ",
        "stop_sequence",
        "END",
    )
    assert "stop" not in fake_groq.received[0].body


async def test_a_conversations_stop_sequences_apply_to_every_send(
    fake_groq: FakeGroq, user: User, auth: dict[str, str]
) -> None:
    conversation = await sync_to_async(conversation_create)(
        owner=user, model=MODEL, stop_sequences=["\n\n"]
    )
    fake_groq.replies.append(Reply(text=["One.\n", "\nTwo."]))

    body = await (await message_post(conversation, auth, {"content": "Hi"}).start()).json()

    assert (body["content"], body["stop_reason"], body["stop_sequence"]) == (
        [{"type": "text", "text": "One."}],
        "stop_sequence",
        "\n\n",
    )


async def test_a_stored_tool_call_replays_as_the_blocks_that_streamed_it(
    conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a finished answer whose event log is gone
    assistant = await sync_to_async(make_message)(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Checking.",
        blocks=[
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {"city": "Zürich"},
            },
        ],
        model=MODEL,
        stop_reason="tool_use",
        input_tokens=80,
        cached_input_tokens=64,
        output_tokens=20,
    )

    # when
    response = await ASGIRequest(
        "GET",
        f"/api/v1/conversations/{conversation.pk}/messages/{assistant.pk}/stream",
        headers=auth,
    ).start()
    events = parse_sse(await response.read())

    # then
    assert [e.data for e in events[1:]] == [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Checking."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city":"Zürich"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {
                "input_tokens": 16,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 64,
                "output_tokens": 20,
            },
        },
        {"type": "message_stop"},
    ]


@pytest.mark.parametrize(
    "failure",
    [
        [ErrorReply(503, "Service unavailable"), ErrorReply(503, "Service unavailable")],
        [ErrorReply(429, "Rate limit", code="rate_limit_exceeded", headers={"retry-after": "60"})],
        [ErrorReply(400, "The model was decommissioned", code="model_decommissioned")],
    ],
)
async def test_a_failure_before_the_first_token_moves_the_turn_to_the_fallback_model(
    fake_groq: FakeGroq, user: User, auth: dict[str, str], failure: list[ErrorReply]
) -> None:
    # given: the model fails past its retries; the fallback answers
    conversation = await sync_to_async(conversation_create)(
        owner=user, model=MODEL, fallback_models=["openai/gpt-oss-120b"]
    )
    fake_groq.replies.extend([*failure, Reply(text=["Hi"], prompt_tokens=42, completion_tokens=1)])

    # when
    response = await message_post(conversation, auth, {"content": "Hi", "stream": True}).start()
    events = parse_sse(await response.read())

    # then: one clean answer, from the fallback, priced at its prices
    assert response.status == 200
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0].data["message"]["model"] == "openai/gpt-oss-120b"
    assert [r.body["model"] for r in fake_groq.received] == [MODEL] * len(failure) + [
        "openai/gpt-oss-120b"
    ]
    _, assistant = await settled(conversation)
    row = await sync_to_async(UsageRecord.objects.get)()
    # (42 x 0.15 + 1 x 0.60) / 10^6
    assert (assistant.status, assistant.model, assistant.cost_usd) == (
        Message.Status.COMPLETE,
        "openai/gpt-oss-120b",
        Decimal("0.0000069000"),
    )
    assert (row.model, row.cost_usd) == ("openai/gpt-oss-120b", Decimal("0.0000069000"))


async def test_a_refusal_of_the_request_itself_does_not_fall_back(
    fake_groq: FakeGroq, user: User, auth: dict[str, str]
) -> None:
    conversation = await sync_to_async(conversation_create)(
        owner=user, model=MODEL, fallback_models=["openai/gpt-oss-120b"]
    )
    fake_groq.replies.append(ErrorReply(400, "Bad request"))

    response = await message_post(conversation, auth, {"content": "Hi"}).start()

    assert response.status == 400
    assert [r.body["model"] for r in fake_groq.received] == [MODEL]


async def test_fallback_models_must_be_usable_catalog_models(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    response = await message_post(
        conversation, auth, {"content": "Hi", "fallback_models": ["llama3-8b-8192"]}
    ).start()

    body = await response.json()
    assert response.status == 400
    assert list(body["error"]["details"]["fields"]) == ["fallback_models"]
    assert fake_groq.received == []
