"""The Anthropic- and OpenAI-compatible routes in-process (ASGI, the fake Groq on loopback):
what each translates, what is stored, and the errors in each API's shape. The official SDKs
against a live server: test_compat_sdks.py."""

import json
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from accounts.services import api_key_create
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.factories import make_message
from testsupport.fake_groq import ErrorReply, FakeGroq, Reply, ToolCallReply
from testsupport.helpers import MODEL, settled
from usage.models import UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]

ALL_SCOPES = ["conversations:read", "conversations:write", "usage:read"]
WEATHER = {
    "name": "get_weather",
    "description": "The weather now in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CALL = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Bern"}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3 C, fog"}


@pytest.fixture
def key(user: User) -> str:
    return api_key_create(user=user, name="sdk", scopes=ALL_SCOPES)[1]


def anthropic(key: str, body: dict[str, Any], **headers: str) -> ASGIRequest:
    return ASGIRequest(
        "POST",
        "/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", **headers},
        json_body=body,
    )


def openai(key: str, body: dict[str, Any], **headers: str) -> ASGIRequest:
    return ASGIRequest(
        "POST",
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", **headers},
        json_body=body,
    )


@sync_to_async
def conversation_of(response: ASGIRequest) -> Conversation:
    return Conversation.objects.get(pk=response.headers["chatapi-conversation-id"])


@sync_to_async
def ledger() -> list[UsageRecord]:
    return list(UsageRecord.objects.all())


async def test_a_stateless_anthropic_call_is_stored_as_a_new_conversation(
    fake_groq: FakeGroq, key: str, user: User
) -> None:
    # given
    fake_groq.replies.append(Reply(text=["Lisbon", "!"], prompt_tokens=30, completion_tokens=2))

    # when: a system prompt, an earlier exchange and the new question, text blocks too
    response = await anthropic(
        key,
        {
            "model": MODEL,
            "max_tokens": 100,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
                {"role": "user", "content": "A city?"},
            ],
            "temperature": 0.5,
            "top_p": 0.9,
            "stop_sequences": ["\n\n"],
            "metadata": {"user_id": "u-1"},
        },
    ).start()
    body = json.loads(await response.read())

    # then: an Anthropic Message...
    assert response.status == 200
    assert body == {
        "id": body["id"],
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Lisbon!"}],
        "model": MODEL,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 30,
            "output_tokens": 2,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    # ...from the whole context, with the settings passed on (the stop sequences are
    # chatapi's to enforce, not the provider's)...
    (sent,) = fake_groq.received
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "A city?"},
    ]
    assert (sent.body["temperature"], sent.body["top_p"]) == (0.5, 0.9)
    assert "stop" not in sent.body
    assert sent.body["max_completion_tokens"] == 100
    # ...stored as a new conversation of the key's owner, billed to the key
    conversation = await conversation_of(response)
    assert (conversation.owner_id, conversation.system_prompt, conversation.metadata) == (
        user.pk,
        "Be brief.",
        {"user_id": "u-1"},
    )
    messages = await settled(conversation)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", "A city?"),
        ("assistant", "Lisbon!"),
    ]
    assert str(messages[-1].pk) == body["id"]
    (row,) = await ledger()
    assert (row.conversation_id, row.input_tokens) == (conversation.pk, 30)
    assert row.api_key_id is not None


async def test_an_anthropic_stream_is_the_native_routes_events(
    fake_groq: FakeGroq, key: str
) -> None:
    fake_groq.replies.append(Reply(reasoning=["Hm."], text=["Hel", "lo"], prompt_tokens=7))

    response = await anthropic(
        key,
        {
            "model": MODEL,
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "Hi"}],
        },
    ).start()
    events = parse_sse(await response.read())

    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [e.id for e in events] == list(range(1, 11))
    assert events[0].data["message"]["id"] == str(
        (await settled(await conversation_of(response)))[-1].pk
    )


async def test_an_anthropic_tool_round_trip_sent_back_whole_is_stored_as_a_tree(
    fake_groq: FakeGroq, key: str
) -> None:
    # given: the model calls the tool, then answers with its result
    fake_groq.replies.extend(
        [
            Reply(
                text=["Checking."],
                tool_calls=[ToolCallReply("get_weather", ['{"city":', ' "Bern"}'], id="call_1")],
            ),
            Reply(text=["Foggy, 3 C."]),
        ]
    )
    tools = [{**WEATHER, "cache_control": {"type": "ephemeral"}}]
    ask = {"role": "user", "content": "Weather in Bern?"}

    # when: a stateless call with the tool, then the whole exchange sent back with the result
    called = await anthropic(
        key, {"model": MODEL, "max_tokens": 100, "tools": tools, "messages": [ask]}
    ).start()
    call_body = json.loads(await called.read())
    answered = await anthropic(
        key,
        {
            "model": MODEL,
            "max_tokens": 100,
            "tools": tools,
            "tool_choice": {"type": "auto"},
            "messages": [
                ask,
                {"role": "assistant", "content": call_body["content"]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "3 C, fog"}
                    ],
                },
            ],
        },
    ).start()
    answer_body = json.loads(await answered.read())

    # then: the call is an Anthropic tool_use block with its parsed input...
    assert (called.status, answered.status) == (200, 200)
    assert call_body["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Bern"}},
    ]
    assert call_body["stop_reason"] == "tool_use"
    assert answer_body["content"] == [{"type": "text", "text": "Foggy, 3 C."}]
    assert answer_body["stop_reason"] == "end_turn"
    # ...the provider got the tool as a function, then the call and its result...
    first, second = fake_groq.received
    assert first.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather now in a city.",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert second.body["tool_choice"] == "auto"
    assert second.body["messages"] == [
        {"role": "user", "content": "Weather in Bern?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Bern"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "3 C, fog"},
    ]
    # ...and the second call is a conversation of its own, the call and its result stored
    stored = await settled(await conversation_of(answered))
    assert [(m.role, m.status, m.stop_reason, m.blocks) for m in stored] == [
        ("user", "complete", "", [{"type": "text", "text": "Weather in Bern?"}]),
        ("assistant", "complete", "tool_use", call_body["content"]),
        (
            "user",
            "complete",
            "",
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": "3 C, fog",
                    "is_error": False,
                }
            ],
        ),
        ("assistant", "complete", "end_turn", [{"type": "text", "text": "Foggy, 3 C."}]),
    ]


async def test_an_anthropic_streamed_tool_call_and_its_result_by_the_header(
    fake_groq: FakeGroq, key: str
) -> None:
    # given
    fake_groq.replies.extend(
        [
            Reply(
                text=[],
                tool_calls=[ToolCallReply("get_weather", ['{"city": "Bern"}'], id="call_1")],
            ),
            Reply(text=["Foggy."]),
        ]
    )

    # when: the call streamed, then only its result sent in the stored conversation
    called = await anthropic(
        key,
        {
            "model": MODEL,
            "max_tokens": 100,
            "stream": True,
            "tools": [WEATHER],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "messages": [{"role": "user", "content": "Weather in Bern?"}],
        },
    ).start()
    events = parse_sse(await called.read())
    conversation_id = called.headers["chatapi-conversation-id"]
    await settled(await conversation_of(called))
    answered = await anthropic(
        key,
        {
            "model": MODEL,
            "max_tokens": 100,
            "tools": [WEATHER],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": [{"type": "text", "text": "3 C"}],
                        }
                    ],
                }
            ],
        },
        **{"chatapi-conversation-id": conversation_id},
    ).start()
    answer_body = json.loads(await answered.read())

    # then: Anthropic's tool_use events, the forced choice passed on, the result answered
    assert [(e.event, e.data.get("content_block") or e.data.get("delta")) for e in events[1:5]] == [
        (
            "content_block_start",
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
        ),
        ("content_block_delta", {"type": "input_json_delta", "partial_json": '{"city": "Bern"}'}),
        ("content_block_stop", None),
        ("message_delta", {"stop_reason": "tool_use", "stop_sequence": None}),
    ]
    assert fake_groq.received[0].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    assert answered.status == 200
    assert answer_body["content"] == [{"type": "text", "text": "Foggy."}]
    assert fake_groq.received[1].body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "3 C",
    }


async def test_a_result_for_an_unknown_call_by_the_header_stores_nothing(
    fake_groq: FakeGroq, key: str, user: User
) -> None:
    # given: a stored conversation whose last answer called nothing
    conversation = await sync_to_async(conversation_create)(owner=user, model=MODEL)
    await sync_to_async(make_message)(
        conversation=conversation, role=Message.Role.USER, content="Hi"
    )
    await sync_to_async(make_message)(
        conversation=conversation, role=Message.Role.ASSISTANT, content="Hello."
    )

    # when
    response = await anthropic(
        key,
        {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [RESULT]}]},
        **{"chatapi-conversation-id": str(conversation.pk)},
    ).start()
    error = json.loads(await response.read())

    # then: the native route's 400, in Anthropic's shape, and nothing added
    assert response.status == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert (
        "There are no open tool calls to answer: tool_result blocks name toolu_1."
        in (error["error"]["message"])
    )
    assert fake_groq.received == []
    assert len(await settled(conversation)) == 2


async def test_a_header_continues_a_stored_conversation_with_its_history(
    fake_groq: FakeGroq, key: str, user: User
) -> None:
    # given: a conversation with one exchange
    conversation = await sync_to_async(conversation_create)(
        owner=user, model=MODEL, system_prompt="Be brief."
    )
    await sync_to_async(make_message)(
        conversation=conversation, role=Message.Role.USER, content="Hi"
    )
    await sync_to_async(make_message)(
        conversation=conversation, role=Message.Role.ASSISTANT, content="Hello."
    )
    fake_groq.replies.append(Reply(text=["Porto"]))

    # when
    response = await openai(
        key,
        {"model": MODEL, "messages": [{"role": "user", "content": "Another?"}]},
        **{"chatapi-conversation-id": str(conversation.pk)},
    ).start()
    body = json.loads(await response.read())

    # then
    assert response.status == 200
    assert response.headers["chatapi-conversation-id"] == str(conversation.pk)
    assert body["choices"][0]["message"]["content"] == "Porto"
    assert fake_groq.received[0].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Another?"},
    ]
    assert len(await settled(conversation)) == 4


@pytest.mark.parametrize("whose", ["other", "missing", "malformed"])
async def test_another_users_conversation_in_the_header_is_the_same_404(
    fake_groq: FakeGroq, key: str, other_user: User, whose: str
) -> None:
    theirs = await sync_to_async(conversation_create)(owner=other_user, model=MODEL)
    conversation_id = {"other": str(theirs.pk), "missing": str(uuid.uuid4())}.get(whose, "x")

    response = await anthropic(
        key,
        {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]},
        **{"chatapi-conversation-id": conversation_id},
    ).start()
    body = json.loads(await response.read())

    assert response.status == 404
    assert body["type"] == "error"
    assert body["error"] == {"type": "not_found_error", "message": "Conversation not found."}
    assert fake_groq.received == []


async def test_an_openai_call_answers_a_chat_completion(fake_groq: FakeGroq, key: str) -> None:
    fake_groq.replies.append(
        Reply(text=["Hi", "!"], finish_reason="length", prompt_tokens=12, completion_tokens=2)
    )

    response = await openai(
        key,
        {
            "model": MODEL,
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            ],
            "max_tokens": 20,
            "stop": "END",
            "reasoning_effort": "low",
            "user": "u-1",
        },
    ).start()
    body = json.loads(await response.read())

    assert response.status == 200
    assert body == {
        "id": body["id"],
        "object": "chat.completion",
        "created": body["created"],
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi!", "refusal": None},
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
    }
    assert body["id"].startswith("chatcmpl-")
    sent = fake_groq.received[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (sent["max_completion_tokens"], sent["reasoning_effort"]) == (20, "low")
    assert "stop" not in sent


GET_WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "The weather now in a city.",
    "parameters": WEATHER["input_schema"],
}
FUNCTION = {"type": "function", "function": GET_WEATHER}


async def test_an_openai_tool_round_trip_with_tool_messages(fake_groq: FakeGroq, key: str) -> None:
    # given: the model calls two tools at once, then answers with their results
    fake_groq.replies.extend(
        [
            Reply(
                text=[],
                tool_calls=[
                    ToolCallReply("get_weather", ['{"city": "Bern"}'], id="call_1"),
                    ToolCallReply("get_weather", ['{"city":', ' "Chur"}'], id="call_2"),
                ],
            ),
            Reply(text=["Fog in Bern, sun in Chur."]),
        ]
    )
    ask = {"role": "user", "content": "Bern and Chur?"}

    # when: the calls, then the answer sent back as it came with one tool message per call
    called = await openai(
        key,
        {"model": MODEL, "tools": [FUNCTION], "tool_choice": "required", "messages": [ask]},
    ).start()
    call_body = json.loads(await called.read())
    answered = await openai(
        key,
        {
            "model": MODEL,
            "tools": [FUNCTION],
            "parallel_tool_calls": True,
            "messages": [
                {"role": "system", "content": "Be brief."},
                ask,
                call_body["choices"][0]["message"],
                {"role": "tool", "tool_call_id": "call_1", "content": "3 C, fog"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "9 C"}],
                },
            ],
        },
    ).start()
    answer_body = json.loads(await answered.read())

    # then: OpenAI's tool_calls, with null content and finish_reason tool_calls...
    assert (called.status, answered.status) == (200, 200)
    assert call_body["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Bern"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Chur"}'},
            },
        ],
    }
    assert call_body["choices"][0]["finish_reason"] == "tool_calls"
    assert answer_body["choices"][0]["message"]["content"] == "Fog in Bern, sun in Chur."
    # ...the provider got the tool, the forced choice, then both results...
    first, second = fake_groq.received
    assert (first.body["tools"], first.body["tool_choice"]) == ([FUNCTION], "required")
    assert second.body["messages"][-2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "3 C, fog"},
        {"role": "tool", "tool_call_id": "call_2", "content": "9 C"},
    ]
    # ...and the results are one user message of the stored tree
    stored = await settled(await conversation_of(answered))
    assert [(m.role, [b["type"] for b in m.blocks]) for m in stored] == [
        ("user", ["text"]),
        ("assistant", ["tool_use", "tool_use"]),
        ("user", ["tool_result", "tool_result"]),
        ("assistant", ["text"]),
    ]


async def test_an_openai_stream_of_tool_calls_is_tool_call_deltas(
    fake_groq: FakeGroq, key: str
) -> None:
    fake_groq.replies.append(
        Reply(
            text=["On it."],
            tool_calls=[
                ToolCallReply("get_weather", ['{"city":', ' "Bern"}'], id="call_1"),
                ToolCallReply("get_weather", ['{"city": "Chur"}'], id="call_2", whole=True),
            ],
        )
    )

    response = await openai(
        key,
        {
            "model": MODEL,
            "stream": True,
            "tools": [FUNCTION],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "messages": [{"role": "user", "content": "Bern and Chur?"}],
        },
    ).start()
    lines = [
        json.loads(line[len("data: ") :])
        for line in (await response.read()).decode().split("\n\n")
        if line.startswith("data: {")
    ]

    assert response.status == 200
    assert fake_groq.received[0].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in lines]
    # (a read may bring several of the provider's pieces: they come as one delta)
    starts = [d["tool_calls"][0] for d, _ in deltas if "id" in d.get("tool_calls", [{}])[0]]
    arguments = {0: "", 1: ""}
    for delta, _ in deltas:
        for call in delta.get("tool_calls", []):
            arguments[call["index"]] += call["function"]["arguments"]
    assert deltas[0] == ({"role": "assistant", "content": ""}, None)
    assert "".join(d.get("content", "") for d, _ in deltas[1:]) == "On it."
    assert starts == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {
            "index": 1,
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
    ]
    assert arguments == {0: '{"city": "Bern"}', 1: '{"city": "Chur"}'}
    assert [d for d, _ in deltas if "tool_calls" in d] == sorted(
        (d for d, _ in deltas if "tool_calls" in d), key=lambda d: d["tool_calls"][0]["index"]
    )
    assert deltas[-1] == ({}, "tool_calls")


CITY_SCHEMA = {
    "name": "city",
    "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
    "strict": True,
}


@pytest.mark.parametrize(
    ("response_format", "sent"),
    [
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "json_schema": CITY_SCHEMA},
            {"type": "json_schema", "json_schema": CITY_SCHEMA},
        ),
        ({"type": "text"}, None),
        (None, None),
    ],
)
async def test_an_openai_response_format_is_the_providers_to_hold(
    fake_groq: FakeGroq, key: str, response_format: dict[str, Any] | None, sent: Any
) -> None:
    fake_groq.replies.append(Reply(text=['{"name":', ' "Lisbon"}']))

    response = await openai(
        key,
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "A city, as JSON?"}],
            "response_format": response_format,
        },
    ).start()
    body = json.loads(await response.read())

    assert response.status == 200
    assert body["choices"][0]["message"]["content"] == '{"name": "Lisbon"}'
    assert fake_groq.received[0].body.get("response_format") == sent


async def test_a_response_format_the_model_does_not_offer_is_the_providers_400(
    fake_groq: FakeGroq, key: str
) -> None:
    refusal = "response_format `json_schema` is not supported with this model"
    fake_groq.replies.append(ErrorReply(400, message=refusal))

    response = await openai(
        key,
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "A city?"}],
            "response_format": {"type": "json_schema", "json_schema": CITY_SCHEMA},
        },
    ).start()
    error = json.loads(await response.read())["error"]

    assert response.status == 400
    assert (error["type"], error["message"]) == ("invalid_request_error", refusal)
    stored = await settled(await conversation_of(response))
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "error")]


def _bern_called(*, arguments: str, then: dict[str, Any]) -> list[dict[str, Any]]:
    """A question, an answer that called get_weather with these arguments, and ``then``."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    return [
        {"role": "user", "content": "Bern?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        then,
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"functions": [GET_WEATHER]}, "functions is not supported"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools.0: a function tool"),
        (
            {"tools": [{**FUNCTION, "function": {**GET_WEATHER, "strict": True}}]},
            "tools.0.function.strict: true is not offered",
        ),
        (
            {"tools": [{**FUNCTION, "function": {"name": "bad name!"}}]},
            "tools.0.function.name:",
        ),
        (
            {"tools": [FUNCTION], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "x, which is not one of the tools",
        ),
        ({"tool_choice": "required"}, "Only with tools."),
        ({"tools": [FUNCTION], "parallel_tool_calls": False}, "Only true"),
        ({"response_format": {"type": "xml"}}, "{type: text}, {type: json_object}, or"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a city"}}},
            "with the name matching",
        ),
        (
            {"response_format": {"type": "json_object", "schema": {}}},
            "{type: text}, {type: json_object}, or",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "tool", "tool_call_id": "call_1", "content": "x"},
                ]
            },
            "messages.1: There are no open tool calls to answer",
        ),
        (
            {
                "messages": _bern_called(
                    arguments="Bern",
                    then={"role": "tool", "tool_call_id": "call_1", "content": "x"},
                )
            },
            "messages.1.tool_calls.0.function.arguments must be a JSON object",
        ),
        (
            {"messages": _bern_called(arguments="{}", then={"role": "user", "content": "Well?"})},
            "messages.2: The previous answer called tools",
        ),
    ],
)
async def test_openai_tool_and_format_errors_are_openais_400(
    fake_groq: FakeGroq, key: str, body: dict[str, Any], fragment: str
) -> None:
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}

    response = await openai(key, request | body).start()
    error = json.loads(await response.read())["error"]

    assert response.status == 400
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]
    assert fake_groq.received == []


async def test_anthropic_stop_sequences_end_the_answer_before_the_match_and_name_it(
    fake_groq: FakeGroq, key: str
) -> None:
    # given: the match spans two chunks
    fake_groq.replies.append(Reply(text=["One, two, th", "ree, four"], completion_tokens=6))

    # when
    response = await anthropic(
        key,
        {
            "model": MODEL,
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "Count"}],
            "stop_sequences": ["four", "three"],
        },
    ).start()
    body = json.loads(await response.read())

    # then
    assert response.status == 200
    assert (body["content"], body["stop_reason"], body["stop_sequence"]) == (
        [{"type": "text", "text": "One, two, "}],
        "stop_sequence",
        "three",
    )
    assert "stop" not in fake_groq.received[0].body


async def test_openai_stop_ends_the_answer_before_the_match_with_finish_reason_stop(
    fake_groq: FakeGroq, key: str
) -> None:
    # given
    fake_groq.replies.append(Reply(text=["Hi! EN", "D and more"], completion_tokens=5))

    # when
    response = await openai(
        key,
        {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "stop": "END"},
    ).start()
    body = json.loads(await response.read())

    # then
    assert response.status == 200
    assert body["choices"][0]["message"]["content"] == "Hi! "
    assert body["choices"][0]["finish_reason"] == "stop"
    assert "stop" not in fake_groq.received[0].body


async def test_an_openai_stream_is_chunks_with_usage_and_done(
    fake_groq: FakeGroq, key: str
) -> None:
    fake_groq.replies.append(Reply(text=["Hel", "lo"], prompt_tokens=9, completion_tokens=2))

    response = await openai(
        key,
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ).start()
    raw = (await response.read()).decode()

    assert response.status == 200
    lines = [line for line in raw.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert [c["choices"][0]["delta"] if c["choices"] else None for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {},
        None,
    ]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    assert [c["usage"] for c in chunks[:-1]] == [None] * 4


async def test_an_openai_stream_without_include_usage_has_no_usage_chunk(
    fake_groq: FakeGroq, key: str
) -> None:
    fake_groq.replies.append(Reply(text=["Hi"]))

    response = await openai(
        key, {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    ).start()
    lines = [line for line in (await response.read()).decode().split("\n\n") if line]

    assert lines[-1] == "data: [DONE]"
    assert all("usage" not in json.loads(line[6:]) for line in lines[:-1])


async def test_an_openai_stream_that_fails_midway_ends_with_an_error_line(
    fake_groq: FakeGroq, key: str
) -> None:
    fake_groq.replies.append(Reply(text=["a", "b", "c"], groq_error_after=1))

    response = await openai(
        key, {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    ).start()
    lines = [line for line in (await response.read()).decode().split("\n\n") if line]

    last = json.loads(lines[-1].removeprefix("data: "))
    assert set(last) == {"error"}
    assert last["error"]["type"] == "api_error"


async def test_count_tokens_uses_the_context_windows_estimate(key: str) -> None:
    response = await ASGIRequest(
        "POST",
        "/v1/messages/count_tokens",
        headers={"x-api-key": key},
        json_body={
            "model": MODEL,
            "system": "Be brief.",  # 9 bytes: 3 + 4
            "messages": [{"role": "user", "content": "Hello there!"}],  # 12 bytes: 3 + 4
            # the name 3, the description 7, the schema 15 (57 bytes of compact JSON), 4
            "tools": [WEATHER],
        },
    ).start()

    assert response.status == 200
    assert json.loads(await response.read()) == {"input_tokens": 14 + 29}


async def test_models_are_anthropics_page_or_openais_list_by_header(key: str) -> None:
    anthropic_page = await ASGIRequest(
        "GET", "/v1/models", headers={"x-api-key": key, "anthropic-version": "2023-06-01"}
    ).start()
    openai_list = await ASGIRequest(
        "GET", "/v1/models", headers={"authorization": f"Bearer {key}"}
    ).start()
    page, listing = json.loads(await anthropic_page.read()), json.loads(await openai_list.read())

    ids = [m["id"] for m in page["data"]]
    assert MODEL in ids
    assert (page["has_more"], page["first_id"], page["last_id"]) == (False, ids[0], ids[-1])
    assert set(page["data"][0]) == {"type", "id", "display_name", "created_at"}
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ids
    assert set(listing["data"][0]) == {"id", "object", "created", "owned_by"}


@pytest.mark.parametrize(
    ("body", "status", "error_type", "fragment"),
    [
        ({"model": "nope/nope"}, 404, "not_found_error", "nope/nope"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]},
            400,
            "invalid_request_error",
            "web_search_20250305 tools are not offered",
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_time"}},
            400,
            "invalid_request_error",
            "get_time, which is not one of the tools",
        ),
        ({"thinking": {"type": "enabled"}}, 400, "invalid_request_error", "thinking is not"),
        (
            {
                "messages": [
                    {"role": "user", "content": "Weather?"},
                    {"role": "assistant", "content": [CALL]},
                    {"role": "user", "content": "Well?"},
                ]
            },
            400,
            "invalid_request_error",
            (
                "messages.2: The previous answer called tools: the next message must carry a "
                "tool_result block for each of toolu_1."
            ),
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello."},
                    {"role": "user", "content": [RESULT]},
                ]
            },
            400,
            "invalid_request_error",
            "messages.2: There are no open tool calls to answer",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "Weather?"},
                    {"role": "assistant", "content": [{**CALL, "input": "Bern"}]},
                    {"role": "user", "content": [RESULT]},
                ]
            },
            400,
            "invalid_request_error",
            "content[0].input must be an object",
        ),
        ({"max_tokens": 0}, 400, "invalid_request_error", "max_tokens"),
        ({"max_tokens": 10**6}, 400, "invalid_request_error", "at most"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            400,
            "invalid_request_error",
            "content[0].type must be text or tool_result (got 'image')",
        ),
        ({"metadata": {str(i): i for i in range(65)}}, 400, "invalid_request_error", "64 keys"),
        ({"system": "x" * 32_001}, 400, "invalid_request_error", "32000 characters"),
        (
            {"messages": [{"role": "assistant", "content": "Prefill"}]},
            400,
            "invalid_request_error",
            "last message",
        ),
    ],
)
async def test_anthropic_errors_are_anthropics_shape(
    fake_groq: FakeGroq,
    key: str,
    body: dict[str, Any],
    status: int,
    error_type: str,
    fragment: str,
) -> None:
    request = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}

    response = await anthropic(key, request | body).start()
    error = json.loads(await response.read())

    assert response.status == status
    assert error["type"] == "error"
    assert error["error"]["type"] == error_type
    assert fragment in json.dumps(error["error"])
    assert error["request_id"] == response.headers["request-id"]
    assert fake_groq.received == []


async def test_openai_errors_are_openais_shape(fake_groq: FakeGroq, key: str) -> None:
    unknown_model = await openai(
        key, {"model": "nope/nope", "messages": [{"role": "user", "content": "Hi"}]}
    ).start()
    bad_field = await openai(key, {"model": MODEL, "messages": [], "n": 1}).start()
    long_system = await openai(
        key,
        {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "x" * 16_000},
                {"role": "developer", "content": "y" * 15_999},
                {"role": "user", "content": "Hi"},
            ],
        },
    ).start()
    no_key = await ASGIRequest(
        "POST", "/v1/chat/completions", json_body={"model": MODEL, "messages": []}
    ).start()

    assert unknown_model.status == 404
    assert json.loads(await unknown_model.read())["error"] | {"message": ""} == {
        "message": "",
        "type": "not_found_error",
        "param": None,
        "code": "model_not_found",
    }
    assert bad_field.status == 400
    assert json.loads(await bad_field.read())["error"]["param"] == "messages"
    assert long_system.status == 400
    assert json.loads(await long_system.read())["error"]["message"] == (
        "messages: The system messages exceed 32000 characters."
    )
    assert no_key.status == 401
    assert json.loads(await no_key.read())["error"]["code"] == "invalid_api_key"


async def test_an_upstream_refusal_is_answered_before_the_first_byte(
    fake_groq: FakeGroq, key: str
) -> None:
    fake_groq.replies.extend([ErrorReply(503, message="over capacity")] * 2)  # and its retry

    response = await anthropic(
        key,
        {
            "model": MODEL,
            "max_tokens": 10,
            "stream": True,
            "messages": [{"role": "user", "content": "Hi"}],
        },
    ).start()
    error = json.loads(await response.read())

    assert response.status == 529
    assert error["error"]["type"] == "overloaded_error"
    assert "chatapi-conversation-id" in response.headers


async def test_a_key_without_write_scope_cannot_send(fake_groq: FakeGroq, user: User) -> None:
    _, secret = await sync_to_async(api_key_create)(
        user=user, name="reader", scopes=["conversations:read"]
    )

    response = await anthropic(
        secret, {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}
    ).start()
    error = json.loads(await response.read())

    assert response.status == 403
    assert error["error"] == {
        "type": "permission_error",
        "message": "This API key lacks the scope 'conversations:write'.",
        "details": {"required_scope": "conversations:write"},
    }


async def test_a_stateless_retry_with_an_idempotency_key_repeats_the_turn(
    fake_groq: FakeGroq, key: str
) -> None:
    fake_groq.replies.append(Reply(text=["Once"]))
    body = {
        "model": MODEL,
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Again?"},
        ],
    }

    first = await anthropic(key, body, **{"idempotency-key": "k-1"}).start()
    first_body = json.loads(await first.read())
    retry = await anthropic(key, body, **{"idempotency-key": "k-1"}).start()
    retry_body = json.loads(await retry.read())

    assert (first.status, retry.status) == (200, 200)
    assert retry_body == first_body
    assert retry.headers["chatapi-conversation-id"] == first.headers["chatapi-conversation-id"]
    assert len(fake_groq.received) == 1
    assert len(await settled(await conversation_of(first))) == 4
