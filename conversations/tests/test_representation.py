"""The hand-written ``to_representation`` of the conversation and message serializers give
exactly what their declared fields give through DRF's generic path (which the OpenAPI schema
describes), for rows as read back from PostgreSQL, in UTC and in another current time zone."""

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework import serializers

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.selectors import messages_with_siblings
from conversations.serializers import ConversationSerializer, MessageSerializer

pytestmark = pytest.mark.django_db

WHEN = dt.datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=dt.UTC)  # Lisbon changes at 01:00


def generic(
    serializer: serializers.Serializer[Any], instance: Any, *, blank_is_null: tuple[str, ...]
) -> dict[str, Any]:
    """The declared fields' output, with the nulls for empty strings the API promises."""
    data = dict(serializers.Serializer.to_representation(serializer, instance))
    for field in blank_is_null:
        data[field] = data[field] or None
    return data


def conversations(user: User) -> list[Conversation]:
    made = [
        Conversation.objects.create(owner=user, model="m", created_at=WHEN),
        Conversation.objects.create(
            owner=user,
            title="Trip ✈ to Lisbon",
            model="openai/gpt-oss-20b",
            system_prompt="Be brief.\n\x01",
            temperature=0.7,
            max_output_tokens=4096,
            reasoning_effort="low",
            metadata={"client": "web", "n": [1, 2.5, None, {"deep": True}]},
            archived=True,
            created_at=WHEN.replace(microsecond=0),
            last_message_at=WHEN + dt.timedelta(days=200),
        ),
        Conversation.objects.create(owner=user, model="m", temperature=0.0, max_output_tokens=1),
        Conversation.objects.create(
            owner=user,
            model="m",
            tools=[
                {"name": "get_weather", "description": "", "input_schema": {"type": "object"}},
                {
                    "name": "now",
                    "description": "The time ⌚",
                    "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
                },
            ],
            tool_choice={"type": "tool", "name": "now"},
            stop_sequences=["\n\n", "END ✋"],
            service_tier="flex",
            fallback_models=["openai/gpt-oss-120b", "qwen/qwen3-32b"],
        ),
        Conversation.objects.create(owner=user, model="m", tool_choice={"type": "any"}),
    ]
    return list(Conversation.objects.filter(pk__in=[c.pk for c in made]))


def messages(conversation: Conversation) -> list[Message]:
    made = [
        Message.objects.create(conversation=conversation, role="user", content="hi"),
        Message.objects.create(
            conversation=conversation,
            role="assistant",
            content="Hello ✋",
            reasoning="thinking",
            status="complete",
            stop_reason="end_turn",
            model="openai/gpt-oss-20b",
            input_tokens=12,
            output_tokens=0,
            usage_estimated=True,
            latency_ms=1500,
            ttft_ms=3,
            cost_usd=Decimal("0.0000012345"),
            created_at=WHEN,
            completed_at=WHEN + dt.timedelta(seconds=1),
        ),
        Message.objects.create(
            conversation=conversation,
            role="assistant",
            status="error",
            model="m",
            cost_usd=Decimal("12345678.1"),
            error={"type": "api_error", "message": "Upstream failed."},
        ),
        Message.objects.create(
            conversation=conversation, role="assistant", status="complete", cost_usd=Decimal(0)
        ),
        Message.objects.create(
            conversation=conversation,
            role="assistant",
            content="Checking.",
            blocks=[
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1, None]}},
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "f",
                    "input": {},
                    "is_error": True,
                    "raw_input": "{a:",
                },
            ],
            stop_reason="stop_sequence",
            stop_sequence="END",
            input_tokens=100,
            cached_input_tokens=64,
            provider_timings={"queue": 0.01, "prompt": 0.002, "completion": 1},
        ),
        Message.objects.create(
            conversation=conversation,
            role="user",
            blocks=[
                {"type": "tool_result", "tool_use_id": "call_1", "content": "x", "is_error": False},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "y"}],
                    "is_error": True,
                },
            ],
        ),
    ]
    return list(messages_with_siblings(Message.objects.filter(pk__in=[m.pk for m in made])))


@pytest.mark.parametrize("zone", ["UTC", "Europe/Lisbon", "Asia/Kolkata"])
def test_conversation_representation_is_the_fields_output(user: User, zone: str) -> None:
    rows = conversations(user)
    with timezone.override(zone):
        for row in rows:
            serializer = ConversationSerializer()
            assert serializer.to_representation(row) == generic(
                serializer, row, blank_is_null=("reasoning_effort", "service_tier")
            )


@pytest.mark.parametrize("zone", ["UTC", "Europe/Lisbon", "Asia/Kolkata"])
def test_message_representation_is_the_fields_output(user: User, zone: str) -> None:
    conversation = Conversation.objects.create(owner=user, model="m", id=uuid.uuid4())
    rows = messages(conversation)
    with timezone.override(zone):
        for row in rows:
            serializer = MessageSerializer()
            assert serializer.to_representation(row) == generic(
                serializer, row, blank_is_null=("stop_reason", "stop_sequence", "model")
            )
