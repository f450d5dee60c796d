"""An answer's content blocks as they stream: provider deltas in, Anthropic SSE events out,
and the blocks to store at the end.

Text and thinking stream as they come, one block per run of the same kind. A tool call's
block is sent whole once the call is complete (the next call or text starts, or the answer
ends): its ``content_block_start`` with ``input: {}``, one ``input_json_delta`` carrying the
arguments, ``content_block_stop``. Holding a call back costs nothing with Groq, which sends a
call's arguments in one chunk as a rule, and it is what lets a malformed call be told apart
before a client sees it: Anthropic's SDK parses the concatenated ``partial_json`` as it
arrives and raises on text that is not JSON. A malformed call (not a JSON object) is sent
with no delta (its input stays ``{}``) and stored with ``is_error: true`` and its
``raw_input`` as the model wrote it.
"""

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from conversations.blocks import Block
from messaging import sse


class EventSink(Protocol):
    def emit(self, data: dict[str, Any]) -> None:
        """Send one event (``messaging.sse`` builds them)."""

    def emit_delta(self, *, index: int, block_type: str, text: str) -> None:
        """Send a text or thinking delta (the hot path, pre-encoded)."""


@dataclass(slots=True)
class _PendingCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


def tool_use_block(*, tool_use_id: str, name: str, arguments: str) -> Block:
    """The stored block of a finished call; ``input`` parsed from ``arguments`` when they
    are a JSON object (or empty, a call without arguments)."""
    block: Block = {"type": "tool_use", "id": tool_use_id, "name": name, "input": {}}
    if not arguments.strip():
        return block
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        block["input"] = value
    else:
        block["is_error"] = True
        block["raw_input"] = arguments
    return block


class AnswerBlocks:
    """The blocks of one answer, built from its deltas while ``sink`` streams them."""

    __slots__ = ("_open_kind", "_open_parts", "_pending", "_sink", "blocks")

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self.blocks: list[Block] = []
        self._open_kind: str | None = None  # "text" or "thinking", while one streams
        self._open_parts: list[str] = []
        # Calls not sent yet, by the provider's index, in the order they started.
        self._pending: dict[int, _PendingCall] = {}

    @property
    def text(self) -> str:
        """All the answer's text so far (stored as the message's ``content``)."""
        parts = [b["text"] for b in self.blocks if b["type"] == "text"]
        if self._open_kind == "text":
            parts.extend(self._open_parts)
        return "".join(parts)

    @property
    def reasoning(self) -> str:
        parts = [b["thinking"] for b in self.blocks if b["type"] == "thinking"]
        if self._open_kind == "thinking":
            parts.extend(self._open_parts)
        return "".join(parts)

    @property
    def tool_calls(self) -> int:
        """Calls started so far, sent or not."""
        return len(self._pending) + sum(1 for b in self.blocks if b["type"] == "tool_use")

    def text_delta(self, text: str) -> None:
        self._streamed("text", text)

    def thinking_delta(self, text: str) -> None:
        self._streamed("thinking", text)

    def tool_call_start(self, *, index: int, tool_use_id: str, name: str) -> None:
        self._close_open()
        self._send_pending()
        self._pending[index] = _PendingCall(id=tool_use_id, name=name)

    def tool_call_delta(self, *, index: int, arguments: str) -> None:
        call = self._pending.get(index)
        if call is not None:  # a piece of a call that never started is not a call
            call.arguments.append(arguments)

    def finish(self, *, complete: bool) -> list[Block]:
        """End the open block; send the calls still held back when the answer is
        ``complete`` (a stopped answer's half-written call is dropped: nobody could answer
        it). Returns the blocks to store."""
        self._close_open()
        if complete:
            self._send_pending()
        self._pending.clear()
        return self.blocks

    def abandon(self) -> list[Block]:
        """End without another event (an ``error`` event follows): what streamed so far is
        kept, the calls held back are dropped. Returns the blocks to store."""
        if self._open_kind is not None:
            self.blocks.append(
                {"type": self._open_kind, self._open_kind: "".join(self._open_parts)}
            )
            self._open_kind = None
            self._open_parts = []
        self._pending.clear()
        return self.blocks

    def _streamed(self, kind: str, text: str) -> None:
        if self._pending:
            self._send_pending()
        if self._open_kind != kind:
            self._close_open()
            self._open_kind = kind
            self._sink.emit(sse.content_block_start(index=len(self.blocks), block_type=kind))
        self._open_parts.append(text)
        self._sink.emit_delta(index=len(self.blocks), block_type=kind, text=text)

    def _close_open(self) -> None:
        if self._open_kind is None:
            return
        self._sink.emit(sse.content_block_stop(index=len(self.blocks)))
        self.blocks.append({"type": self._open_kind, self._open_kind: "".join(self._open_parts)})
        self._open_kind = None
        self._open_parts = []

    def _send_pending(self) -> None:
        for call in self._pending.values():
            arguments = "".join(call.arguments)
            block = tool_use_block(tool_use_id=call.id, name=call.name, arguments=arguments)
            index = len(self.blocks)
            self._sink.emit(
                sse.tool_use_block_start(index=index, tool_use_id=call.id, name=call.name)
            )
            if block["input"]:
                self._sink.emit(sse.input_json_delta(index=index, partial_json=arguments))
            self._sink.emit(sse.content_block_stop(index=index))
            self.blocks.append(block)
        self._pending.clear()
