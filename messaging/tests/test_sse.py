"""The SSE encoder: pre-encoded delta frames are byte for byte the generic encoding."""

import json

import pytest

from messaging import sse
from messaging.sse import EventBuffer, SSEEvent

TEXTS = [
    "",
    "Hello",
    ' "quoted" \\ back\\slash /',
    "line\nbreak\r\ttab \x00 \x1f \x7f",
    "é ü ñ 日本語 🙂 \u2028 \u2029",
    "</script><!-- -->",
    "x" * 10_000,
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("block_type", ["text", "thinking"])
def test_delta_frame_is_the_generic_encoding(text: str, block_type: str) -> None:
    # given
    data = sse.content_block_delta(index=3, block_type=block_type, text=text)

    # when
    fast = sse.SSEEvent.delta(12345, index=3, block_type=block_type, text=text)

    # then
    generic = sse.SSEEvent.build(12345, data)
    assert fast == generic
    assert (
        fast.raw
        == (
            f"id: 12345\nevent: content_block_delta\ndata: "
            f"{json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"
        ).encode()
    )


def test_the_event_buffer_gives_back_the_bytes_after_any_position() -> None:
    events = [
        SSEEvent.build(1, sse.message_start(message_id="m", model="x", input_tokens=1)),
        SSEEvent.delta(2, index=0, block_type="text", text="h\u00e9llo \u2728"),
        SSEEvent.delta(3, index=0, block_type="text", text=""),
        SSEEvent.build(4, sse.message_stop()),
    ]
    buffer = EventBuffer()
    assert (len(buffer), buffer.after(0)) == (0, b"")

    for event in events:
        buffer.append(event.raw)

    assert len(buffer) == 4
    for position in range(5):
        assert buffer.after(position) == b"".join(e.raw for e in events[position:])
