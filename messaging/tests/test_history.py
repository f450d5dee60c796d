"""Stored messages with content blocks as the provider reads them."""

from messaging.history import chat_messages_from
from messaging.llm.base import ChatMessage, ToolCall


def test_an_assistant_tool_call_goes_back_with_its_text_and_without_reasoning() -> None:
    messages = chat_messages_from(
        role="assistant",
        content="Checking.",
        blocks=[
            {"type": "thinking", "thinking": "Need the weather."},
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {"city": "Zürich"},
            },
        ],
    )

    assert messages == [
        ChatMessage(
            "assistant",
            "Checking.",
            tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Zürich"}'),),
        )
    ]


def test_malformed_arguments_go_back_as_the_model_wrote_them() -> None:
    messages = chat_messages_from(
        role="assistant",
        content="",
        blocks=[
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {},
                "is_error": True,
                "raw_input": "{city: Lisbon",
            }
        ],
    )

    assert messages == [
        ChatMessage(
            "assistant", "", tool_calls=(ToolCall("call_1", "get_weather", "{city: Lisbon"),)
        )
    ]


def test_tool_results_are_tool_messages_in_order_before_the_users_text() -> None:
    messages = chat_messages_from(
        role="user",
        content="Thanks.",
        blocks=[
            {"type": "tool_result", "tool_use_id": "call_2", "content": "15 C", "is_error": False},
            {
                "type": "tool_result",
                "tool_use_id": "call_1",
                "content": [{"type": "text", "text": "no "}, {"type": "text", "text": "data"}],
                "is_error": True,
            },
            {"type": "text", "text": "Thanks."},
        ],
    )

    assert messages == [
        ChatMessage("tool", "15 C", tool_call_id="call_2"),
        ChatMessage("tool", "Error: no data", tool_call_id="call_1"),
        ChatMessage("user", "Thanks."),
    ]


def test_a_message_without_blocks_is_its_content_and_an_empty_one_is_nothing() -> None:
    assert chat_messages_from(role="user", content="Hi", blocks=[]) == [ChatMessage("user", "Hi")]
    assert chat_messages_from(role="assistant", content="", blocks=[]) == []
    assert (
        chat_messages_from(
            role="assistant", content="", blocks=[{"type": "thinking", "thinking": "x"}]
        )
        == []
    )
