from typing import Any

from rest_framework import serializers

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
        data: dict[str, Any] = super().to_representation(instance)
        data["stop_reason"] = data["stop_reason"] or None
        data["model"] = data["model"] or None
        return data
