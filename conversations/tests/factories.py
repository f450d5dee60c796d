"""Test data builders shared by the conversations and messaging suites."""

from datetime import UTC, datetime, timedelta
from typing import Any

from accounts.models import User
from conversations.models import Conversation

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """A fixed instant ``seconds`` after T0, so orderings in tests are explicit."""
    return T0 + timedelta(seconds=seconds)


def make_conversation(*, owner: User, **fields: Any) -> Conversation:
    fields.setdefault("model", "openai/gpt-oss-20b")
    if "activity_at" in fields:
        fields.setdefault("created_at", fields["activity_at"])
    return Conversation.objects.create(owner=owner, **fields)
