from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from chatapi.serializers import datetime_json
from conversations.serializers import GenerationSettingsSerializer, unstorable_text
from messaging.models import Message


class MessageUsageSerializer(serializers.Serializer[Message]):
    input_tokens = serializers.IntegerField(allow_null=True)
    output_tokens = serializers.IntegerField(allow_null=True)
    estimated = serializers.BooleanField(
        source="usage_estimated",
        help_text="True when the counts are the service's estimate, not the provider's report.",
    )


class MessageErrorSerializer(serializers.Serializer[dict[str, Any]]):
    type = serializers.CharField()
    message = serializers.CharField()


class MessageSerializer(serializers.Serializer[Message]):
    id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=Message.Role.choices)
    content = serializers.CharField()
    reasoning = serializers.CharField(help_text="The model's reasoning text; empty when none.")
    status = serializers.ChoiceField(choices=Message.Status.choices)
    stop_reason = serializers.CharField(
        allow_null=True, help_text="end_turn, max_tokens, refusal, ...; null until known."
    )
    model = serializers.CharField(allow_null=True, help_text="null on user messages.")
    usage = MessageUsageSerializer(source="*")
    latency_ms = serializers.IntegerField(allow_null=True)
    ttft_ms = serializers.IntegerField(allow_null=True, help_text="Time to first token.")
    cost_usd = serializers.DecimalField(
        max_digits=18,
        decimal_places=10,
        allow_null=True,
        help_text="Exact cost in USD as a decimal string; null when unknown.",
    )
    error = MessageErrorSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: Message) -> dict[str, Any]:
        # What the fields above produce (conversations/tests/test_representation.py checks),
        # written out: DRF's per-field calls were most of a list's serialization time.
        zone = timezone.get_current_timezone()
        m = instance
        error = m.error
        return {
            "id": str(m.id),
            "conversation_id": str(m.conversation_id),
            "role": m.role,
            "content": m.content,
            "reasoning": m.reasoning,
            "status": m.status,
            "stop_reason": m.stop_reason or None,
            "model": m.model or None,
            "usage": {
                "input_tokens": None if m.input_tokens is None else int(m.input_tokens),
                "output_tokens": None if m.output_tokens is None else int(m.output_tokens),
                "estimated": bool(m.usage_estimated),
            },
            "latency_ms": None if m.latency_ms is None else int(m.latency_ms),
            "ttft_ms": None if m.ttft_ms is None else int(m.ttft_ms),
            "cost_usd": None if m.cost_usd is None else _COST.to_representation(m.cost_usd),
            "error": (
                None
                if error is None
                else {"type": str(error["type"]), "message": str(error["message"])}
            ),
            "created_at": datetime_json(m.created_at, zone),
            "completed_at": datetime_json(m.completed_at, zone),
        }


# Decimal to string exactly as the cost_usd field does it.
_COST = serializers.DecimalField(max_digits=18, decimal_places=10)


MESSAGE_MAX_CHARS = 100_000


class MessageCreateSerializer(GenerationSettingsSerializer):
    """A user message, with optional overrides of the conversation's generation settings for
    this turn. Validate with ``instance=conversation``: the overrides are judged against the
    model that will answer."""

    content = serializers.CharField(
        max_length=MESSAGE_MAX_CHARS,
        trim_whitespace=False,
        help_text=f"The user's message, at most {MESSAGE_MAX_CHARS} characters.",
    )
    stream = serializers.BooleanField(
        default=False,
        help_text="Answer as a Server-Sent Events stream (also with Accept: text/event-stream).",
    )
    model = serializers.CharField(
        max_length=100,
        required=False,
        help_text="Answer this turn with another catalog model; the conversation's otherwise.",
    )

    def validate_content(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        problem = unstorable_text(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class ContentBlockSerializer(serializers.Serializer[dict[str, Any]]):
    type = serializers.ChoiceField(choices=["thinking", "text"])
    thinking = serializers.CharField(required=False)
    text = serializers.CharField(required=False)


class ReplyUsageSerializer(serializers.Serializer[dict[str, Any]]):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()


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
    content = ContentBlockSerializer(many=True)
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
        content: list[dict[str, str]] = []
        if assistant.reasoning:
            content.append({"type": "thinking", "thinking": assistant.reasoning})
        content.append({"type": "text", "text": assistant.content})
        return {
            "id": str(assistant.pk),
            "type": "message",
            "role": "assistant",
            "content": content,
            "model": assistant.model,
            "stop_reason": assistant.stop_reason or None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": int(assistant.input_tokens or 0),
                "output_tokens": int(assistant.output_tokens or 0),
            },
            "conversation_id": str(assistant.conversation_id),
            "user_message": MessageSerializer(instance.user_message).data,
            "latency_ms": None if assistant.latency_ms is None else int(assistant.latency_ms),
            "ttft_ms": None if assistant.ttft_ms is None else int(assistant.ttft_ms),
            "cost_usd": (
                None if assistant.cost_usd is None else _COST.to_representation(assistant.cost_usd)
            ),
        }
