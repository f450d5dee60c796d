"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``
(https://docs.anthropic.com/en/api/messages). The native envelope is already Anthropic's
error shape, and the native stream Anthropic's events: only the request and the
non-streaming Message are translated here."""

from typing import Any

from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiKeyScope
from accounts.permissions import scopes_all
from chatapi.openapi import sse_schema_response
from chatapi.serializers import JsonBodySerializer
from conversations.blocks import STOP_SEQUENCE_MAX_CHARS, STOP_SEQUENCES_MAX
from conversations.models import Message
from conversations.serializers import SYSTEM_PROMPT_MAX_LENGTH, conversation_metadata_validate
from messaging.compat.base import (
    CONVERSATION_HEADER,
    Answer,
    CompatCall,
    CompatSendView,
    CompatView,
    answer_events,
    answer_stored,
    compat_send,
    continue_on_loop,
    model_or_404,
    text_content,
    unsupported_fields_error,
)
from messaging.llm.base import ChatMessage
from messaging.llm.token_estimates import estimate_messages_tokens
from messaging.serializers import anthropic_message
from messaging.views import answer_error, event_stream_response

TAG = "compatibility"
# Parts of the Messages API chatapi does not offer (yet): named in the 400 they get.
_UNSUPPORTED = ("tools", "tool_choice", "thinking", "top_k", "container", "mcp_servers")
_MAX_MESSAGES = 1000


class AnthropicMessagesSerializer(JsonBodySerializer):
    """The Messages API request, as far as chatapi offers it."""

    model = serializers.CharField(max_length=100)
    max_tokens = serializers.IntegerField(min_value=1)
    messages = serializers.ListField(
        child=serializers.JSONField(), min_length=1, max_length=_MAX_MESSAGES
    )
    system = serializers.JSONField(required=False)
    temperature = serializers.FloatField(min_value=0, max_value=1, required=False)
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False)
    stop_sequences = serializers.ListField(
        child=serializers.CharField(max_length=STOP_SEQUENCE_MAX_CHARS, trim_whitespace=False),
        max_length=STOP_SEQUENCES_MAX,
        required=False,
    )
    stream = serializers.BooleanField(default=False)
    metadata = serializers.DictField(required=False)

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
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise serializers.ValidationError(f"{field}: role must be user or assistant.")
            unknown = set(message) - {"role", "content"}
            if unknown:
                raise serializers.ValidationError(f"{field}: unknown field {sorted(unknown)[0]}.")
            parsed.append(
                ChatMessage(
                    role=message["role"], content=text_content(message.get("content"), field=field)
                )
            )
        if parsed[-1].role != "user":
            raise serializers.ValidationError(
                "The last message must be the user's (prefilling the answer is not supported)."
            )
        return parsed

    def validate_system(self, system: Any) -> str:
        return text_content(system, field="system", max_chars=SYSTEM_PROMPT_MAX_LENGTH)

    def validate_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        return conversation_metadata_validate(metadata)

    def call(self, *, stream: bool | None = None) -> CompatCall:
        data = self.validated_data
        return CompatCall(
            model=data["model"],
            messages=tuple(data["messages"]),
            system=data.get("system", ""),
            max_output_tokens=data["max_tokens"],
            stream=data["stream"] if stream is None else stream,
            temperature=data.get("temperature"),
            top_p=data.get("top_p"),
            stop_sequences=tuple(data.get("stop_sequences", ())),
            metadata=data.get("metadata") or {},
        )


class AnthropicCountTokensSerializer(AnthropicMessagesSerializer):
    max_tokens = None  # type: ignore[assignment]
    stream = None  # type: ignore[assignment]


def compat_message(assistant: Message) -> dict[str, Any]:
    """The stored answer as an Anthropic ``Message``: its thinking, if any, and its text (the
    route offers no tools)."""
    content: list[dict[str, Any]] = []
    if assistant.reasoning:
        content.append({"type": "thinking", "thinking": assistant.reasoning, "signature": ""})
    content.append({"type": "text", "text": assistant.content})
    return anthropic_message(assistant, content=content)


_HEADERS = [
    OpenApiParameter(
        CONVERSATION_HEADER,
        OpenApiTypes.UUID,
        OpenApiParameter.HEADER,
        description="Continue this stored conversation of yours: send only the new user "
        "message. Without it the call is stored as a new conversation. Every answer names "
        "its conversation in the same header.",
    ),
    OpenApiParameter("anthropic-version", OpenApiTypes.STR, OpenApiParameter.HEADER),
    OpenApiParameter("anthropic-beta", OpenApiTypes.STR, OpenApiParameter.HEADER),
]


class AnthropicMessagesView(CompatSendView):
    @extend_schema(
        operation_id="anthropic_messages_create",
        tags=[TAG],
        summary="Anthropic Messages API: create a message",
        description="`anthropic.Anthropic(base_url=..., api_key=<chatapi key>)` works "
        "unchanged. Text content only; no tools, thinking or top_k (400). Errors in "
        "Anthropic's shape; an unknown model is 404.",
        parameters=_HEADERS,
        request=AnthropicMessagesSerializer,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="An Anthropic Message."),
            (200, "text/event-stream"): sse_schema_response(
                "With stream: the Messages streaming events."
            ),
            404: OpenApiResponse(description="Unknown model, or conversation not found."),
            402: OpenApiResponse(description="A usage budget is spent (billing_error)."),
            409: OpenApiResponse(description="An answer is in progress in the conversation."),
            429: OpenApiResponse(description="A rate limit (with retry-after)."),
            502: OpenApiResponse(description="The model provider failed or refused this server."),
            503: OpenApiResponse(description="The model provider is not configured."),
            504: OpenApiResponse(description="The model provider timed out (timeout_error)."),
            529: OpenApiResponse(description="The model provider is overloaded."),
        },
        examples=[
            OpenApiExample(
                "hello",
                value={
                    "model": "openai/gpt-oss-20b",
                    "max_tokens": 1024,
                    "messages": [{"role": "user", "content": "Hello"}],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> HttpResponseBase:
        serializer = AnthropicMessagesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        call = serializer.call()
        answer = compat_send(request, call)
        self.conversation_id = answer.conversation_id

        async def finish() -> HttpResponseBase:
            return await _finish(answer, stream=call.stream)

        return continue_on_loop(answer, finish)


async def _finish(answer: Answer, *, stream: bool) -> HttpResponseBase:
    if stream:
        events, _model = await answer_events(answer)
        return event_stream_response(events)
    assistant = await answer_stored(answer)
    if assistant.status != Message.Status.COMPLETE:
        raise answer_error(assistant)
    return Response(compat_message(assistant))


class AnthropicCountTokensView(CompatView):
    api_key_scopes = scopes_all(ApiKeyScope.CONVERSATIONS_READ)

    @extend_schema(
        operation_id="anthropic_messages_count_tokens",
        tags=[TAG],
        summary="Anthropic Messages API: count tokens",
        description="The estimate the context window is budgeted with (UTF-8 bytes / 4, plus "
        "4 per message), for the request as sent.",
        parameters=_HEADERS[1:],
        request=AnthropicCountTokensSerializer,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"input_tokens": N}'),
            404: OpenApiResponse(description="Unknown model."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = AnthropicCountTokensSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model_or_404(data["model"])
        system = data.get("system", "")
        messages = [*([ChatMessage("system", system)] if system else []), *data["messages"]]
        return Response({"input_tokens": estimate_messages_tokens(messages)})
