from typing import Any

from django.utils import timezone

from accounts.models import User
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
    message cost and must not cascade from conversations or messages.
    """
    conversation.delete()  # one transaction: Django's deletion collector opens it
