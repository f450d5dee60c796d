import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import User
from accounts.rls import service_role
from conversations.models import Conversation, Message

# What conversation_update may change; everything else is the server's.
UPDATABLE_FIELDS = frozenset(
    {
        "title",
        "model",
        "system_prompt",
        "temperature",
        "max_output_tokens",
        "reasoning_effort",
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
        metadata={} if metadata is None else metadata,
    )


def conversation_create_with_history(
    *,
    owner: User,
    model: str,
    system_prompt: str = "",
    metadata: dict[str, Any] | None = None,
    history: Sequence[tuple[str, str]],
) -> Conversation:
    """A new conversation holding an earlier exchange, ``(role, content)`` pairs oldest first
    (user or assistant, each complete): what a stateless API's request carries before its new
    message. The messages are strictly ordered and older than anything added after them."""
    with transaction.atomic():
        conversation = conversation_create(
            owner=owner, model=model, system_prompt=system_prompt, metadata=metadata
        )
        now = conversation.created_at
        messages = [
            Message(
                conversation=conversation,
                role=role,
                content=content,
                status=Message.Status.COMPLETE,
                created_at=now - timedelta(microseconds=len(history) - index),
                completed_at=now,
            )
            for index, (role, content) in enumerate(history)
        ]
        Message.objects.bulk_create(messages)
        if messages:
            conversation_touch(conversation_id=conversation.pk, at=messages[-1].created_at)
    return conversation


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
