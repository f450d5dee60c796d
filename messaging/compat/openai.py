"""OpenAI's Chat Completions: ``POST /v1/chat/completions``
(https://platform.openai.com/docs/api-reference/chat). The answer's Anthropic events are
translated into ``chat.completion.chunk`` lines ending with ``data: [DONE]``, the stored
answer into a ``chat.completion``, and errors into ``{"error": {message, type, param,
code}}`` with the same status codes."""

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from chatapi.openapi import sse_schema_response
from chatapi.serializers import JsonBodySerializer
from conversations.blocks import (
    STOP_SEQUENCE_MAX_CHARS,
    STOP_SEQUENCES_MAX,
    TOOLS_MAX,
    Block,
    ToolDefinitionSerializer,
    assistant_block,
    text_blocks,
    tool_uses,
    tools_problem,
    user_block,
)
from conversations.models import Message, ReasoningEffort
from conversations.serializers import (
    SYSTEM_PROMPT_MAX_LENGTH,
    conversation_metadata_validate,
    tools_validate,
    unstorable_text,
)
from messaging.compat.base import (
    CONVERSATION_HEADER,
    Answer,
    CompatCall,
    CompatMessage,
    CompatSendView,
    answer_events,
    answer_stored,
    compat_send,
    continue_on_loop,
    text_content,
    tool_pairs_problem,
    unsupported_fields_error,
)
from messaging.history import tool_call_from
from messaging.serializers import ResponseFormatField
from messaging.views import answer_error, event_stream_response

TAG = "compatibility"
_UNSUPPORTED = (
    "functions",
    "function_call",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
)
_MAX_MESSAGES = 1000
# Anthropic's stop reasons (what chatapi stores) -> OpenAI's finish reasons.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "cancelled": "stop",
}


class ChatCompletionSerializer(JsonBodySerializer):
    model = serializers.CharField(max_length=100)
    messages = serializers.ListField(
        child=serializers.JSONField(), min_length=1, max_length=_MAX_MESSAGES
    )
    stream = serializers.BooleanField(default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, allow_null=True)
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    max_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    max_completion_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    stop = serializers.JSONField(required=False, allow_null=True)
    reasoning_effort = serializers.ChoiceField(
        choices=ReasoningEffort.choices, required=False, allow_null=True
    )
    n = serializers.IntegerField(min_value=1, max_value=1, required=False, allow_null=True)
    metadata = serializers.DictField(required=False, allow_null=True)
    tools = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        allow_null=True,
        help_text=f"Function tools, at most {TOOLS_MAX}: {{type: function, function: {{name, "
        "description, parameters}} (parameters a JSON Schema of type object; strict: true is "
        "not offered).",
    )
    tool_choice = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="none, auto, required, or {type: function, function: {name}}.",
    )
    response_format = ResponseFormatField(required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="true (the default) only: the model may call several tools in one answer.",
    )
    # Accepted and without effect: every call is stored, and the caller is known by its key.
    store = serializers.BooleanField(required=False, allow_null=True)
    user = serializers.CharField(max_length=256, required=False, allow_blank=True)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            offered = [name for name in _UNSUPPORTED if name in data]
            if offered:
                raise unsupported_fields_error(offered)
        return super().to_internal_value(data)

    def validate_messages(self, messages: list[Any]) -> list[CompatMessage]:
        parsed: list[CompatMessage] = []
        # Each parsed message's index in the request (the first, for merged tool messages).
        origins: list[int] = []
        for index, message in enumerate(messages):
            field = f"messages.{index}"
            role = message.get("role") if isinstance(message, dict) else None
            if role == "developer":
                role = "system"  # the newer name of the system role
            if role not in _MESSAGE_FIELDS:
                raise serializers.ValidationError(
                    f"{field}: role must be system, developer, user, assistant or tool."
                )
            unknown = set(message) - _MESSAGE_FIELDS[role]
            if unknown:
                raise serializers.ValidationError(
                    f"{field}: {sorted(unknown)[0]} is not supported."
                )
            if role == "tool":
                result = _tool_result(message, field=field)
                if index and messages[index - 1].get("role") == "tool":
                    # The results of one answer's calls: one user message, as stored.
                    parsed[-1] = CompatMessage("user", (*parsed[-1].blocks, result))
                    continue
                parsed.append(CompatMessage("user", (result,)))
            elif role == "assistant":
                parsed.append(_answer(message, field=field))
            else:
                parsed.append(
                    CompatMessage.text(role, text_content(message.get("content"), field=field))
                )
            origins.append(index)
        if parsed[-1].role != "user":
            raise serializers.ValidationError("The last message must be the user's or a tool's.")
        turns = [
            (origin, m) for origin, m in zip(origins, parsed, strict=True) if m.role != "system"
        ]
        unanswered = tool_pairs_problem([m for _, m in turns])
        if unanswered is not None:
            index, problem = unanswered
            raise serializers.ValidationError(f"messages.{turns[index][0]}: {problem}")
        return parsed

    def validate_tools(self, tools: list[Any] | None) -> list[Block]:
        if not tools:
            return []
        definitions = []
        for index, tool in enumerate(tools):
            checked = ToolDefinitionSerializer(data=_tool_definition(tool, index))
            if not checked.is_valid():
                name, reasons = next(iter(checked.errors.items()))
                sent_as = {"input_schema": "parameters"}.get(name, name)
                raise serializers.ValidationError(f"tools.{index}.function.{sent_as}: {reasons[0]}")
            definitions.append(dict(checked.validated_data))
        return tools_validate(definitions)

    def validate_tool_choice(self, choice: Any) -> Block | None:
        if choice is None:
            return None
        if isinstance(choice, str) and choice in _TOOL_CHOICES:
            return {"type": _TOOL_CHOICES[choice]}
        function = choice.get("function") if isinstance(choice, dict) else None
        if (
            not isinstance(function, dict)
            or choice.get("type") != "function"
            or not isinstance(function.get("name"), str)
        ):
            raise serializers.ValidationError(
                "none, auto, required, or {type: function, function: {name}}."
            )
        return {"type": "tool", "name": function["name"]}

    def validate_parallel_tool_calls(self, value: bool | None) -> bool | None:
        if value is False:
            raise serializers.ValidationError(
                "Only true (the default): chatapi cannot hold the model to one call per answer."
            )
        return value

    def validate_metadata(self, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if metadata is None else conversation_metadata_validate(metadata)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in attrs["messages"] if m.role == "system")
        if len(system) > SYSTEM_PROMPT_MAX_LENGTH:
            raise serializers.ValidationError(
                {"messages": [f"The system messages exceed {SYSTEM_PROMPT_MAX_LENGTH} characters."]}
            )
        choice = attrs.get("tool_choice")
        problem = tools_problem(attrs.get("tools") or [], choice)
        if problem:
            raise serializers.ValidationError({"tool_choice" if choice else "tools": [problem]})
        if choice is not None and choice["type"] != "none" and not attrs.get("tools"):
            raise serializers.ValidationError({"tool_choice": ["Only with tools."]})
        return attrs

    def validate_stop(self, stop: Any) -> list[str]:
        if stop is None:
            return []
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or len(stops) > STOP_SEQUENCES_MAX
            or not all(isinstance(s, str) and 0 < len(s) <= STOP_SEQUENCE_MAX_CHARS for s in stops)
        ):
            raise serializers.ValidationError("A string or up to 4 strings.")
        return stops

    def call(self) -> CompatCall:
        data = self.validated_data
        messages: list[CompatMessage] = data["messages"]
        # System messages become the conversation's system prompt, in order.
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns = tuple(m for m in messages if m.role != "system")
        return CompatCall(
            model=data["model"],
            messages=turns,
            system=system,
            max_output_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
            stream=data["stream"],
            temperature=data.get("temperature"),
            top_p=data.get("top_p"),
            stop_sequences=tuple(data.get("stop") or ()),
            reasoning_effort=data.get("reasoning_effort"),
            metadata=data.get("metadata") or {},
            tools=tuple(data.get("tools") or ()),
            tool_choice=data.get("tool_choice"),
            response_format=data.get("response_format"),
        )


_MESSAGE_FIELDS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    # What the SDK sends back of an answer it was given, appended as it is.
    "assistant": {
        "role",
        "content",
        "name",
        "tool_calls",
        "refusal",
        "reasoning",
        "annotations",
        "audio",
        "function_call",
        "parsed",
    },
    "tool": {"role", "content", "tool_call_id"},
}
_TOOL_CHOICES = {"none": "none", "auto": "auto", "required": "any"}


def _tool_result(message: dict[str, Any], *, field: str) -> Block:
    if not isinstance(message.get("tool_call_id"), str) or not message["tool_call_id"]:
        raise serializers.ValidationError(f"{field}.tool_call_id must be a string.")
    return user_block(
        {
            "type": "tool_result",
            "tool_use_id": message.get("tool_call_id"),
            "content": text_content(message.get("content"), field=field),
        },
        field,
    )


def _answer(message: dict[str, Any], *, field: str) -> CompatMessage:
    """An earlier answer sent back: its reasoning (Groq's field), text and tool calls. What
    else the SDK's own message object carries is its reading of the answer (annotations, its
    parse of the content) and goes: chatapi's answers have no audio or function_call."""
    for name in ("audio", "function_call"):
        if message.get(name) is not None:
            raise serializers.ValidationError(f"{field}.{name} is not supported.")
    content = message.get("content")
    text = "" if content is None else text_content(content, field=field)
    blocks: list[Block] = []
    if message.get("reasoning"):
        blocks.append(
            assistant_block({"type": "thinking", "thinking": message["reasoning"]}, field)
        )
    blocks += text_blocks(text)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise serializers.ValidationError(f"{field}.tool_calls must be a list.")
    for index, call in enumerate(calls):
        path = f"{field}.tool_calls.{index}"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise serializers.ValidationError(
                f"{path}: a function call, {{id, type: function, function: {{name, arguments}}}}."
            )
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except (orjson.JSONDecodeError, TypeError):
            arguments = None
        if not isinstance(arguments, dict):
            raise serializers.ValidationError(
                f"{path}.function.arguments must be a JSON object in a string."
            )
        blocks.append(
            assistant_block(
                {
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "input": arguments,
                },
                path,
            )
        )
    problem = unstorable_text([block["input"] for block in tool_uses(blocks)])
    if problem:
        raise serializers.ValidationError(f"{field}: {problem}")
    return CompatMessage("assistant", tuple(blocks))


def _tool_definition(tool: Any, index: int) -> Block:
    """An OpenAI function tool as an Anthropic tool definition (name, description,
    input_schema), to be checked as the native routes check theirs."""
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(function, dict)
        or tool.get("type") != "function"
        or set(tool)
        - {
            "type",
            "function",
        }
    ):
        raise serializers.ValidationError(
            f"tools.{index}: a function tool, {{type: function, function: {{name, description, "
            "parameters}}."
        )
    unknown = set(function) - {"name", "description", "parameters", "strict"}
    if unknown:
        raise serializers.ValidationError(
            f"tools.{index}.function.{sorted(unknown)[0]} is not supported."
        )
    if function.get("strict"):
        raise serializers.ValidationError(
            f"tools.{index}.function.strict: true is not offered (no structured outputs)."
        )
    return {
        "name": function.get("name"),
        "description": function.get("description") or "",
        "input_schema": function.get("parameters", {"type": "object", "properties": {}}),
    }


def completion_id(message_id: Any) -> str:
    return f"chatcmpl-{uuid.UUID(str(message_id)).hex}"


def chat_completion(assistant: Message, *, created: int) -> dict[str, Any]:
    """The stored answer as a ``chat.completion``: its text (null when it only called tools,
    as OpenAI's), reasoning and tool calls."""
    calls = [_tool_call(block) for block in tool_uses(assistant.blocks)]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": assistant.content if assistant.content or not calls else None,
        "refusal": None,
    }
    if assistant.reasoning:
        message["reasoning"] = assistant.reasoning  # Groq's name for it
    if calls:
        message["tool_calls"] = calls
    prompt, completion = assistant.input_tokens or 0, assistant.output_tokens or 0
    return {
        "id": completion_id(assistant.pk),
        "object": "chat.completion",
        "created": created,
        "model": assistant.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(assistant.stop_reason, "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _tool_call(block: Block) -> dict[str, Any]:
    call = tool_call_from(block)  # the arguments as the provider is sent them back
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class _ChunkWriter:
    """Anthropic events in, ``chat.completion.chunk`` lines out (see ``chunks``)."""

    def __init__(self, *, model: str, created: int, include_usage: bool) -> None:
        self.id = ""
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.usage: dict[str, int] | None = None
        # The index of each tool_use block among the answer's tool calls, by block index.
        self.calls: dict[int, int] = {}

    def write(self, event: dict[str, Any]) -> bytes:
        handler = getattr(self, f"on_{event['type']}", None)
        return handler(event) if handler is not None else b""  # unknown types: ignored

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        body: dict[str, Any] = {**self._head(), "choices": [choice]}
        if self.include_usage:
            body["usage"] = None  # as OpenAI: null on every chunk but the last
        return _sse(body)

    def _head(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def on_message_start(self, event: dict[str, Any]) -> bytes:
        self.id = completion_id(event["message"]["id"])
        self.model = event["message"]["model"] or self.model
        return self.chunk({"role": "assistant", "content": ""})

    def on_content_block_start(self, event: dict[str, Any]) -> bytes:
        block = event["content_block"]
        if block["type"] != "tool_use":
            return b""
        self.calls[event["index"]] = index = len(self.calls)
        call = {"name": block["name"], "arguments": ""}
        return self.chunk(
            {
                "tool_calls": [
                    {"index": index, "id": block["id"], "type": "function", "function": call}
                ]
            }
        )

    def on_content_block_delta(self, event: dict[str, Any]) -> bytes:
        delta = event["delta"]
        if delta["type"] == "thinking_delta":
            return self.chunk({"reasoning": delta["thinking"]})  # Groq's name for it
        if delta["type"] == "input_json_delta":
            index = self.calls[event["index"]]
            return self.chunk(
                {"tool_calls": [{"index": index, "function": {"arguments": delta["partial_json"]}}]}
            )
        return self.chunk({"content": delta.get("text", "")})

    def on_message_delta(self, event: dict[str, Any]) -> bytes:
        prompt = event["usage"].get("input_tokens", 0)
        completion = event["usage"]["output_tokens"]
        self.usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        return self.chunk({}, FINISH_REASONS.get(event["delta"]["stop_reason"], "stop"))

    def on_message_stop(self, event: dict[str, Any]) -> bytes:
        usage = b""
        if self.include_usage and self.usage is not None:
            usage = _sse({**self._head(), "choices": [], "usage": self.usage})
        return usage + b"data: [DONE]\n\n"

    def on_error(self, event: dict[str, Any]) -> bytes:
        error = event["error"]
        return _sse(
            {
                "error": {
                    "message": error["message"],
                    "type": error["type"],
                    "param": None,
                    "code": None,
                }
            }
        )

    def on_ping(self, event: dict[str, Any]) -> bytes:
        return b": ping\n\n"  # a comment, which clients skip: keeps proxies from timing out


async def chunks(
    events: AsyncIterator[bytes], *, model: str, created: int, include_usage: bool
) -> AsyncIterator[bytes]:
    """An answer's Anthropic events (the bytes the native route streams, whole events per
    read) as ``chat.completion.chunk`` lines: the role first, then content (and Groq-style
    ``reasoning``) deltas, the finish reason, the usage chunk when asked, ``[DONE]``. An
    ``error`` event becomes an ``{"error": ...}`` line, which the OpenAI SDK raises."""
    writer = _ChunkWriter(model=model, created=created, include_usage=include_usage)
    async for batch in events:
        out = b"".join(
            writer.write(orjson.loads(raw.split(b"data: ", 1)[1]))
            for raw in batch.split(b"\n\n")
            if b"data: " in raw
        )
        if out:
            yield out


# OpenAI's code for some of chatapi's errors (the SDKs pick their exception by status).
_CODES = {401: "invalid_api_key", 402: "insufficient_quota", 429: "rate_limit_exceeded"}


def openai_error_body(body: dict[str, Any], status_code: int) -> dict[str, Any]:
    """chatapi's envelope in OpenAI's shape: ``{"error": {message, type, param, code}}``,
    with the request id kept beside it."""
    error = body.get("error") or {}
    fields = (error.get("details") or {}).get("fields") or {}
    param = next(iter(fields), None)
    code = _CODES.get(status_code)
    if status_code == 404 and "Conversation" not in str(error.get("message", "")):
        code = "model_not_found"
    return {
        "error": {
            "message": error.get("message", "Request failed."),
            "type": error.get("type", "api_error"),
            "param": param,
            "code": code,
        },
        "request_id": body.get("request_id"),
    }


class ChatCompletionsView(CompatSendView):
    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if isinstance(response.data, dict) and response.data.get("type") == "error":
            response.data = openai_error_body(response.data, response.status_code)
        return response

    @extend_schema(
        operation_id="openai_chat_completions_create",
        tags=[TAG],
        summary="OpenAI Chat Completions: create a chat completion",
        description="`openai.OpenAI(base_url=.../v1, api_key=<chatapi key>)` works unchanged. "
        "Text messages (system, developer, user, assistant) and function tools: tools, "
        "tool_choice, an answer's tool_calls (streamed as tool_calls deltas) and tool messages "
        "sent back; response_format json_object or json_schema (chat.completions.parse works). "
        "n=1; no functions (the older form), images or audio (400). Errors in OpenAI's shape.",
        parameters=[
            OpenApiParameter(
                CONVERSATION_HEADER,
                OpenApiTypes.UUID,
                OpenApiParameter.HEADER,
                description="Continue this stored conversation of yours: send only the new "
                "user message. Every answer names its conversation in the same header.",
            )
        ],
        request=ChatCompletionSerializer,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="A chat.completion."),
            (200, "text/event-stream"): sse_schema_response(
                "With stream: chat.completion.chunk lines, then data: [DONE]."
            ),
            404: OpenApiResponse(description="Unknown model, or conversation not found."),
            402: OpenApiResponse(description="A usage budget is spent (insufficient_quota)."),
            409: OpenApiResponse(description="An answer is in progress in the conversation."),
            429: OpenApiResponse(description="A rate limit (with retry-after)."),
            502: OpenApiResponse(description="The model provider failed or refused this server."),
            503: OpenApiResponse(description="The model provider is not configured."),
            504: OpenApiResponse(description="The model provider timed out."),
            529: OpenApiResponse(description="The model provider is overloaded."),
        },
        extensions={"x-error-shape": "openai"},
        examples=[
            OpenApiExample(
                "hello",
                value={
                    "model": "openai/gpt-oss-20b",
                    "messages": [{"role": "user", "content": "Hello"}],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> HttpResponseBase:
        serializer = ChatCompletionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        call = serializer.call()
        options = serializer.validated_data.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))
        answer = compat_send(request, call)
        self.conversation_id = answer.conversation_id
        created = int(time.time())

        async def finish() -> HttpResponseBase:
            return await _finish(
                answer, stream=call.stream, created=created, include_usage=include_usage
            )

        return continue_on_loop(answer, finish)


async def _finish(
    answer: Answer, *, stream: bool, created: int, include_usage: bool
) -> HttpResponseBase:
    if stream:
        events, model = await answer_events(answer)
        return event_stream_response(
            chunks(events, model=model, created=created, include_usage=include_usage)
        )
    assistant = await answer_stored(answer)
    if assistant.status != Message.Status.COMPLETE:
        raise answer_error(assistant)
    return Response(chat_completion(assistant, created=created))
