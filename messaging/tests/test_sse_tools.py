"""A tool_use block on the wire, byte for byte as Anthropic streams it: a content_block_start
with an empty input, input_json_delta pieces, content_block_stop, and a message_delta whose
stop_reason is tool_use."""

from messaging import sse
from messaging.sse import SSEEvent


def test_a_tool_use_block_starts_with_its_id_name_and_an_empty_input() -> None:
    event = SSEEvent.build(
        4, sse.tool_use_block_start(index=1, tool_use_id="toolu_01A", name="get_weather")
    )

    assert event.raw == (
        b"id: 4\nevent: content_block_start\n"
        b'data: {"type":"content_block_start","index":1,"content_block":'
        b'{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}}\n\n'
    )


def test_its_input_arrives_as_input_json_delta_pieces() -> None:
    event = SSEEvent.build(5, sse.input_json_delta(index=1, partial_json='{"city": "Lis'))

    assert event.raw == (
        b"id: 5\nevent: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":1,"delta":'
        b'{"type":"input_json_delta","partial_json":"{\\"city\\": \\"Lis"}}\n\n'
    )


def test_non_ascii_input_is_sent_as_utf8_not_escaped() -> None:
    event = SSEEvent.build(6, sse.input_json_delta(index=0, partial_json='{"city":"Zürich"}'))

    assert event.raw.endswith(
        '"partial_json":"{\\"city\\":\\"Zürich\\"}"}}\n\n'.encode(),
    )


def test_the_block_ends_with_content_block_stop() -> None:
    event = SSEEvent.build(7, sse.content_block_stop(index=1))

    assert event.raw == (
        b'id: 7\nevent: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n'
    )


def test_the_event_name_is_always_the_data_type() -> None:
    for data in (
        sse.tool_use_block_start(index=0, tool_use_id="call_1", name="f"),
        sse.input_json_delta(index=0, partial_json="{}"),
    ):
        event = SSEEvent.build(1, data)
        assert (event.type, event.data()) == (data["type"], data)
