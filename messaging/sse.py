"""Server-Sent Events in Anthropic's Messages streaming format.

Each event is ``id: <n>\\nevent: <type>\\ndata: <json>\\n\\n`` where the event name equals
``data.type`` (https://docs.anthropic.com/en/api/messages-streaming and
../shared/reference/wire-formats.md section 2). The ``id`` is a per-message sequence number,
so a client can resume with ``Last-Event-ID``.
"""

import json
from dataclasses import dataclass
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class SSEEvent:
    id: int
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.data["type"])

    def encode(self) -> bytes:
        return f"id: {self.id}\nevent: {self.data['type']}\ndata: {_dumps(self.data)}\n\n".encode()


def message_start(*, message_id: str, model: str, input_tokens: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        },
    }


def content_block_start(*, index: int, block_type: str) -> dict[str, Any]:
    block: dict[str, Any] = (
        {"type": "thinking", "thinking": ""}
        if block_type == "thinking"
        else {"type": "text", "text": ""}
    )
    return {"type": "content_block_start", "index": index, "content_block": block}


def content_block_delta(*, index: int, block_type: str, text: str) -> dict[str, Any]:
    delta = (
        {"type": "thinking_delta", "thinking": text}
        if block_type == "thinking"
        else {"type": "text_delta", "text": text}
    )
    return {"type": "content_block_delta", "index": index, "delta": delta}


def content_block_stop(*, index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(
    *, stop_reason: str | None, input_tokens: int, output_tokens: int
) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def message_stop() -> dict[str, Any]:
    return {"type": "message_stop"}


def ping() -> dict[str, Any]:
    return {"type": "ping"}


def error(*, error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}
