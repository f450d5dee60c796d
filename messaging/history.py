"""Stored messages as the provider reads them: content blocks to OpenAI-style chat messages.

An assistant message's ``tool_use`` blocks become its ``tool_calls``; the next user message's
``tool_result`` blocks become one ``role: "tool"`` message each, in order, before any text it
carries. Reasoning (``thinking`` blocks) is never sent back: Groq refuses it in assistant
messages.
"""

from collections.abc import Sequence

import orjson

from conversations.blocks import Block, blocks_text, tool_result_text, tool_results, tool_uses
from messaging.llm.base import ChatMessage, ToolCall

# OpenAI's tool messages have no error flag: a failed tool's result says so in its text.
TOOL_ERROR_PREFIX = "Error: "


def tool_call_from(block: Block) -> ToolCall:
    """A stored ``tool_use`` as the call the model made: its arguments as it wrote them when
    they were not JSON, else its input re-encoded."""
    arguments = (
        str(block["raw_input"]) if block.get("is_error") else orjson.dumps(block["input"]).decode()
    )
    return ToolCall(id=block["id"], name=block["name"], arguments=arguments)


def chat_messages_from(*, role: str, content: str, blocks: Sequence[Block]) -> list[ChatMessage]:
    """One stored message as zero or more provider messages (none when it says nothing)."""
    if not blocks:
        return [ChatMessage("user" if role == "user" else "assistant", content)] if content else []
    text = blocks_text(blocks)
    if role == "assistant":
        calls = tuple(tool_call_from(block) for block in tool_uses(blocks))
        return [ChatMessage("assistant", text, tool_calls=calls)] if text or calls else []
    messages = [
        ChatMessage(
            "tool",
            (TOOL_ERROR_PREFIX if block.get("is_error") else "") + tool_result_text(block),
            tool_call_id=block["tool_use_id"],
        )
        for block in tool_results(blocks)
    ]
    if text:
        messages.append(ChatMessage("user", text))
    return messages
