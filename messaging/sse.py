"""Server-Sent Events in Anthropic's Messages streaming format.

Each event is ``id: <n>\\nevent: <type>\\ndata: <json>\\n\\n`` where the event name equals
``data.type`` (https://docs.anthropic.com/en/api/messages-streaming; the events this API
sends, in order, are in docs/api.md). The ``id`` is a per-message sequence number,
so a client can resume with ``Last-Event-ID``.
"""

from array import array
from dataclasses import dataclass
from typing import Any

import orjson

_TEXT_DELTA = b',"delta":{"type":"text_delta","text":'
_THINKING_DELTA = b',"delta":{"type":"thinking_delta","thinking":'
# Events after which a message's stream has nothing more to say.
TERMINAL_TYPES = frozenset({"message_stop", "error"})
# The message_delta stop_reason of an answer the user stopped, and of one the provider
# finished without saying why.
CANCELLED_STOP_REASON = "cancelled"
DEFAULT_STOP_REASON = "end_turn"


class EventBuffer:
    """A stream's events so far, as their wire bytes end to end and where each one ends: about
    the bytes themselves plus 8 per event, where a list of events costs twice that (an object,
    a bytes and an int each). A generation keeps one for its whole answer."""

    __slots__ = ("_data", "_ends")

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("Q")

    def __len__(self) -> int:
        return len(self._ends)

    def append(self, raw: bytes) -> None:
        self._data += raw
        self._ends.append(len(self._data))

    def after(self, position: int) -> bytes:
        """The wire bytes of every event after the first ``position``."""
        start = self._ends[position - 1] if position else 0
        with memoryview(self._data) as view:
            return bytes(view[start:])


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One event as it goes on the wire: encoded once, then sent to every follower (and
    stored in the event log) as the same bytes."""

    id: int
    type: str
    raw: bytes

    @classmethod
    def build(cls, event_id: int, data: dict[str, Any]) -> "SSEEvent":
        # orjson writes compact UTF-8 JSON: the same bytes as json.dumps with
        # separators=(",", ":") and ensure_ascii=False, several times faster.
        event_type = data["type"]
        raw = b"id: %d\nevent: %s\ndata: %s\n\n" % (
            event_id,
            event_type.encode(),
            orjson.dumps(data),
        )
        return cls(id=event_id, type=event_type, raw=raw)

    @classmethod
    def delta(cls, event_id: int, *, index: int, block_type: str, text: str) -> "SSEEvent":
        """``build(event_id, content_block_delta(...))`` from a pre-encoded frame: the bytes
        are identical (tests/test_sse.py), only ``text`` is encoded. Most events are these."""
        prefix = _THINKING_DELTA if block_type == "thinking" else _TEXT_DELTA
        raw = b"%s%d%s%d%s%s}}\n\n" % (
            b"id: ",
            event_id,
            b'\nevent: content_block_delta\ndata: {"type":"content_block_delta","index":',
            index,
            prefix,
            orjson.dumps(text),
        )
        return cls(id=event_id, type="content_block_delta", raw=raw)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def data(self) -> dict[str, Any]:
        line = self.raw.split(b"\ndata: ", 1)[1]
        parsed: dict[str, Any] = orjson.loads(line)
        return parsed


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


def tool_use_block_start(*, index: int, tool_use_id: str, name: str) -> dict[str, Any]:
    """A ``tool_use`` block opens with an empty ``input``; its JSON follows as
    ``input_json_delta`` pieces that the client concatenates and parses."""
    return {
        "type": "content_block_start",
        "index": index,
        "content_block": {"type": "tool_use", "id": tool_use_id, "name": name, "input": {}},
    }


def input_json_delta(*, index: int, partial_json: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "input_json_delta", "partial_json": partial_json},
    }


def content_block_stop(*, index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(
    *,
    stop_reason: str | None,
    input_tokens: int,
    output_tokens: int,
    stop_sequence: str | None = None,
    cache_read_input_tokens: int | None = None,
) -> dict[str, Any]:
    """``input_tokens`` excludes the cached part, as Anthropic counts it; the cache counts
    appear when the provider reported them (it never charges for writing its cache)."""
    usage: dict[str, int] = {"input_tokens": input_tokens}
    if cache_read_input_tokens is not None:
        usage["cache_creation_input_tokens"] = 0
        usage["cache_read_input_tokens"] = cache_read_input_tokens
    usage["output_tokens"] = output_tokens
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": usage,
    }


def message_stop() -> dict[str, Any]:
    return {"type": "message_stop"}


def ping() -> dict[str, Any]:
    return {"type": "ping"}


def error(*, error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


# --- whole answers -------------------------------------------------------------------------


def _block_replay(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    """One stored content block as the events that stream it (a tool call's input whole)."""
    if block["type"] == "tool_use":
        data = [tool_use_block_start(index=index, tool_use_id=block["id"], name=block["name"])]
        if block["input"]:
            data.append(
                input_json_delta(index=index, partial_json=orjson.dumps(block["input"]).decode())
            )
    else:
        kind = block["type"]
        data = [content_block_start(index=index, block_type=kind)]
        if block[kind]:
            data.append(content_block_delta(index=index, block_type=kind, text=block[kind]))
    data.append(content_block_stop(index=index))
    return data


def answer_replay(
    *,
    message_id: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    blocks: list[dict[str, Any]],
    stop_reason: str | None,
    stop_sequence: str | None = None,
    cached_input_tokens: int | None = None,
    error_type: str = "",
    error_message: str = "",
) -> list[SSEEvent]:
    """A finished answer as a complete, well-formed event sequence (ids from 1), as a live
    generation would have sent it in one go: its blocks (one empty text block when it has
    none), then ``message_delta`` and ``message_stop`` when it has a ``stop_reason``, else the
    error it ended with. ``input_tokens`` includes ``cached_input_tokens``, as stored."""
    data = [message_start(message_id=message_id, model=model, input_tokens=input_tokens)]
    for index, block in enumerate(blocks or [{"type": "text", "text": ""}]):
        data.extend(_block_replay(index, block))
    if stop_reason is not None:
        data.append(
            message_delta(
                stop_reason=stop_reason,
                stop_sequence=stop_sequence,
                input_tokens=input_tokens - min(cached_input_tokens or 0, input_tokens),
                output_tokens=output_tokens,
                cache_read_input_tokens=cached_input_tokens,
            )
        )
        data.append(message_stop())
    else:
        data.append(error(error_type=error_type, message=error_message))
    return [SSEEvent.build(index + 1, item) for index, item in enumerate(data)]


def partial_answer(events: list[SSEEvent]) -> tuple[str, str]:
    """The text and the reasoning an answer's events carried so far."""
    text: list[str] = []
    reasoning: list[str] = []
    for event in events:
        if event.type != "content_block_delta":
            continue
        delta = event.data()["delta"]
        if delta["type"] == "text_delta":
            text.append(delta["text"])
        elif delta["type"] == "thinking_delta":
            reasoning.append(delta["thinking"])
    return "".join(text), "".join(reasoning)
