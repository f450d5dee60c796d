import re
import uuid
from dataclasses import dataclass
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chatapi.serializers import JsonBodySerializer
from conversations.blocks import TOOL_NAME_PATTERN, UserContentField
from conversations.events import WEBHOOK_EVENTS
from conversations.models import Message
from conversations.selectors import message_find
from conversations.serializers import (
    NOT_IN_CONVERSATION,
    GenerationSettingsSerializer,
    MessageSerializer,
    unstorable_text,
    validated_conversation,
)
from messaging.models import WebhookDelivery, WebhookEndpoint

MESSAGE_MAX_CHARS = 100_000
_COST = serializers.DecimalField(max_digits=18, decimal_places=10)
# OpenAI's pattern for a response format's name, the same as a tool's.
_SCHEMA_NAME = re.compile(TOOL_NAME_PATTERN)


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
            "json_schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": TOOL_NAME_PATTERN},
                    "schema": {"type": "object", "description": "A JSON Schema."},
                    "description": {"type": "string"},
                    "strict": {"type": "boolean", "nullable": True},
                },
                "required": ["name"],
                "description": "With type json_schema only.",
            },
        },
        "required": ["type"],
    }
)
class ResponseFormatField(serializers.Field[dict[str, Any] | None, Any, Any, Any]):
    """OpenAI's ``response_format`` for one turn; validates to what the provider is sent
    (``response_format_validate``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            "For this turn, OpenAI's response_format: {type: json_object} (the answer is a JSON "
            "object) or {type: json_schema, json_schema: {name, schema, description, strict}} "
            "(it follows the schema), passed to the provider, which holds the answer to it; a "
            "model that does not offer it gets the provider's 400 and message. {type: text} or "
            "null: plain text.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, Any] | None:
        return response_format_validate(data)

    def to_representation(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return value


def response_format_validate(value: Any) -> dict[str, Any] | None:
    """OpenAI's ``response_format`` as the provider is sent it; None for plain text."""
    kind = value.get("type") if isinstance(value, dict) else None
    if value is None or (kind == "text" and set(value) == {"type"}):
        return None
    if kind == "json_object" and set(value) == {"type"}:
        return {"type": "json_object"}
    if kind == "json_schema" and set(value) == {"type", "json_schema"}:
        spec = value["json_schema"]
        if (
            isinstance(spec, dict)
            and not set(spec) - {"name", "schema", "description", "strict"}
            and isinstance(spec.get("name"), str)
            and _SCHEMA_NAME.fullmatch(spec["name"])
            and isinstance(spec.get("schema", {}), dict)
            and isinstance(spec.get("description", ""), str)
            and isinstance(spec.get("strict", False), bool | None)
        ):
            problem = unstorable_text(spec)
            if problem:
                raise serializers.ValidationError(problem)
            return {"type": "json_schema", "json_schema": spec}
    raise serializers.ValidationError(
        "{type: text}, {type: json_object}, or {type: json_schema, json_schema: {name, "
        f"schema, description, strict}}}} with the name matching {TOOL_NAME_PATTERN}."
    )


class RegenerateSerializer(GenerationSettingsSerializer):
    """Another answer: optional overrides of the conversation's generation settings for this
    turn. Validate with ``instance=conversation``: the overrides are judged against the
    model that will answer."""

    stream = serializers.BooleanField(
        default=False,
        help_text="Answer as a Server-Sent Events stream (also with Accept: text/event-stream).",
    )
    model = serializers.CharField(
        max_length=100,
        required=False,
        help_text="Answer with another catalog model; the conversation's otherwise.",
    )
    background = serializers.BooleanField(
        default=False,
        help_text="Answer 202 at once and generate the answer with no client attached: follow "
        "it with GET .../messages/{id} or .../stream, or a webhook. Not with stream.",
    )
    response_format = ResponseFormatField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("background") and attrs.get("stream"):
            raise serializers.ValidationError(
                {"background": ["A background send does not stream: leave stream out."]}
            )
        return super().validate(attrs)


# What DRF's CharField refuses besides length: NUL and lone surrogates (not storable).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def simple_message_data(data: Any) -> dict[str, Any] | None:
    """The validated data of the commonest send, ``{"content": "<text>"}`` with an optional
    boolean ``stream``, checked by hand: what ``MessageCreateSerializer`` returns for such a
    body (the tests compare the two), without building the serializer. None for any other
    body, and for one the serializer would refuse: the serializer judges those."""
    if type(data) is not dict or not 1 <= len(data) <= 2:
        return None
    content = data.get("content")
    stream = data.get("stream", False)
    if (
        type(content) is not str
        or type(stream) is not bool
        or len(data) != 1 + ("stream" in data)
        or len(content) > MESSAGE_MAX_CHARS
        or not content.strip()
        or _UNSTORABLE.search(content)
    ):
        return None
    return {"stream": stream, "background": False, "content": [{"type": "text", "text": content}]}


class MessageCreateSerializer(RegenerateSerializer):
    """A user message, with optional overrides of the conversation's generation settings for
    this turn, after the current leaf or a named parent. Validate with
    ``instance=conversation``: the overrides are judged against the model that will answer,
    the parent against the conversation's messages."""

    parent_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="The assistant message to answer after (editing a user message is sending "
        "the new text with that message's parent_id; the old version stays as a sibling). "
        "null: a new root. Absent: after the conversation's current leaf.",
    )
    content = UserContentField(
        max_chars=MESSAGE_MAX_CHARS,
        help_text=f"The user's message, at most {MESSAGE_MAX_CHARS} characters: a string, or "
        "a list of text and tool_result blocks (the results of the tool calls of the answer "
        "it follows, one for each).",
    )

    def validate_parent_id(self, value: uuid.UUID | None) -> uuid.UUID | None:
        if value is None:
            return None
        parent = message_find(conversation=validated_conversation(self), message_id=value)
        if parent is None:
            raise serializers.ValidationError(NOT_IN_CONVERSATION)
        if parent.role != Message.Role.ASSISTANT:
            raise serializers.ValidationError(
                "Must be an assistant message: a user message follows an answer "
                "(or starts a new branch with null)."
            )
        return value


class ReplyUsageSerializer(serializers.Serializer[dict[str, Any]]):
    input_tokens = serializers.IntegerField(help_text="Input tokens not read from the cache.")
    output_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField(
        help_text="Always 0: the provider does not charge for writing its cache."
    )
    cache_read_input_tokens = serializers.IntegerField(
        help_text="Input tokens read from the provider's prompt cache."
    )


def anthropic_message(assistant: Message, *, content: list[dict[str, Any]]) -> dict[str, Any]:
    """A stored answer as an Anthropic ``Message`` with ``content`` as its blocks: what the
    native send's JSON reply starts with, and the whole reply of the compatible route."""
    input_tokens = int(assistant.input_tokens or 0)
    cached = int(assistant.cached_input_tokens or 0)
    return {
        "id": str(assistant.pk),
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": assistant.model,
        "stop_reason": assistant.stop_reason or None,
        "stop_sequence": assistant.stop_sequence or None,
        # Anthropic's input_tokens excludes the cached part.
        "usage": {
            "input_tokens": input_tokens - min(cached, input_tokens),
            "output_tokens": int(assistant.output_tokens or 0),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
        },
    }


@dataclass(frozen=True, slots=True)
class AssistantReply:
    """A turn answered without streaming: the stored user message and the finished
    assistant message."""

    user_message: Message
    assistant: Message


class AssistantReplySerializer(serializers.Serializer[AssistantReply]):
    """An Anthropic Message, plus what this API adds about the turn."""

    id = serializers.UUIDField(help_text="The stored assistant message's id.")
    type = serializers.CharField(default="message")
    role = serializers.CharField(default="assistant")
    content = serializers.ListField(
        child=serializers.DictField(),
        help_text="Content blocks: thinking, text, tool_use (see the message's blocks).",
    )
    model = serializers.CharField()
    stop_reason = serializers.CharField(allow_null=True)
    stop_sequence = serializers.CharField(allow_null=True)
    usage = ReplyUsageSerializer()
    conversation_id = serializers.UUIDField()
    user_message = MessageSerializer()
    latency_ms = serializers.IntegerField()
    ttft_ms = serializers.IntegerField(allow_null=True)
    cost_usd = serializers.DecimalField(max_digits=18, decimal_places=10, allow_null=True)

    def to_representation(self, instance: AssistantReply) -> dict[str, Any]:
        # The fields above describe the reply (the OpenAPI schema); this writes the same JSON
        # from the two messages, as MessageSerializer does.
        assistant = instance.assistant
        return {
            # An answer with no blocks at all is one empty text block, as Anthropic's is.
            **anthropic_message(
                assistant, content=list(assistant.blocks) or [{"type": "text", "text": ""}]
            ),
            "conversation_id": str(assistant.conversation_id),
            "user_message": MessageSerializer(instance.user_message).data,
            "latency_ms": None if assistant.latency_ms is None else int(assistant.latency_ms),
            "ttft_ms": None if assistant.ttft_ms is None else int(assistant.ttft_ms),
            "cost_usd": (
                None if assistant.cost_usd is None else _COST.to_representation(assistant.cost_usd)
            ),
        }


class BackgroundAcceptedSerializer(serializers.Serializer[Any]):
    """A background send's 202: the stored user message and the answer being generated."""

    conversation_id = serializers.UUIDField()
    user_message = MessageSerializer()
    assistant_message_id = serializers.UUIDField(
        help_text="The answer's id: GET .../messages/{id} for its state, .../stream to follow "
        "it, .../cancel to stop it."
    )
    status = serializers.ChoiceField(
        choices=Message.Status.choices,
        help_text="The answer's status: in_progress for a new send (a retry with a known "
        "Idempotency-Key tells the status it has now).",
    )


class WebhookEndpointCreateSerializer(JsonBodySerializer):
    url = serializers.CharField(
        max_length=2000,
        help_text="Where deliveries are POSTed: https, resolving to public addresses only.",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=[str(event) for event in WEBHOOK_EVENTS]),
        min_length=1,
        help_text="The events to deliver: message.completed, message.failed (an answer that "
        "failed or was cut short: its status is error or incomplete), message.cancelled.",
    )


class WebhookEndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    """An endpoint as listed: never its secret."""

    class Meta:
        model = WebhookEndpoint
        fields: tuple[str, ...] = ("id", "url", "events", "created_at")
        read_only_fields: tuple[str, ...] = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (whsec_ + base64 of the key): shown in this answer only."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = (*WebhookEndpointSerializer.Meta.fields, "secret")
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    """One delivery of the log: the event sent and how its attempts went."""

    webhook_id = serializers.CharField(
        read_only=True, help_text="The webhook-id header: the same on every attempt."
    )
    next_attempt_at = serializers.SerializerMethodField(
        help_text="When the next attempt is due; null once delivered or failed."
    )

    class Meta:
        model = WebhookDelivery
        fields: tuple[str, ...] = (
            "id",
            "webhook_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
            "payload",
        )
        read_only_fields: tuple[str, ...] = fields

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_next_attempt_at(self, delivery: WebhookDelivery) -> str | None:
        if delivery.status != WebhookDelivery.Status.PENDING:
            return None
        return serializers.DateTimeField().to_representation(delivery.next_attempt_at)
