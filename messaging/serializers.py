import uuid
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from conversations.blocks import UserContentField
from conversations.models import Message
from conversations.selectors import message_find
from conversations.serializers import (
    NOT_IN_CONVERSATION,
    GenerationSettingsSerializer,
    MessageSerializer,
    validated_conversation,
)

MESSAGE_MAX_CHARS = 100_000
_COST = serializers.DecimalField(max_digits=18, decimal_places=10)


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
        input_tokens = int(assistant.input_tokens or 0)
        cached = int(assistant.cached_input_tokens or 0)
        return {
            "id": str(assistant.pk),
            "type": "message",
            "role": "assistant",
            # An answer with no blocks at all is one empty text block, as Anthropic's is.
            "content": list(assistant.blocks) or [{"type": "text", "text": ""}],
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
            "conversation_id": str(assistant.conversation_id),
            "user_message": MessageSerializer(instance.user_message).data,
            "latency_ms": None if assistant.latency_ms is None else int(assistant.latency_ms),
            "ttft_ms": None if assistant.ttft_ms is None else int(assistant.ttft_ms),
            "cost_usd": (
                None if assistant.cost_usd is None else _COST.to_representation(assistant.cost_usd)
            ),
        }
