"""Test data builders shared by the conversations and messaging suites."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from conversations.models import Conversation
from conversations.services import conversation_touch
from messaging.models import Message

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """A fixed instant ``seconds`` after T0, so orderings in tests are explicit."""
    return T0 + timedelta(seconds=seconds)


def make_conversation(*, owner: User, **fields: Any) -> Conversation:
    fields.setdefault("model", "openai/gpt-oss-20b")
    if "activity_at" in fields:
        fields.setdefault("created_at", fields["activity_at"])
    return Conversation.objects.create(owner=owner, **fields)


def make_message(
    *,
    conversation: Conversation,
    role: Message.Role,
    content: str,
    reasoning: str = "",
    status: Message.Status = Message.Status.COMPLETE,
    stop_reason: str = "",
    model: str = "",
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    usage_estimated: bool = False,
    latency_ms: int | None = None,
    ttft_ms: int | None = None,
    cost_usd: Decimal | None = None,
    error: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    completed_at: datetime | None = None,
) -> Message:
    """A stored message, bumping the conversation's last_message_at and activity_at as a
    turn does (``conversation_touch``), in one transaction.

    The bump never moves the timestamps back, so messages created out of order (or with an
    explicit ``created_at``) leave the latest one in place.
    """
    created_at = created_at or timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=role,
            content=content,
            reasoning=reasoning,
            status=status,
            stop_reason=stop_reason,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            usage_estimated=usage_estimated,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            cost_usd=cost_usd,
            error=error,
            created_at=created_at,
            completed_at=completed_at,
        )
        conversation_touch(conversation_id=conversation.pk, at=created_at)
    # The instance follows the row, as far as it knows.
    conversation.last_message_at = max(conversation.last_message_at or created_at, created_at)
    conversation.activity_at = max(conversation.activity_at, created_at)
    return message


def make_exchange(owner: User, *, title: str = "Trip to Lisbon", offset: int = 0) -> Conversation:
    """A conversation with one finished exchange: a question and a costed answer."""
    conversation = make_conversation(
        owner=owner, title=title, system_prompt="Be brief.", activity_at=at(offset)
    )
    make_message(
        conversation=conversation,
        role=Message.Role.USER,
        content="Three things to see?",
        created_at=at(offset + 1),
    )
    make_message(
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
