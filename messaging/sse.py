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


# --- whole answers -------------------------------------------------------------------------


def answer_replay(
    *,
    message_id: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    reasoning: str,
    content: str,
    stop_reason: str | None,
    error_type: str = "",
    error_message: str = "",
) -> list[SSEEvent]:
    """A finished answer as a complete, well-formed event sequence (ids from 1), as a live
    generation would have sent it in one go: its reasoning block (if any), its text block,
    then ``message_delta`` and ``message_stop`` when it has a ``stop_reason``, else the
    error it ended with."""
    data = [message_start(message_id=message_id, model=model, input_tokens=input_tokens)]
    blocks = [("thinking", reasoning), ("text", content)]
    for index, (block_type, text) in enumerate(b for b in blocks if b[1] or b[0] == "text"):
        data.append(content_block_start(index=index, block_type=block_type))
        if text:
            data.append(content_block_delta(index=index, block_type=block_type, text=text))
        data.append(content_block_stop(index=index))
    if stop_reason is not None:
        data.append(
            message_delta(
                stop_reason=stop_reason, input_tokens=input_tokens, output_tokens=output_tokens
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
