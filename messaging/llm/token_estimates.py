"""Offline token estimates, for context budgeting before a call and for usage when the
provider reports none (a dropped stream). Provider-reported counts always replace them.

No tokenizer download at run time (tiktoken fetches its files; servers here are offline):
UTF-8 bytes / 4 over-counts English by about a quarter and is close for code and CJK
(3 bytes a character), so it errs on the side of leaving room in the context window.
"""

from collections.abc import Iterable

import orjson

from messaging.llm.base import ChatMessage, ToolDefinition

BYTES_PER_TOKEN = 4
# Chat templates add role markers and separators around every message.
TOKENS_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    return estimate_tokens_of_size(len(text.encode("utf-8")))


def estimate_tokens_of_size(utf8_bytes: int) -> int:
    """The estimate for a text of this many UTF-8 bytes (what PostgreSQL's octet_length
    gives, so a history can be budgeted without reading its texts)."""
    return -(-utf8_bytes // BYTES_PER_TOKEN)


def estimate_messages_tokens(messages: Iterable[ChatMessage]) -> int:
    """Text, plus each tool call's name and arguments (the model reads those too)."""
    return sum(
        estimate_tokens(m.content)
        + TOKENS_PER_MESSAGE
        + sum(estimate_tokens(c.name) + estimate_tokens(c.arguments) for c in m.tool_calls)
        for m in messages
    )


def estimate_tools_tokens(tools: Iterable[ToolDefinition]) -> int:
    """The tools' definitions, which the provider writes into the prompt: each one's name,
    description and input schema (as compact JSON), plus a message's overhead."""
    return sum(
        estimate_tokens(tool.name)
        + estimate_tokens(tool.description)
        + estimate_tokens_of_size(len(orjson.dumps(tool.input_schema)))
        + TOKENS_PER_MESSAGE
        for tool in tools
    )
