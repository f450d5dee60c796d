import secrets
import uuid
from datetime import datetime
from typing import Any

from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import User
from accounts.rls import service_role
from conversations.models import Conversation, Message, Share

# 256 random bits (the issue asks for at least 128), 43 URL-safe characters.
SHARE_TOKEN_BYTES = 32

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


def _current_branch_ids(conversation: Conversation) -> list[uuid.UUID]:
    """The ids of the conversation's current branch, oldest first, without an answer still
    being generated (its text is not final). Until conversations branch, the current branch
    is the whole history."""
    finished = Message.objects.filter(conversation=conversation).exclude(
        status=Message.Status.IN_PROGRESS
    )
    return list(finished.order_by("created_at", "id").values_list("id", flat=True))


def share_create(*, conversation: Conversation, expires_at: datetime | None) -> Share:
    """A share link to the conversation as it is now: a message added later is never shown
    through it. The caller has checked ownership."""
    return Share.objects.create(
        conversation=conversation,
        token=secrets.token_urlsafe(SHARE_TOKEN_BYTES),
        message_ids=_current_branch_ids(conversation),
        expires_at=expires_at,
    )


def share_delete(*, share: Share) -> None:
    """Revoke: the link answers 404 from now on, like one that never existed."""
    share.delete()
