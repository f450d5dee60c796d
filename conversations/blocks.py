"""A message's content as Anthropic content blocks, and the tools a conversation offers.

Blocks are stored as JSON, as the API shows them (https://docs.anthropic.com/en/api/messages):
``text`` (``text``), ``thinking`` (``thinking``), ``tool_use`` (``id``, ``name``, ``input``)
and ``tool_result`` (``tool_use_id``, ``content`` a string or text blocks, ``is_error``).
A ``tool_use`` whose arguments the model got wrong (not a JSON object) keeps ``input: {}``
and adds ``is_error: true`` and ``raw_input``, the text as the model wrote it.

A message's ``content`` column stays its text (the text blocks joined), for the clients and
the search that read it.
"""

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chatapi.serializers import JsonBodySerializer

Block = dict[str, Any]

TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)
TOOLS_MAX = 128
TOOL_DESCRIPTION_MAX_CHARS = 10_000
STOP_SEQUENCES_MAX = 4
STOP_SEQUENCE_MAX_CHARS = 200
BLOCKS_MAX = 256


def text_blocks(text: str, reasoning: str = "") -> list[Block]:
    """The blocks of a message stored before blocks existed: its reasoning, then its text."""
    blocks: list[Block] = []
    if reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning})
    if text:
        blocks.append({"type": "text", "text": text})
    return blocks


def blocks_text(blocks: Iterable[Block]) -> str:
    return "".join(block["text"] for block in blocks if block["type"] == "text")


def tool_uses(blocks: Iterable[Block]) -> list[Block]:
    return [block for block in blocks if block["type"] == "tool_use"]


def tool_results(blocks: Iterable[Block]) -> list[Block]:
    return [block for block in blocks if block["type"] == "tool_result"]


def tool_result_text(block: Block) -> str:
    """A result's content as one string (text blocks joined), as it goes upstream."""
    content = block.get("content", "")
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content)


def tool_input_text(block: Block) -> str:
    """A tool call's input for people to read: indented JSON, or the model's own text when
    it was not JSON."""
    if block.get("is_error"):
        return str(block.get("raw_input", ""))
    return json.dumps(block["input"], indent=2, ensure_ascii=False)


def tool_results_problem(*, open_ids: Sequence[str], blocks: Sequence[Block]) -> str | None:
    """Why a user message's ``blocks`` do not answer the previous assistant message's open
    tool calls ``open_ids`` (each exactly once, nothing else), or None when they do."""
    answered = [block["tool_use_id"] for block in tool_results(blocks)]
    if not open_ids:
        if answered:
            return (
                "There are no open tool calls to answer: tool_result blocks name "
                f"{', '.join(answered)}."
            )
        return None
    if not answered:
        return (
            "The previous answer called tools: the next message must carry a tool_result "
            f"block for each of {', '.join(open_ids)}."
        )
    duplicated = sorted({i for i in answered if answered.count(i) > 1})
    missing = [i for i in open_ids if i not in answered]
    unknown = [i for i in answered if i not in open_ids]
    problems = []
    if missing:
        problems.append(f"missing a result for {', '.join(missing)}")
    if unknown:
        problems.append(f"results for unknown tool calls {', '.join(unknown)}")
    if duplicated:
        problems.append(f"more than one result for {', '.join(duplicated)}")
    if not problems:
        return None
    return (
        f"The tool_result blocks must answer exactly the open tool calls "
        f"({', '.join(open_ids)}): {'; '.join(problems)}."
    )


# --- Validation of what a client sends ---------------------------------------------------


# DRF's own checks (and messages) for text: no NUL, no lone surrogates.
_TEXT = serializers.CharField(trim_whitespace=False, allow_blank=True)


def _text(value: Any, path: str, *, blank: bool = False) -> str:
    if not isinstance(value, str):
        raise serializers.ValidationError(f"{path} must be a string.")
    try:
        text: str = _TEXT.run_validation(value)
    except serializers.ValidationError as error:
        detail = error.detail
        reason = detail[0] if isinstance(detail, list) and detail else detail
        raise serializers.ValidationError(f"{path}: {reason}") from None
    if not blank and not text.strip():
        raise serializers.ValidationError(f"{path} may not be blank.")
    return text


def _keys(block: dict[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(block) - allowed)
    if unknown:
        raise serializers.ValidationError(f"{path}: unknown field {', '.join(unknown)}.")


def user_block(block: Any, path: str) -> Block:
    """A user message's block as a client sends it: text or tool_result."""
    if not isinstance(block, dict):
        raise serializers.ValidationError(f"{path} must be an object.")
    kind = block.get("type")
    if kind == "text":
        _keys(block, {"type", "text"}, path)
        return {"type": "text", "text": _text(block.get("text"), f"{path}.text")}
    if kind == "tool_result":
        _keys(block, {"type", "tool_use_id", "content", "is_error"}, path)
        tool_use_id = _text(block.get("tool_use_id"), f"{path}.tool_use_id")
        content = block.get("content", "")
        if isinstance(content, list):
            content = [_text_only(part, f"{path}.content[{i}]") for i, part in enumerate(content)]
        else:
            content = _text(content, f"{path}.content", blank=True)
        is_error = block.get("is_error", False)
        if not isinstance(is_error, bool):
            raise serializers.ValidationError(f"{path}.is_error must be true or false.")
        return {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "content": content,
            "is_error": is_error,
        }
    raise serializers.ValidationError(
        f"{path}.type must be text or tool_result (got {kind!r})."
        if isinstance(kind, str)
        else f"{path}.type must be text or tool_result."
    )


def assistant_block(block: Any, path: str) -> Block:
    """An earlier answer's block as a client sends it back in a history (the stateless
    compatibility routes): text, thinking (its signature is not kept: the providers behind
    chatapi sign nothing) or tool_use (id, name, an input object)."""
    if not isinstance(block, dict):
        raise serializers.ValidationError(f"{path} must be an object.")
    kind = block.get("type")
    if kind == "text":
        _keys(block, {"type", "text"}, path)
        return {"type": "text", "text": _text(block.get("text"), f"{path}.text", blank=True)}
    if kind == "thinking":
        _keys(block, {"type", "thinking", "signature"}, path)
        return {"type": "thinking", "thinking": _text(block.get("thinking"), f"{path}.thinking")}
    if kind == "tool_use":
        _keys(block, {"type", "id", "name", "input"}, path)
        tool_use_id = _text(block.get("id"), f"{path}.id")
        name = block.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise serializers.ValidationError(f"{path}.name must match {TOOL_NAME_PATTERN}.")
        tool_input = block.get("input")
        if not isinstance(tool_input, dict):
            raise serializers.ValidationError(f"{path}.input must be an object.")
        return {"type": "tool_use", "id": tool_use_id, "name": name, "input": tool_input}
    raise serializers.ValidationError(
        f"{path}.type must be text, thinking or tool_use (got {kind!r})."
        if isinstance(kind, str)
        else f"{path}.type must be text, thinking or tool_use."
    )


def _text_only(part: Any, path: str) -> Block:
    if not isinstance(part, dict) or part.get("type") != "text":
        raise serializers.ValidationError(f"{path} must be a text block.")
    _keys(part, {"type", "text"}, path)
    return {"type": "text", "text": _text(part.get("text"), f"{path}.text", blank=True)}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "A text block {type: text, text} or a tool_result block "
                    "{type: tool_result, tool_use_id, content (a string or text blocks), "
                    "is_error}.",
                },
            },
        ]
    }
)
class UserContentField(serializers.Field[list[Block], Any, Any, Any]):
    """A user message's content: a string (one text block), or a list of ``text`` and
    ``tool_result`` blocks. Validates to the list of blocks."""

    def __init__(self, *, max_chars: int, **kwargs: Any) -> None:
        self.max_chars = max_chars
        # A string is judged as it always was: DRF's text checks and messages.
        self._string = serializers.CharField(max_length=max_chars, trim_whitespace=False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[Block]:
        if isinstance(data, str):
            text = self._string.run_validation(data)
            if not text.strip():
                raise serializers.ValidationError(self._string.error_messages["blank"])
            return [{"type": "text", "text": text}]
        if isinstance(data, list):
            if not data:
                raise serializers.ValidationError("content may not be an empty list.")
            if len(data) > BLOCKS_MAX:
                raise serializers.ValidationError(f"At most {BLOCKS_MAX} blocks are allowed.")
            blocks = [user_block(block, f"content[{i}]") for i, block in enumerate(data)]
        else:
            raise serializers.ValidationError("Must be a string or a list of content blocks.")
        size = sum(
            len(block["text"] if block["type"] == "text" else tool_result_text(block))
            for block in blocks
        )
        if size > self.max_chars:
            raise serializers.ValidationError(
                f"Ensure this field has no more than {self.max_chars} characters."
            )
        return blocks

    def to_representation(self, value: list[Block]) -> list[Block]:
        return value


class ToolDefinitionSerializer(JsonBodySerializer):
    name = serializers.RegexField(
        TOOL_NAME_PATTERN, help_text=f"The tool's name, matching {TOOL_NAME_PATTERN}."
    )
    description = serializers.CharField(
        max_length=TOOL_DESCRIPTION_MAX_CHARS, required=False, allow_blank=True, default=""
    )
    input_schema = serializers.DictField(help_text="A JSON Schema of type object.")

    def validate_input_schema(self, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise serializers.ValidationError('The input schema must have "type": "object".')
        return value


class ToolChoiceSerializer(JsonBodySerializer):
    type = serializers.ChoiceField(choices=["auto", "any", "tool", "none"])
    name = serializers.RegexField(
        TOOL_NAME_PATTERN, required=False, help_text="The tool to call, with type tool."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (attrs["type"] == "tool") != ("name" in attrs):
            raise serializers.ValidationError(
                {"name": ["Required with type tool, and only with it."]}
            )
        return attrs


def tools_problem(tools: Sequence[Block], tool_choice: Block | None) -> str | None:
    """Why these tools and this choice cannot go together, or None."""
    names = [tool["name"] for tool in tools]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        return f"Tool names must be unique: {', '.join(duplicated)}."
    if tool_choice and tool_choice["type"] == "tool" and tool_choice["name"] not in names:
        return f"tool_choice names {tool_choice['name']}, which is not one of the tools."
    return None
