from typing import Any

from django.utils import timezone
from rest_framework import serializers

from chatapi.serializers import datetime_json
from conversations.blocks import UserContentField
from conversations.serializers import GenerationSettingsSerializer
from messaging.models import Message


class MessageUsageSerializer(serializers.Serializer[Message]):
    input_tokens = serializers.IntegerField(allow_null=True)
    cached_input_tokens = serializers.IntegerField(
        allow_null=True,
        help_text="The part of input_tokens read from the provider's prompt cache (billed at "
        "the cached-input price); null when the provider did not say.",
    )
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
    content = serializers.CharField(help_text="The text (the text blocks joined).")
    reasoning = serializers.CharField(help_text="The model's reasoning text; empty when none.")
    blocks = serializers.ListField(
        child=serializers.DictField(),
        help_text="The whole content as Anthropic content blocks: text, thinking, tool_use "
        "(id, name, input; with is_error and raw_input when the model's arguments were not a "
        "JSON object), tool_result (tool_use_id, content, is_error).",
    )
    status = serializers.ChoiceField(choices=Message.Status.choices)
    stop_reason = serializers.CharField(
        allow_null=True,
        help_text="end_turn, max_tokens, stop_sequence, tool_use, refusal, ...; null until known.",
    )
    stop_sequence = serializers.CharField(
        allow_null=True, help_text="The stop sequence that ended the answer, else null."
    )
    model = serializers.CharField(allow_null=True, help_text="null on user messages.")
    usage = MessageUsageSerializer(source="*")
    latency_ms = serializers.IntegerField(allow_null=True)
    ttft_ms = serializers.IntegerField(allow_null=True, help_text="Time to first token.")
    provider_timings = serializers.DictField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="The provider's own timings in seconds (queue, prompt, completion), when it "
        "reports them.",
    )
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
            "blocks": list(m.blocks),
            "status": m.status,
            "stop_reason": m.stop_reason or None,
            "stop_sequence": m.stop_sequence or None,
            "model": m.model or None,
            "usage": {
                "input_tokens": None if m.input_tokens is None else int(m.input_tokens),
                "cached_input_tokens": (
                    None if m.cached_input_tokens is None else int(m.cached_input_tokens)
                ),
                "output_tokens": None if m.output_tokens is None else int(m.output_tokens),
                "estimated": bool(m.usage_estimated),
            },
            "latency_ms": None if m.latency_ms is None else int(m.latency_ms),
            "ttft_ms": None if m.ttft_ms is None else int(m.ttft_ms),
            "provider_timings": (
                None
                if m.provider_timings is None
                else {str(k): float(v) for k, v in m.provider_timings.items()}
            ),
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

    content = UserContentField(
        max_chars=MESSAGE_MAX_CHARS,
        help_text=f"The user's message, at most {MESSAGE_MAX_CHARS} characters: a string, or "
        "a list of text and tool_result blocks (the results of the previous answer's tool "
        "calls, one for each).",
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


class ReplyUsageSerializer(serializers.Serializer[dict[str, Any]]):
    input_tokens = serializers.IntegerField(help_text="Input tokens not read from the cache.")
    output_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField(
        help_text="Always 0: the provider does not charge for writing its cache."
    )
    cache_read_input_tokens = serializers.IntegerField(
        help_text="Input tokens read from the provider's prompt cache."
    )


class AssistantReplySerializer(serializers.Serializer[dict[str, Any]]):
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
