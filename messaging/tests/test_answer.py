"""An answer's blocks as they stream: the events in Anthropic's order, and what is stored."""

from typing import Any

from messaging import sse
from messaging.answer import AnswerBlocks


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, data: dict[str, Any]) -> None:
        self.events.append(data)

    def emit_delta(self, *, index: int, block_type: str, text: str) -> None:
        self.events.append(sse.content_block_delta(index=index, block_type=block_type, text=text))


def test_thinking_text_and_a_tool_call_are_three_blocks_in_order() -> None:
    # given
    sink = Recorder()
    answer = AnswerBlocks(sink)

    # when
    answer.thinking_delta("Need weather.")
    answer.text_delta("Check")
    answer.text_delta("ing.")
    answer.tool_call_start(index=0, tool_use_id="call_1", name="get_weather")
    answer.tool_call_delta(index=0, arguments='{"city":')
    answer.tool_call_delta(index=0, arguments='"Lisbon"}')
    blocks = answer.finish(complete=True)

    # then
    assert sink.events == [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Need weather."},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Check"},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "ing."},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"city":"Lisbon"}'},
        },
        {"type": "content_block_stop", "index": 2},
    ]
    assert blocks == [
        {"type": "thinking", "thinking": "Need weather."},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Lisbon"}},
    ]
    assert (answer.text, answer.reasoning, answer.tool_calls) == ("Checking.", "Need weather.", 1)


def test_several_calls_are_several_blocks() -> None:
    sink = Recorder()
    answer = AnswerBlocks(sink)

    answer.tool_call_start(index=0, tool_use_id="call_1", name="a")
    answer.tool_call_delta(index=0, arguments='{"x":1}')
    answer.tool_call_start(index=1, tool_use_id="call_2", name="b")
    answer.tool_call_delta(index=1, arguments="{}")
    blocks = answer.finish(complete=True)

    assert [(e["type"], e["index"]) for e in sink.events] == [
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_stop", 1),
    ]
    assert blocks == [
        {"type": "tool_use", "id": "call_1", "name": "a", "input": {"x": 1}},
        {"type": "tool_use", "id": "call_2", "name": "b", "input": {}},
    ]


def test_malformed_arguments_end_the_block_without_input_and_are_kept_raw() -> None:
    # given: arguments that are not a JSON object, as a model sometimes writes them
    sink = Recorder()
    answer = AnswerBlocks(sink)

    # when
    for index, arguments in enumerate(["{city: Lisbon", "[1, 2]"]):
        answer.tool_call_start(index=index, tool_use_id=f"call_{index}", name="get_weather")
        answer.tool_call_delta(index=index, arguments=arguments)
    blocks = answer.finish(complete=True)

    # then: no input_json_delta (a client's SDK would fail to parse it)
    assert [e["type"] for e in sink.events] == [
        "content_block_start",
        "content_block_stop",
        "content_block_start",
        "content_block_stop",
    ]
    assert blocks == [
        {
            "type": "tool_use",
            "id": "call_0",
            "name": "get_weather",
            "input": {},
            "is_error": True,
            "raw_input": "{city: Lisbon",
        },
        {
            "type": "tool_use",
            "id": "call_1",
            "name": "get_weather",
            "input": {},
            "is_error": True,
            "raw_input": "[1, 2]",
        },
    ]


def test_text_after_a_call_sends_the_call_first() -> None:
    sink = Recorder()
    answer = AnswerBlocks(sink)

    answer.tool_call_start(index=0, tool_use_id="call_1", name="a")
    answer.text_delta("Done.")
    blocks = answer.finish(complete=True)

    assert [b["type"] for b in blocks] == ["tool_use", "text"]
    assert [(e["type"], e["index"]) for e in sink.events] == [
        ("content_block_start", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
    ]


def test_a_stopped_answer_drops_the_call_it_was_writing() -> None:
    sink = Recorder()
    answer = AnswerBlocks(sink)

    answer.text_delta("Let me check.")
    answer.tool_call_start(index=0, tool_use_id="call_1", name="a")
    answer.tool_call_delta(index=0, arguments='{"x":')
    blocks = answer.finish(complete=False)

    assert blocks == [{"type": "text", "text": "Let me check."}]
    assert [e["type"] for e in sink.events][-1] == "content_block_stop"
    assert answer.tool_calls == 0


def test_a_piece_of_a_call_that_never_started_is_ignored() -> None:
    answer = AnswerBlocks(Recorder())

    answer.tool_call_delta(index=3, arguments='{"x":1}')

    assert answer.finish(complete=True) == []
