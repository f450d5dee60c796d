"""The SSE encoder: pre-encoded delta frames are byte for byte the generic encoding."""

import json

import pytest

from messaging import sse

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
