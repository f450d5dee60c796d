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
from conversations.blocks import (
    BLOCKS_MAX,
    STOP_SEQUENCE_MAX_CHARS,
    STOP_SEQUENCES_MAX,
    TOOLS_MAX,
    Block,
    ToolChoiceSerializer,
    ToolDefinitionSerializer,
    assistant_block,
    text_blocks,
    tool_result_text,
    tool_uses,
    tools_problem,
    user_block,
)
from conversations.models import Message
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
    CompatView,
    answer_events,
    answer_stored,
    compat_send,
    continue_on_loop,
    model_or_404,
    text_content,
    tool_pairs_problem,
    unsupported_fields_error,
)
from messaging.llm.base import ChatMessage, ToolDefinition
from messaging.llm.token_estimates import estimate_messages_tokens, estimate_tools_tokens
from messaging.serializers import MESSAGE_MAX_CHARS, anthropic_message
from messaging.views import answer_error, event_stream_response

TAG = "compatibility"
# Parts of the Messages API chatapi does not offer (yet): named in the 400 they get.
_UNSUPPORTED = ("thinking", "top_k", "container", "mcp_servers")
_MAX_MESSAGES = 1000


def _uncached(value: Any) -> Any:
    """A block or tool definition without Anthropic's ``cache_control`` hint: the providers
    behind chatapi cache prompts on their own, so the hint is accepted and has no effect."""
    if isinstance(value, dict) and "cache_control" in value:
        return {key: item for key, item in value.items() if key != "cache_control"}
    return value


def _message_blocks(content: Any, *, role: str, field: str) -> tuple[Block, ...]:
    """A message's content as blocks: a string is one text block; a list holds text and
    tool_result blocks (a user's) or text, thinking and tool_use blocks (an answer's)."""
    if isinstance(content, str):
        return tuple(text_blocks(text_content(content, field=field)))
    if not isinstance(content, list):
        raise serializers.ValidationError(
            f"{field}.content must be a string or a list of content blocks."
        )
    if len(content) > BLOCKS_MAX:
        raise serializers.ValidationError(f"{field}.content: at most {BLOCKS_MAX} blocks.")
    parse = user_block if role == "user" else assistant_block
    blocks = []
    for index, sent in enumerate(content):
        block = _uncached(sent)
        if isinstance(block, dict) and isinstance(block.get("content"), list):
            block = {**block, "content": [_uncached(part) for part in block["content"]]}
        blocks.append(parse(block, f"{field}.content[{index}]"))
    size = sum(
        len(tool_result_text(block))
        if block["type"] == "tool_result"
        else len(block.get("text") or block.get("thinking") or "")
        for block in blocks
    )
    if size > MESSAGE_MAX_CHARS:
        raise serializers.ValidationError(f"{field}: at most {MESSAGE_MAX_CHARS} characters.")
    problem = unstorable_text([block["input"] for block in tool_uses(blocks)])
    if problem:
        raise serializers.ValidationError(f"{field}: {problem}")
    return tuple(blocks)


def _client_tools(data: dict[str, Any]) -> dict[str, Any]:
    """The request with its tools and tool_choice as the native routes take them: without
    ``cache_control``, a tool's ``type: custom`` or ``disable_parallel_tool_use: false`` (each
    the default). The provider's own tools and ``disable_parallel_tool_use: true`` are 400."""
    tools, choice = data.get("tools"), data.get("tool_choice")
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            kind = tool.get("type", "custom") if isinstance(tool, dict) else "custom"
            if kind not in ("custom", None):
                problem = (
                    f"tools.{index}: {kind} tools are not offered; only client tools (name, "
                    "description, input_schema)."
                )
                raise serializers.ValidationError({"tools": [problem]})
        data = {
            **data,
            "tools": [
                {k: v for k, v in _uncached(tool).items() if k != "type"}
                if isinstance(tool, dict)
                else tool
                for tool in tools
            ],
        }
    if isinstance(choice, dict) and "disable_parallel_tool_use" in choice:
        if choice["disable_parallel_tool_use"] is not False:
            problem = (
                "disable_parallel_tool_use is not offered: the model may call several tools in "
                "one answer."
            )
            raise serializers.ValidationError({"tool_choice": [problem]})
        choice = {k: v for k, v in choice.items() if k != "disable_parallel_tool_use"}
        data = {**data, "tool_choice": choice}
    return data


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
    tools = ToolDefinitionSerializer(
        many=True,
        required=False,
        help_text=f"Client tools (name, description, input_schema), at most {TOOLS_MAX}; "
        "cache_control is accepted and has no effect. The provider's own tools (a type other "
        "than custom) are not offered.",
    )
    tool_choice = ToolChoiceSerializer(
        required=False, help_text="auto, any, tool (with name) or none."
    )

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            offered = [name for name in _UNSUPPORTED if name in data]
            if offered:
                raise unsupported_fields_error(offered)
            data = _client_tools(data)
        return super().to_internal_value(data)

    def validate_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return tools_validate(tools)

    def validate_messages(self, messages: list[Any]) -> list[CompatMessage]:
        parsed = []
        for index, message in enumerate(messages):
            field = f"messages.{index}"
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise serializers.ValidationError(f"{field}: role must be user or assistant.")
            unknown = set(message) - {"role", "content"}
            if unknown:
                raise serializers.ValidationError(f"{field}: unknown field {sorted(unknown)[0]}.")
            role = message["role"]
            parsed.append(
                CompatMessage(role, _message_blocks(message.get("content"), role=role, field=field))
            )
        if parsed[-1].role != "user":
            raise serializers.ValidationError(
                "The last message must be the user's (prefilling the answer is not supported)."
            )
        unanswered = tool_pairs_problem(parsed)
        if unanswered is not None:
            index, problem = unanswered
            raise serializers.ValidationError(f"messages.{index}: {problem}")
        return parsed

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        problem = tools_problem(attrs.get("tools", []), attrs.get("tool_choice"))
        if problem:
            field = "tool_choice" if "tool_choice" in attrs else "tools"
            raise serializers.ValidationError({field: [problem]})
        return attrs

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
            tools=tuple(data.get("tools", ())),
            tool_choice=data.get("tool_choice"),
        )


class AnthropicCountTokensSerializer(AnthropicMessagesSerializer):
    max_tokens = None  # type: ignore[assignment]
    stream = None  # type: ignore[assignment]


def compat_message(assistant: Message) -> dict[str, Any]:
    """The stored answer as an Anthropic ``Message``: its thinking (with an empty signature:
    nothing signs it), text and tool calls, in order; a text block even when it said nothing
    and called nothing, as Anthropic's answers have."""
    content: list[dict[str, Any]] = []
    for block in assistant.blocks or text_blocks(assistant.content, assistant.reasoning):
        if block["type"] == "thinking":
            content.append({"type": "thinking", "thinking": block["thinking"], "signature": ""})
        elif block["type"] == "text":
            content.append({"type": "text", "text": block["text"]})
        elif block["type"] == "tool_use":
            content.append(
                {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": block["input"],
                }
            )
    if not any(block["type"] in ("text", "tool_use") for block in content):
        content.append({"type": "text", "text": ""})
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
        "unchanged. Text content and client tools: tools and tool_choice, tool_use blocks in "
        "answers (streamed as input_json_delta events), tool_result blocks sent back, in the "
        "history or as the new message. No images, documents, the thinking parameter, top_k or "
        "the provider's own tools (400). Errors in Anthropic's shape; an unknown model is 404.",
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
        "4 per message; a tool's name, description and input schema as compact JSON, plus 4), "
        "for the request as sent.",
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
        messages = [
            *([ChatMessage("system", system)] if system else []),
            *(sent for message in data["messages"] for sent in message.chat_messages()),
        ]
        tools = [
            ToolDefinition(tool["name"], tool["description"], tool["input_schema"])
            for tool in data.get("tools", [])
        ]
        return Response(
            {"input_tokens": estimate_messages_tokens(messages) + estimate_tools_tokens(tools)}
        )
