"""The official ``anthropic`` and ``openai`` Python SDKs, unchanged, against a live server
(daphne on loopback, the fake Groq upstream), authenticated by a chatapi API key: what the
docs promise in docs/compat.md."""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pydantic
import pytest

from accounts.models import User
from accounts.services import api_key_create
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from testsupport.fake_groq import FakeGroq, Reply, ToolCallReply
from testsupport.servers import LiveServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live_database]

MODEL = "openai/gpt-oss-20b"
ALL_SCOPES = ["conversations:read", "conversations:write", "usage:read"]


# A reasoning model calls get_weather (its arguments in pieces), then answers with the result.
BERN_CALL_THEN_ANSWER = [
    Reply(
        reasoning=["Need the weather."],
        text=[],
        tool_calls=[ToolCallReply("get_weather", ['{"city":', ' "Bern"}'], id="call_1")],
    ),
    Reply(text=["Foggy, 3 C."]),
]
# The call and its result, as the provider is sent them back.
BERN_CALL_SENT_BACK = [
    {
        "role": "assistant",
        "content": None,
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


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeGroq]:
    fake = FakeGroq().start()
    yield fake
    fake.stop()


def _server(upstream: FakeGroq, log_path: Path, **env: str) -> LiveServer:
    return LiveServer(
        env={
            "GROQ_BASE_URL": upstream.base_url,
            "GROQ_API_KEY": "gsk_test",
            "LLM_MAX_RETRIES": "0",
            "LOG_LEVEL": "INFO",
        }
        | env,
        log_path=log_path,
    )


@pytest.fixture(scope="module")
def server(
    django_db_setup: None, upstream: FakeGroq, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server for the module, without the per-minute send limit."""
    live = _server(
        upstream,
        tmp_path_factory.mktemp("sdk") / "server.log",
        RATE_LIMIT_SENDS_PER_MINUTE="0",
    )
    yield live
    live.stop()


@pytest.fixture(autouse=True)
def fresh_upstream(upstream: FakeGroq) -> None:
    upstream.replies.clear()
    upstream.received.clear()


@pytest.fixture
def key(user: User) -> str:
    return api_key_create(user=user, name="sdk", scopes=ALL_SCOPES)[1]


@pytest.fixture
def claude(server: LiveServer, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)


@pytest.fixture
def gpt(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def _settled(conversation_id: str, wait: float = 10.0) -> list[Message]:
    deadline = time.monotonic() + wait
    while True:
        messages = list(
            Message.objects.filter(conversation_id=conversation_id).order_by("created_at", "id")
        )
        if all(m.status != Message.Status.IN_PROGRESS for m in messages):
            return messages
        assert time.monotonic() < deadline, "the answer never settled"
        time.sleep(0.05)


# --- Anthropic ------------------------------------------------------------------------------


def test_anthropic_create_and_continue_by_header(
    claude: anthropic.Anthropic, upstream: FakeGroq
) -> None:
    # given
    upstream.replies.extend(
        [Reply(text=["Lis", "bon"], prompt_tokens=20), Reply(text=["Porto"], prompt_tokens=30)]
    )

    # when: a stateless call, then the next turn by the conversation header
    first = claude.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "A city?"}],
    )
    conversation_id = first.headers["chatapi-conversation-id"]
    message = first.parse()
    _settled(conversation_id)
    second = claude.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": "Another?"}],
        extra_headers={"chatapi-conversation-id": conversation_id},
    )

    # then
    assert isinstance(message, anthropic.types.Message)
    assert [block.text for block in message.content if block.type == "text"] == ["Lisbon"]
    assert (message.stop_reason, message.usage.input_tokens) == ("end_turn", 20)
    assert [block.text for block in second.content if block.type == "text"] == ["Porto"]
    assert upstream.received[1].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "A city?"},
        {"role": "assistant", "content": "Lisbon"},
        {"role": "user", "content": "Another?"},
    ]
    stored = _settled(conversation_id)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "A city?"),
        ("assistant", "Lisbon"),
        ("user", "Another?"),
        ("assistant", "Porto"),
    ]


def test_anthropic_stream_with_the_sdks_accumulator(
    claude: anthropic.Anthropic, upstream: FakeGroq
) -> None:
    upstream.replies.append(
        Reply(
            reasoning=["Think", "ing."],
            text=["Hel", "lo", "!"],
            prompt_tokens=11,
            completion_tokens=7,
            interval=0.01,
        )
    )

    with claude.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "Hello!"
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Thinking."  # type: ignore[union-attr]
    assert final.content[1].text == "Hello!"  # type: ignore[union-attr]
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == (
        "end_turn",
        11,
        7,
    )


def test_anthropic_tool_use_with_the_sdk_as_its_docs_show(
    claude: anthropic.Anthropic, upstream: FakeGroq
) -> None:
    # given: a reasoning model calls the tool (its arguments in pieces), then answers
    upstream.replies.extend(BERN_CALL_THEN_ANSWER)
    tools: list[anthropic.types.ToolParam] = [
        {
            "name": "get_weather",
            "description": "The weather now in a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Bern?"}]

    # when: the call streamed and accumulated by the SDK, then the SDK's own answer object
    # appended as it is and the result sent back (the loop Anthropic's tool use guide shows)
    with claude.messages.stream(
        model=MODEL, max_tokens=200, tools=tools, messages=messages
    ) as stream:
        called = stream.get_final_message()
    messages += [
        {"role": "assistant", "content": called.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": block.id, "content": "3 C, fog"}
                for block in called.content
                if block.type == "tool_use"
            ],
        },
    ]
    answered = claude.messages.create(model=MODEL, max_tokens=200, tools=tools, messages=messages)

    # then
    assert called.stop_reason == "tool_use"
    assert [block.type for block in called.content] == ["thinking", "tool_use"]
    tool_use = called.content[1]
    assert isinstance(tool_use, anthropic.types.ToolUseBlock)
    assert (tool_use.id, tool_use.name, tool_use.input) == (
        "call_1",
        "get_weather",
        {"city": "Bern"},
    )
    assert answered.stop_reason == "end_turn"
    assert [block.text for block in answered.content if block.type == "text"] == ["Foggy, 3 C."]
    assert upstream.received[1].body["messages"][-2:] == BERN_CALL_SENT_BACK


def test_anthropic_count_tokens_and_models(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(
        model=MODEL, system="Be brief.", messages=[{"role": "user", "content": "Hello there!"}]
    )
    models = list(claude.models.list())
    one = claude.models.retrieve(MODEL)

    assert counted.input_tokens == 14  # (3 + 4) + (3 + 4): bytes / 4 plus 4 per message
    assert MODEL in [model.id for model in models]
    assert all(model.type == "model" for model in models)
    assert (one.id, one.type) == (MODEL, "model")


def test_anthropic_sdk_exceptions(
    server: LiveServer, claude: anthropic.Anthropic, user: User, other_user: User
) -> None:
    # given: a read-only key, and another user's conversation
    _, reader = api_key_create(user=user, name="reader", scopes=["conversations:read"])
    theirs = conversation_create(owner=other_user, model=MODEL)
    hello = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}

    # then
    with pytest.raises(anthropic.AuthenticationError) as unauthenticated:
        anthropic.Anthropic(
            base_url=server.url, api_key="sk-chatapi-" + "x" * 43, max_retries=0
        ).messages.create(**hello)  # type: ignore[call-overload]
    with pytest.raises(anthropic.PermissionDeniedError) as forbidden:
        anthropic.Anthropic(base_url=server.url, api_key=reader, max_retries=0).messages.create(
            **hello  # type: ignore[call-overload]
        )
    with pytest.raises(anthropic.NotFoundError) as unknown_model:
        claude.messages.create(**{**hello, "model": "nope/nope"})  # type: ignore[call-overload]
    for conversation_id in (str(theirs.pk), str(uuid.uuid4())):
        with pytest.raises(anthropic.NotFoundError) as not_yours:
            claude.messages.create(
                **hello,  # type: ignore[call-overload]
                extra_headers={"chatapi-conversation-id": conversation_id},
            )
        assert not_yours.value.body["error"] == {  # type: ignore[index]
            "type": "not_found_error",
            "message": "Conversation not found.",
        }
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(
            **hello,  # type: ignore[call-overload]
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )

    assert unauthenticated.value.status_code == 401
    assert forbidden.value.body["error"]["message"] == (  # type: ignore[index]
        "This API key lacks the scope 'conversations:write'."
    )
    assert unknown_model.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert Conversation.objects.filter(owner=user).count() == 0


# --- OpenAI ---------------------------------------------------------------------------------


def test_openai_create_and_continue_by_header(gpt: openai.OpenAI, upstream: FakeGroq) -> None:
    upstream.replies.extend([Reply(text=["Lisbon"]), Reply(text=["Porto"], finish_reason="length")])

    first = gpt.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "A city?"},
        ],
        max_completion_tokens=50,
    )
    conversation_id = first.headers["chatapi-conversation-id"]
    completion = first.parse()
    _settled(conversation_id)
    second = gpt.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Another?"}],
        extra_headers={"chatapi-conversation-id": conversation_id},
    )

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Lisbon"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 1
    assert second.choices[0].message.content == "Porto"
    assert second.choices[0].finish_reason == "length"
    assert [m["role"] for m in upstream.received[1].body["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]


def test_openai_stream_chunks_with_usage(gpt: openai.OpenAI, upstream: FakeGroq) -> None:
    upstream.replies.append(
        Reply(text=["Hel", "lo", "!"], prompt_tokens=9, completion_tokens=3, interval=0.01)
    )

    stream = gpt.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello!"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 3)
    assert len({c.id for c in chunks}) == 1


def test_openai_tool_calls_with_the_sdk_as_its_docs_show(
    gpt: openai.OpenAI, upstream: FakeGroq
) -> None:
    # given: the model calls the tool (its arguments in pieces), then answers
    upstream.replies.extend(BERN_CALL_THEN_ANSWER)
    tools: list[openai.types.chat.ChatCompletionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather now in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "Bern?"}]

    # when: the call streamed and accumulated by the SDK, then its message appended as it is
    # with one tool message per call (the loop of OpenAI's function calling guide)
    with gpt.chat.completions.stream(model=MODEL, messages=messages, tools=tools) as stream:
        called = stream.get_final_completion()
    message = called.choices[0].message
    messages.append(message)
    messages += [
        {"role": "tool", "tool_call_id": call.id, "content": "3 C, fog"}
        for call in message.tool_calls or []
    ]
    answered = gpt.chat.completions.create(model=MODEL, messages=messages, tools=tools)

    # then
    assert called.choices[0].finish_reason == "tool_calls"
    (call,) = message.tool_calls or []
    assert call.type == "function"
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"city": "Bern"}',
    )
    assert answered.choices[0].message.content == "Foggy, 3 C."
    assert upstream.received[1].body["messages"][-2:] == BERN_CALL_SENT_BACK


def test_openai_structured_output_with_the_sdks_parse(
    gpt: openai.OpenAI, upstream: FakeGroq
) -> None:
    # given: a model that answers with JSON
    upstream.replies.append(Reply(text=['{"name": "Lis', 'bon", "sights": 3}']))

    class City(pydantic.BaseModel):
        name: str
        sights: int

    # when: the SDK sends the model's JSON schema and parses the answer into it
    completion = gpt.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "A city?"}], response_format=City
    )

    # then
    assert completion.choices[0].message.parsed == City(name="Lisbon", sights=3)
    sent = upstream.received[0].body["response_format"]
    assert (sent["type"], sent["json_schema"]["name"], sent["json_schema"]["strict"]) == (
        "json_schema",
        "City",
        True,
    )
    assert sent["json_schema"]["schema"]["required"] == ["name", "sights"]


def test_openai_models_list(gpt: openai.OpenAI) -> None:
    models = list(gpt.models.list())

    assert MODEL in [model.id for model in models]
    assert {model.object for model in models} == {"model"}
    assert gpt.models.retrieve(MODEL).id == MODEL


def test_openai_sdk_exceptions(server: LiveServer, gpt: openai.OpenAI, user: User) -> None:
    _, reader = api_key_create(user=user, name="reader", scopes=["usage:read"])
    hello = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}

    with pytest.raises(openai.AuthenticationError) as unauthenticated:
        openai.OpenAI(
            base_url=f"{server.url}/v1", api_key="sk-chatapi-nope", max_retries=0
        ).chat.completions.create(**hello)  # type: ignore[call-overload]
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(
            base_url=f"{server.url}/v1", api_key=reader, max_retries=0
        ).chat.completions.create(**hello)  # type: ignore[call-overload]
    with pytest.raises(openai.NotFoundError) as unknown_model:
        gpt.chat.completions.create(**{**hello, "model": "nope/nope"})  # type: ignore[call-overload]
    with pytest.raises(openai.BadRequestError) as bad:
        gpt.chat.completions.create(
            **hello,  # type: ignore[call-overload]
            tools=[{"type": "function", "function": {"name": "t", "strict": True}}],
        )

    assert unauthenticated.value.code == "invalid_api_key"
    assert unknown_model.value.code == "model_not_found"
    assert (bad.value.param, bad.value.code) == ("tools", None)


# --- Rate limits ----------------------------------------------------------------------------


def test_the_sdks_retry_a_429_after_its_retry_after(
    upstream: FakeGroq, key: str, tmp_path: Path
) -> None:
    # given: one answer at a time, and a slow answer in progress
    live = _server(upstream, tmp_path / "server.log", RATE_LIMIT_CONCURRENT_STREAMS="1")
    try:
        patient = anthropic.Anthropic(base_url=live.url, api_key=key, max_retries=2)
        impatient = openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0)
        upstream.replies.extend(
            [Reply(text=[f"w{i} " for i in range(10)], interval=0.05), Reply(text=["Later"])]
        )
        hello: Any = [{"role": "user", "content": "Hi"}]
        with patient.messages.stream(model=MODEL, max_tokens=50, messages=hello) as slow:
            next(iter(slow))  # the answer is generating: the one slot is taken

            # when: the OpenAI SDK without retries, then the Anthropic SDK with its own
            with pytest.raises(openai.RateLimitError) as limited:
                impatient.chat.completions.create(model=MODEL, messages=hello)
            started = time.monotonic()
            later = patient.messages.create(model=MODEL, max_tokens=50, messages=hello)
            waited = time.monotonic() - started
            slow.until_done()
        log = live.log()
    finally:
        live.stop()

    # then: a 429 that says when to retry, and a retry that waited that long and succeeded
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.code == "rate_limit_exceeded"
    assert [block.text for block in later.content if block.type == "text"] == ["Later"]
    assert waited >= 0.9
    assert log.count("POST /v1/messages 429") == 1
