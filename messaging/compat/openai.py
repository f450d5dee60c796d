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
from conversations.blocks import STOP_SEQUENCE_MAX_CHARS, STOP_SEQUENCES_MAX
from conversations.models import Message, ReasoningEffort
from conversations.serializers import SYSTEM_PROMPT_MAX_LENGTH, conversation_metadata_validate
from messaging.compat.base import (
    CONVERSATION_HEADER,
    Answer,
    CompatCall,
    CompatSendView,
    answer_events,
    answer_stored,
    compat_send,
    continue_on_loop,
    text_content,
    unsupported_fields_error,
)
from messaging.llm.base import ChatMessage
from messaging.views import answer_error, event_stream_response

TAG = "compatibility"
_UNSUPPORTED = (
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "response_format",
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
    # Accepted and without effect: every call is stored, and the caller is known by its key.
    store = serializers.BooleanField(required=False, allow_null=True)
    user = serializers.CharField(max_length=256, required=False, allow_blank=True)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            offered = [name for name in _UNSUPPORTED if name in data]
            if offered:
                raise unsupported_fields_error(offered)
        return super().to_internal_value(data)

    def validate_messages(self, messages: list[Any]) -> list[ChatMessage]:
        parsed = []
        for index, message in enumerate(messages):
            field = f"messages.{index}"
            role = message.get("role") if isinstance(message, dict) else None
            if role == "developer":
                role = "system"  # the newer name of the system role
            if role not in ("system", "user", "assistant"):
                raise serializers.ValidationError(
                    f"{field}: role must be system, developer, user or assistant."
                )
            unknown = set(message) - {"role", "content", "name"}
            if unknown:
                raise serializers.ValidationError(
                    f"{field}: {sorted(unknown)[0]} is not supported."
                )
            parsed.append(
                ChatMessage(role=role, content=text_content(message.get("content"), field=field))
            )
        if parsed[-1].role != "user":
            raise serializers.ValidationError("The last message must be the user's.")
        return parsed

    def validate_metadata(self, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if metadata is None else conversation_metadata_validate(metadata)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in attrs["messages"] if m.role == "system")
        if len(system) > SYSTEM_PROMPT_MAX_LENGTH:
            raise serializers.ValidationError(
                {"messages": [f"The system messages exceed {SYSTEM_PROMPT_MAX_LENGTH} characters."]}
            )
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
        messages: list[ChatMessage] = data["messages"]
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
        )


def completion_id(message_id: Any) -> str:
    return f"chatcmpl-{uuid.UUID(str(message_id)).hex}"


def chat_completion(assistant: Message, *, created: int) -> dict[str, Any]:
    """The stored answer as a ``chat.completion``."""
    message: dict[str, Any] = {"role": "assistant", "content": assistant.content, "refusal": None}
    if assistant.reasoning:
        message["reasoning"] = assistant.reasoning  # Groq's name for it
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

    def on_content_block_delta(self, event: dict[str, Any]) -> bytes:
        delta = event["delta"]
        if delta["type"] == "thinking_delta":
            return self.chunk({"reasoning": delta["thinking"]})  # Groq's name for it
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
        "Text messages only (system, developer, user, assistant); n=1; no tools or "
        "response_format (400). Errors in OpenAI's shape.",
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
