import secrets
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
from chatapi.errors import ConflictError
from chatapi.live_events import event_publish
from conversations.blocks import Block, blocks_text, tool_uses
from conversations.events import Event, conversation_event_data
from conversations.models import Conversation, Message, Share
from conversations.notify import conversation_notify
from conversations.selectors import message_branch

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
        "tools",
        "tool_choice",
        "stop_sequences",
        "service_tier",
        "fallback_models",
        "metadata",
        "archived",
        "current_leaf_id",
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
    conversation = Conversation.objects.create(
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
    conversation_notify(Event.CONVERSATION_CREATED, conversation)
    return conversation


def conversation_create_with_history(
    *,
    owner: User,
    model: str,
    system_prompt: str = "",
    metadata: dict[str, Any] | None = None,
    history: Sequence[tuple[str, Sequence[Block]]],
) -> Conversation:
    """A new conversation holding an earlier exchange, ``(role, blocks)`` pairs oldest first
    (user or assistant, each complete; validated blocks, tool calls and results included):
    what a stateless API's request carries before its new message. The messages are
    strictly ordered, older than anything added after them, and one branch whose last
    message is the current leaf."""
    with transaction.atomic():
        conversation = conversation_create(
            owner=owner, model=model, system_prompt=system_prompt, metadata=metadata
        )
        now = conversation.created_at
        messages: list[Message] = []
        for index, (role, blocks) in enumerate(history):
            messages.append(
                Message(
                    conversation=conversation,
                    # One branch: each message follows the one before it.
                    parent_id=messages[-1].pk if messages else None,
                    role=role,
                    content=blocks_text(blocks),
                    blocks=list(blocks),
                    status=Message.Status.COMPLETE,
                    # As a generated answer that called tools is stored.
                    stop_reason="tool_use" if tool_uses(blocks) else "",
                    created_at=now - timedelta(microseconds=len(history) - index),
                    completed_at=now,
                )
            )
        Message.objects.bulk_create(messages)
        if messages:
            conversation_touch(
                conversation_id=conversation.pk,
                at=messages[-1].created_at,
                current_leaf_id=messages[-1].pk,
            )
    return conversation


def conversation_touch(
    *,
    conversation_id: uuid.UUID,
    at: datetime,
    title: str | None = None,
    current_leaf_id: uuid.UUID | None = None,
) -> None:
    """Record activity at ``at``: the conversation's last message time and its place in the
    list. An UPDATE of the row, not a save(), so concurrent changes to other fields survive;
    it never moves the timestamps back, so messages stored out of order keep the latest.
    ``title``, when given, is set only if the conversation has none yet; ``current_leaf_id``,
    when given, is the new end of the user's branch (a new message)."""
    updates: dict[str, Any] = {
        "last_message_at": Greatest("last_message_at", at),
        "activity_at": Greatest("activity_at", at),
    }
    if current_leaf_id is not None:
        updates["current_leaf_id"] = current_leaf_id
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
    conversation_notify(Event.CONVERSATION_UPDATED, conversation)
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete the conversation and its messages.

    Billing records must outlive this: the usage ledger keeps its own copy of what each
    message cost and must not cascade from conversations or messages. The idempotency keys
    of its turns do go with it, and they are the service's own (users may only read theirs):
    the delete runs as the service, on a conversation the caller's lookup resolved.
    """
    data = conversation_event_data(conversation)  # the row's id is gone once deleted
    with service_role():
        conversation.delete()  # one transaction: Django's deletion collector opens it
    event_publish(user_id=conversation.owner_id, event=Event.CONVERSATION_DELETED, data=data)


# What a fork's copies keep of each message: the text and how it ended. Token counts and cost
# stay with the original, whose calls the ledger holds; the copies cost nothing.
_FORK_COPIED = (
    "role",
    "content",
    "reasoning",
    "blocks",
    "status",
    "stop_reason",
    "stop_sequence",
    "model",
    "latency_ms",
    "ttft_ms",
    "error",
    "created_at",
    "completed_at",
)


def conversation_fork(*, conversation: Conversation, message_id: uuid.UUID) -> Conversation:
    """A new conversation of the same owner with the same settings, whose history is a copy
    of the branch that ends at ``message_id`` (one of ``conversation``'s messages, checked by
    the caller), and whose current leaf is the copy of that message. The copies keep their
    times, so the history reads as it did; the usage ledger is not copied.

    Raises ``ConflictError`` when the branch holds an answer still being generated."""
    branch = message_branch(conversation=conversation, leaf_id=message_id)
    if any(message.status == Message.Status.IN_PROGRESS for message in branch):
        raise ConflictError(
            "The message is still being generated; fork once it has ended.",
            details={"status": Message.Status.IN_PROGRESS},
        )
    now = timezone.now()
    with transaction.atomic():
        fork = Conversation.objects.create(
            owner_id=conversation.owner_id,
            title=conversation.title,
            model=conversation.model,
            system_prompt=conversation.system_prompt,
            temperature=conversation.temperature,
            max_output_tokens=conversation.max_output_tokens,
            reasoning_effort=conversation.reasoning_effort,
            tools=conversation.tools,
            tool_choice=conversation.tool_choice,
            stop_sequences=conversation.stop_sequences,
            service_tier=conversation.service_tier,
            fallback_models=conversation.fallback_models,
            metadata=conversation.metadata,
            created_at=now,
            activity_at=now,
        )
        copies: list[Message] = []
        for message in branch:
            copies.append(
                Message(
                    conversation=fork,
                    parent=copies[-1] if copies else None,
                    **{field: getattr(message, field) for field in _FORK_COPIED},
                )
            )
        Message.objects.bulk_create(copies)
        if copies:
            fork.current_leaf = copies[-1]
            fork.last_message_at = copies[-1].created_at
            fork.save(update_fields=["current_leaf", "last_message_at", "updated_at"])
        conversation_notify(Event.CONVERSATION_CREATED, fork)
    return fork


def _current_branch_ids(conversation: Conversation) -> list[uuid.UUID]:
    """The ids of the conversation's current branch (the path from the root to its current
    leaf), oldest first, without an answer still being generated (its text is not final)."""
    if conversation.current_leaf_id is None:
        return []
    branch = message_branch(conversation=conversation, leaf_id=conversation.current_leaf_id)
    return [message.pk for message in branch if message.status != Message.Status.IN_PROGRESS]


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
