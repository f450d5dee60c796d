"""Test data builders shared by the conversations and messaging suites."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from accounts.models import User
from conversations.models import Conversation, Message
from messaging.services import message_create

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """A fixed instant ``seconds`` after T0, so orderings in tests are explicit."""
    return T0 + timedelta(seconds=seconds)


def make_conversation(*, owner: User, **fields: Any) -> Conversation:
    fields.setdefault("model", "openai/gpt-oss-20b")
    if "activity_at" in fields:
        fields.setdefault("created_at", fields["activity_at"])
    return Conversation.objects.create(owner=owner, **fields)


def make_exchange(owner: User, *, title: str = "Trip to Lisbon", offset: int = 0) -> Conversation:
    """A conversation with one finished exchange: a question and a costed answer."""
    conversation = make_conversation(
        owner=owner, title=title, system_prompt="Be brief.", activity_at=at(offset)
    )
    message_create(
        conversation=conversation,
        role=Message.Role.USER,
        content="Three things to see?",
        created_at=at(offset + 1),
    )
    message_create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Belem Tower, the Alfama, LX Factory.",
        reasoning="Three sights, briefly.",
        model="openai/gpt-oss-20b",
        input_tokens=42,
        output_tokens=17,
        latency_ms=812,
        ttft_ms=95,
        cost_usd=Decimal("0.0000082500"),
        stop_reason="end_turn",
        created_at=at(offset + 2),
    )
    return conversation
