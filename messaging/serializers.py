import uuid
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from chatapi.pagination import PageQuerySerializer
from chatapi.serializers import datetime_json
from conversations.selectors import message_find
from conversations.serializers import (
    GenerationSettingsSerializer,
    unstorable_text,
    validated_conversation,
)
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
    """A message with its place in the tree. The instance must carry ``sibling_count`` and
    ``sibling_index`` (conversations.selectors.messages_with_siblings)."""

    id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    parent_id = serializers.UUIDField(
        allow_null=True,
        help_text="The message this one follows; null for the first message of a branch.",
    )
    sibling_count = serializers.IntegerField(
        help_text="How many messages share this one's parent, itself included (roots share "
        "the null parent): the 3 of '2 of 3'."
    )
    sibling_index = serializers.IntegerField(
        help_text="This message's position among them, oldest first, from 1: the 2 of '2 of 3'."
    )
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
            "parent_id": None if m.parent_id is None else str(m.parent_id),
            "sibling_count": int(m.sibling_count),  # type: ignore[attr-defined]
            "sibling_index": int(m.sibling_index),  # type: ignore[attr-defined]
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
NOT_IN_CONVERSATION = "No message with this id in this conversation."


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
    content = serializers.CharField(
        max_length=MESSAGE_MAX_CHARS,
        trim_whitespace=False,
        help_text=f"The user's message, at most {MESSAGE_MAX_CHARS} characters.",
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


class AssistantReplySerializer(serializers.Serializer[dict[str, Any]]):
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


class MessageListQuerySerializer(PageQuerySerializer):
    """The list's parameters; validate with ``context={"conversation": ...}``."""

    leaf_id = serializers.UUIDField(
        required=False,
        help_text="List the branch that ends at this message instead of the current one.",
    )

    def validate_leaf_id(self, value: uuid.UUID) -> uuid.UUID:
        if message_find(conversation=self.context["conversation"], message_id=value) is None:
            raise serializers.ValidationError(NOT_IN_CONVERSATION)
        return value
