import uuid
from datetime import datetime
from typing import Any

from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import User
from accounts.rls import service_role
from conversations.models import Conversation

# What conversation_update may change; everything else is the server's.
UPDATABLE_FIELDS = frozenset(
    {
        "title",
        "model",
        "system_prompt",
        "temperature",
        "max_output_tokens",
        "reasoning_effort",
        "tools",
        "tool_choice",
        "stop_sequences",
        "service_tier",
        "fallback_models",
        "metadata",
        "archived",
    }
)


def conversation_create(
    *,
    owner: User,
    model: str,
    title: str = "",
    system_prompt: str = "",
    temperature: float | None = None,
    max_output_tokens: int | None = None,
    reasoning_effort: str = "",
    tools: list[dict[str, Any]] | None = None,
    tool_choice: dict[str, Any] | None = None,
    stop_sequences: list[str] | None = None,
    service_tier: str = "",
    fallback_models: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Conversation:
    now = timezone.now()
    return Conversation.objects.create(
        owner=owner,
        created_at=now,
        activity_at=now,
        model=model,
        title=title,
        system_prompt=system_prompt,
        temperature=temperature,
        max_output_tokens=max_output_tokens,
        reasoning_effort=reasoning_effort,
        tools=tools or [],
        tool_choice=tool_choice,
        stop_sequences=stop_sequences or [],
        service_tier=service_tier,
        fallback_models=fallback_models or [],
        metadata={} if metadata is None else metadata,
    )


def conversation_touch(
    *, conversation_id: uuid.UUID, at: datetime, title: str | None = None
) -> None:
    """Record activity at ``at``: the conversation's last message time and its place in the
    list. An UPDATE of the row, not a save(), so concurrent changes to other fields survive;
    it never moves the timestamps back, so messages stored out of order keep the latest.
    ``title``, when given, is set only if the conversation has none yet."""
    updates: dict[str, Any] = {
        "last_message_at": Greatest("last_message_at", at),
        "activity_at": Greatest("activity_at", at),
    }
    if title:
        updates["title"] = Case(When(title="", then=Value(title)), default=F("title"))
    Conversation.objects.filter(pk=conversation_id).update(**updates)


def conversation_update(*, conversation: Conversation, data: dict[str, Any]) -> Conversation:
    """Set the fields in ``data`` (validated, a subset of UPDATABLE_FIELDS) and save only
    those, so a concurrent update of other fields is not overwritten."""
    unknown = set(data) - UPDATABLE_FIELDS
    if unknown:
        raise ValueError(f"Not updatable: {', '.join(sorted(unknown))}")
    if not data:
        return conversation
    for field, value in data.items():
        setattr(conversation, field, value)
    conversation.save(update_fields=[*data, "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete the conversation and its messages.

    Billing records must outlive this: the usage ledger keeps its own copy of what each
    message cost and must not cascade from conversations or messages. The idempotency keys
    of its turns do go with it, and they are the service's own (users may only read theirs):
    the delete runs as the service, on a conversation the caller's lookup resolved.
    """
    with service_role():
        conversation.delete()  # one transaction: Django's deletion collector opens it
