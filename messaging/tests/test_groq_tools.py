"""Tool use in the provider layer: OpenAI-style tool calls streamed by a real HTTP server in
Groq's wire format become typed events, and tools, tool choice, a tool round trip's history
and the service tier go upstream in OpenAI's shape."""

import re
from typing import Any

import pytest

from messaging.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ProviderError,
    Started,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    ToolDefinition,
    UpstreamTimings,
    Usage,
)
from messaging.tests.test_groq_client import REQUEST, client_for, collect, run
from testsupport.fake_groq import ErrorReply, FakeGroq, Reply, ToolCallReply

WEATHER = ToolDefinition(
    name="get_weather",
    description="The weather now in a city.",
    input_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
TIMINGS = UpstreamTimings(0.01, 0.002, 0.03)


def test_a_tool_call_split_across_chunks_is_a_start_then_its_argument_pieces(
    fake_groq: FakeGroq,
) -> None:
    # given
    fake_groq.replies.append(
        Reply(
            text=["Checking."],
            tool_calls=[ToolCallReply("get_weather", ['{"city":', '"Lis', 'bon"}'], id="call_abc")],
            prompt_tokens=80,
            completion_tokens=20,
        )
    )

    # when
    events = run(collect(client_for(fake_groq)))

    # then
    assert events == [
        Started(model="openai/gpt-oss-20b", upstream_id="req_fake"),
        TextDelta("Checking."),
        ToolCallStart(index=0, id="call_abc", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city":'),
        ToolCallDelta(index=0, arguments='"Lis'),
        ToolCallDelta(index=0, arguments='bon"}'),
        Usage(input_tokens=80, output_tokens=20, timings=TIMINGS),
        Finish("tool_use"),
    ]


def test_several_calls_in_one_answer_keep_their_indexes(fake_groq: FakeGroq) -> None:
    # given: two calls, the first in pieces, the second whole (as Groq often sends them)
    fake_groq.replies.append(
        Reply(
            text=[],
            tool_calls=[
                ToolCallReply("get_weather", ['{"city":"Lisbon"', "}"], id="call_1"),
                ToolCallReply("get_weather", ['{"city":"Porto"}'], id="call_2", whole=True),
            ],
        )
    )

    # when
    events = run(collect(client_for(fake_groq)))

    # then
    assert [e for e in events if isinstance(e, ToolCallStart | ToolCallDelta)] == [
        ToolCallStart(index=0, id="call_1", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city":"Lisbon"'),
        ToolCallDelta(index=0, arguments="}"),
        ToolCallStart(index=1, id="call_2", name="get_weather"),
        ToolCallDelta(index=1, arguments='{"city":"Porto"}'),
    ]
    assert events[-1] == Finish("tool_use")


def test_malformed_arguments_are_passed_on_as_written(fake_groq: FakeGroq) -> None:
    # given: the model's arguments are not JSON
    fake_groq.replies.append(
        Reply(text=[], tool_calls=[ToolCallReply("get_weather", ["{city: Lis", "bon"])])
    )

    # when
    events = run(collect(client_for(fake_groq)))

    # then: judging them is the caller's business, and the stream goes on to its end
    assert [e for e in events if isinstance(e, ToolCallDelta)] == [
        ToolCallDelta(index=0, arguments="{city: Lis"),
        ToolCallDelta(index=0, arguments="bon"),
    ]
    assert events[-1] == Finish("tool_use")


def test_a_call_without_an_id_gets_one(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(
        Reply(text=[], tool_calls=[ToolCallReply("get_weather", ["{}"], id=None)])
    )

    events = run(collect(client_for(fake_groq)))

    [start] = [e for e in events if isinstance(e, ToolCallStart)]
    assert re.fullmatch(r"toolu_[0-9a-f]{24}", start.id)


def test_a_tool_call_fragment_without_a_name_is_dropped(fake_groq: FakeGroq) -> None:
    # given: a provider that starts a call with an empty name
    fake_groq.replies.append(Reply(text=["Hi"], tool_calls=[ToolCallReply("", ['{"a":1}'])]))

    # when
    events = run(collect(client_for(fake_groq)))

    # then: the rest of the answer is unharmed
    assert [e for e in events if isinstance(e, TextDelta | ToolCallStart | ToolCallDelta)] == [
        TextDelta("Hi")
    ]


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        (ToolChoice("auto"), "auto"),
        (ToolChoice("any"), "required"),
        (ToolChoice("none"), "none"),
        (
            ToolChoice("tool", name="get_weather"),
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tools_and_tool_choice_go_upstream_in_openai_shape(
    fake_groq: FakeGroq, choice: ToolChoice, sent: Any
) -> None:
    # given
    request = ChatRequest(
        model="openai/gpt-oss-20b",
        messages=(ChatMessage("user", "Weather in Lisbon?"),),
        tools=(WEATHER, ToolDefinition("now", "", {"type": "object"})),
        tool_choice=choice,
        service_tier="flex",
    )

    # when
    run(collect(client_for(fake_groq), request))

    # then
    assert fake_groq.received[0].body == {
        "model": "openai/gpt-oss-20b",
        "messages": [{"role": "user", "content": "Weather in Lisbon?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "The weather now in a city.",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            },
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}},
        ],
        "tool_choice": sent,
        "service_tier": "flex",
    }


def test_a_tool_choice_without_tools_is_not_sent(fake_groq: FakeGroq) -> None:
    request = ChatRequest(
        model="openai/gpt-oss-20b",
        messages=(ChatMessage("user", "Hi"),),
        tool_choice=ToolChoice("any"),
    )

    body = client_for(fake_groq).request_body(request)

    assert "tool_choice" not in body
    assert "tools" not in body


def test_stop_sequences_are_not_sent_upstream(fake_groq: FakeGroq) -> None:
    request = ChatRequest(
        model="openai/gpt-oss-20b",
        messages=(ChatMessage("user", "Hi"),),
        stop_sequences=("END",),
    )

    body = client_for(fake_groq).request_body(request)

    assert "stop" not in body


def test_a_tool_round_trip_history_goes_upstream_as_tool_calls_and_tool_messages(
    fake_groq: FakeGroq,
) -> None:
    # given: the model called two tools, and the user answered both
    request = ChatRequest(
        model="openai/gpt-oss-20b",
        messages=(
            ChatMessage("user", "Weather in Lisbon and Porto?"),
            ChatMessage(
                "assistant",
                "",
                tool_calls=(
                    ToolCall("call_1", "get_weather", '{"city":"Lisbon"}'),
                    ToolCall("call_2", "get_weather", '{"city":"Porto"}'),
                ),
            ),
            ChatMessage("tool", "18 C, sunny", tool_call_id="call_1"),
            ChatMessage("tool", "15 C, rain", tool_call_id="call_2"),
        ),
        tools=(WEATHER,),
    )

    # when
    run(collect(client_for(fake_groq), request))

    # then
    assert fake_groq.received[0].body["messages"] == [
        {"role": "user", "content": "Weather in Lisbon and Porto?"},
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
    assert "tool_choice" not in fake_groq.received[0].body


def test_the_plain_request_body_is_unchanged_by_the_tool_fields(fake_groq: FakeGroq) -> None:
    body = client_for(fake_groq).request_body(REQUEST)

    assert set(body) == {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "max_completion_tokens",
        "reasoning_effort",
    }


def test_flex_out_of_capacity_is_retried_once_at_once_on_demand(fake_groq: FakeGroq) -> None:
    # given: flex has no capacity; the ordinary tier answers
    fake_groq.replies.append(ErrorReply(498, "Capacity exceeded", code="capacity_exceeded"))
    request = ChatRequest(
        model="openai/gpt-oss-20b", messages=(ChatMessage("user", "Hi"),), service_tier="flex"
    )

    # when: even with no retries configured
    events = run(collect(client_for(fake_groq, max_retries=0), request))

    # then
    assert [r.body["service_tier"] for r in fake_groq.received] == ["flex", "on_demand"]
    assert events[-1] == Finish("end_turn")


def test_on_demand_out_of_capacity_too_is_the_mapped_error(fake_groq: FakeGroq) -> None:
    fake_groq.replies.extend(
        [ErrorReply(498, "Capacity exceeded", code="capacity_exceeded") for _ in range(2)]
    )
    request = ChatRequest(
        model="openai/gpt-oss-20b", messages=(ChatMessage("user", "Hi"),), service_tier="flex"
    )

    with pytest.raises(ProviderError) as caught:
        run(collect(client_for(fake_groq, max_retries=0), request))

    assert (caught.value.status, caught.value.error_type, caught.value.upstream_status) == (
        529,
        "overloaded_error",
        498,
    )
    assert [r.body["service_tier"] for r in fake_groq.received] == ["flex", "on_demand"]
