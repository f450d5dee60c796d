"""Anthropic's own SDK reads a streamed tool call from a live server (daphne on loopback, the
fake Groq behind it): its stream accumulator builds the tool_use block with the parsed input,
and the next turn sends the result back."""

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anthropic import NOT_GIVEN, Anthropic, Stream
from anthropic.lib.streaming import MessageStreamManager
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent

from accounts.models import User
from testsupport.factories import make_conversation
from testsupport.fake_groq import FakeGroq, Reply, ToolCallReply
from testsupport.servers import LiveServer

WEATHER = {
    "name": "get_weather",
    "description": "The weather now in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[LiveServer, FakeGroq]]:
    groq = FakeGroq().start()
    live = LiveServer(
        env={"GROQ_BASE_URL": groq.base_url, "GROQ_API_KEY": "gsk_test", "LLM_MAX_RETRIES": "0"},
        log_path=tmp_path / "server.log",
    )
    try:
        yield live, groq
    finally:
        live.stop()
        groq.stop()


def stream_send(client: Anthropic, path: str, body: dict[str, Any]) -> AnthropicMessage:
    """A send read through the SDK's own stream accumulator (``messages.stream`` does the
    same against /v1/messages)."""
    request = functools.partial(
        client.post,
        path,
        body={**body, "stream": True},
        cast_to=AnthropicMessage,
        stream=True,
        stream_cls=Stream[RawMessageStreamEvent],
    )
    with MessageStreamManager(request, output_format=NOT_GIVEN) as stream:
        return stream.get_final_message()


@pytest.mark.django_db(transaction=True)
def test_the_sdk_accumulates_a_streamed_tool_call_and_its_parsed_input(
    server: tuple[LiveServer, FakeGroq], make_token: Any, user: User
) -> None:
    # given: a conversation with a tool; the model calls it with arguments in pieces, then
    # answers with its result
    live, groq = server
    conversation = make_conversation(owner=user, tools=[WEATHER])
    groq.replies.extend(
        [
            Reply(
                text=["Checking."],
                tool_calls=[
                    ToolCallReply("get_weather", ['{"city":', ' "Zürich', '"}'], id="call_1"),
                    ToolCallReply("get_weather", ['{"city": "Bern"}'], id="call_2", whole=True),
                ],
                prompt_tokens=90,
                cached_tokens=64,
                completion_tokens=12,
            ),
            Reply(text=["Zürich 4 C, Bern 3 C."]),
        ]
    )
    client = Anthropic(base_url=live.url, auth_token=make_token(user), max_retries=0)
    path = f"/api/v1/conversations/{conversation.pk}/messages"

    # when
    called = stream_send(client, path, {"content": "Zürich and Bern?"})
    answered = stream_send(
        client,
        path,
        {
            "content": [
                {"type": "tool_result", "tool_use_id": block.id, "content": f"{city}: cold"}
                for block, city in zip(called.content[1:], ["Zürich", "Bern"], strict=True)
                if block.type == "tool_use"
            ]
        },
    )
    client.close()

    # then: the SDK parsed every input, and counted the cache as Anthropic does
    assert called.stop_reason == "tool_use"
    assert [block.type for block in called.content] == ["text", "tool_use", "tool_use"]
    assert [
        (block.id, block.name, block.input) for block in called.content if block.type == "tool_use"
    ] == [
        ("call_1", "get_weather", {"city": "Zürich"}),
        ("call_2", "get_weather", {"city": "Bern"}),
    ]
    assert (
        called.usage.input_tokens,
        called.usage.cache_read_input_tokens,
        called.usage.cache_creation_input_tokens,
        called.usage.output_tokens,
    ) == (26, 64, 0, 12)
    assert answered.stop_reason == "end_turn"
    assert [block.text for block in answered.content if block.type == "text"] == [
        "Zürich 4 C, Bern 3 C."
    ]
    assert groq.received[1].body["messages"][-2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "Zürich: cold"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Bern: cold"},
    ]
