"""Content blocks: what a user message may carry, and whether its tool results answer the
open tool calls exactly."""

from typing import Any

import pytest
from rest_framework import serializers

from conversations.blocks import (
    ToolChoiceSerializer,
    ToolDefinitionSerializer,
    UserContentField,
    blocks_text,
    text_blocks,
    tool_results_problem,
    tools_problem,
)


def parse(value: Any, max_chars: int = 1000) -> Any:
    return UserContentField(max_chars=max_chars).to_internal_value(value)


def problem(value: Any) -> str:
    with pytest.raises(serializers.ValidationError) as caught:
        parse(value)
    detail = caught.value.detail
    assert isinstance(detail, list)
    return str(detail[0])


def test_a_string_is_one_text_block() -> None:
    assert parse("Hi") == [{"type": "text", "text": "Hi"}]


def test_tool_results_are_normalized_with_their_defaults() -> None:
    assert parse(
        [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"},
            {
                "type": "tool_result",
                "tool_use_id": "call_2",
                "content": [{"type": "text", "text": "15 C"}],
                "is_error": True,
            },
            {"type": "text", "text": "And tomorrow?"},
        ]
    ) == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C", "is_error": False},
        {
            "type": "tool_result",
            "tool_use_id": "call_2",
            "content": [{"type": "text", "text": "15 C"}],
            "is_error": True,
        },
        {"type": "text", "text": "And tomorrow?"},
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (" ", "This field may not be blank."),
        ("x" * 1001, "Ensure this field has no more than 1000 characters."),
        (3, "Must be a string or a list of content blocks."),
        ([], "content may not be an empty list."),
        (["Hi"], "content[0] must be an object."),
        ([{"type": "image"}], "content[0].type must be text or tool_result (got 'image')."),
        (
            [{"type": "tool_use", "id": "x"}],
            "content[0].type must be text or tool_result (got 'tool_use').",
        ),
        ([{"text": "Hi"}], "content[0].type must be text or tool_result."),
        (
            [{"type": "text", "text": "Hi", "cache_control": {}}],
            "content[0]: unknown field cache_control.",
        ),
        ([{"type": "tool_result", "content": "x"}], "content[0].tool_use_id must be a string."),
        (
            [{"type": "tool_result", "tool_use_id": "c", "content": [{"type": "image"}]}],
            "content[0].content[0] must be a text block.",
        ),
        (
            [{"type": "tool_result", "tool_use_id": "c", "is_error": "yes"}],
            "content[0].is_error must be true or false.",
        ),
        ([{"type": "text", "text": "a\x00b"}], "content[0].text: Null characters are not allowed."),
        (
            [{"type": "text", "text": "\ud800"}],
            "content[0].text: Surrogate characters are not allowed: U+D800.",
        ),
        ([{"type": "text", "text": " "}], "content[0].text may not be blank."),
    ],
)
def test_bad_content_is_refused_naming_the_place(value: Any, message: str) -> None:
    assert problem(value) == message


def test_the_size_limit_counts_every_block() -> None:
    with pytest.raises(serializers.ValidationError):
        parse(
            [
                {"type": "text", "text": "x" * 6},
                {"type": "tool_result", "tool_use_id": "c", "content": "y" * 5},
            ],
            max_chars=10,
        )


def test_results_answering_every_open_call_once_pass() -> None:
    blocks = parse(
        [
            {"type": "tool_result", "tool_use_id": "call_2", "content": "b"},
            {"type": "tool_result", "tool_use_id": "call_1", "content": "a"},
        ]
    )

    assert tool_results_problem(open_ids=["call_1", "call_2"], blocks=blocks) is None


def test_a_missing_unknown_and_repeated_result_are_named() -> None:
    blocks = parse(
        [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "a"},
            {"type": "tool_result", "tool_use_id": "call_1", "content": "a"},
            {"type": "tool_result", "tool_use_id": "call_9", "content": "z"},
        ]
    )

    assert tool_results_problem(open_ids=["call_1", "call_2"], blocks=blocks) == (
        "The tool_result blocks must answer exactly the open tool calls (call_1, call_2): "
        "missing a result for call_2; results for unknown tool calls call_9; "
        "more than one result for call_1."
    )


def test_plain_text_while_calls_are_open_is_refused() -> None:
    assert tool_results_problem(open_ids=["call_1"], blocks=parse("Hi")) == (
        "The previous answer called tools: the next message must carry a tool_result block "
        "for each of call_1."
    )


def test_results_without_open_calls_are_refused() -> None:
    blocks = parse([{"type": "tool_result", "tool_use_id": "call_1", "content": "a"}])

    assert tool_results_problem(open_ids=[], blocks=blocks) == (
        "There are no open tool calls to answer: tool_result blocks name call_1."
    )


def test_stored_text_and_reasoning_become_blocks_and_back() -> None:
    blocks = text_blocks("Answer.", "Thought.")

    assert blocks == [
        {"type": "thinking", "thinking": "Thought."},
        {"type": "text", "text": "Answer."},
    ]
    assert blocks_text(blocks) == "Answer."
    assert text_blocks("", "") == []


def test_a_tool_definition_needs_a_valid_name_and_an_object_schema() -> None:
    serializer = ToolDefinitionSerializer(
        data={"name": "get weather", "input_schema": {"type": "string"}, "extra": 1}
    )

    assert not serializer.is_valid()
    assert serializer.errors == {"extra": ["Unknown field."]}

    serializer = ToolDefinitionSerializer(
        data={"name": "get weather", "input_schema": {"type": "string"}}
    )
    assert not serializer.is_valid()
    assert set(serializer.errors) == {"name", "input_schema"}
    assert serializer.errors["input_schema"] == ['The input schema must have "type": "object".']


def test_a_tool_choice_of_type_tool_needs_a_name() -> None:
    serializer = ToolChoiceSerializer(data={"type": "tool"})

    assert not serializer.is_valid()
    assert serializer.errors == {"name": ["Required with type tool, and only with it."]}


def test_tools_must_have_unique_names_and_the_chosen_tool_must_exist() -> None:
    tools = [{"name": "a"}, {"name": "a"}, {"name": "b"}]

    assert tools_problem(tools, None) == "Tool names must be unique: a."
    assert tools_problem(tools[1:], {"type": "tool", "name": "c"}) == (
        "tool_choice names c, which is not one of the tools."
    )
    assert tools_problem(tools[1:], {"type": "any"}) is None
