import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from conversations.blocks import Block, text_blocks
from conversations.models import Conversation, Message
from conversations.services import conversation_touch
from messaging.workers import generation_cancel, worker_is_alive


def message_create(
    *,
    conversation: Conversation,
    role: Message.Role,
    content: str,
    reasoning: str = "",
    blocks: list[Block] | None = None,
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
    """Add a message and bump the conversation's last_message_at and activity_at (its place
    in the list), in one transaction.

    The bump never moves the timestamps back, so messages created out of order (or with an
    explicit ``created_at``) leave the latest one in place. ``blocks`` defaults to the
    reasoning and the text as blocks.
    """
    created_at = created_at or timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=role,
            content=content,
            reasoning=reasoning,
            blocks=text_blocks(content, reasoning) if blocks is None else blocks,
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


CANCEL_CONFIRM_SECONDS = 2.0
_CANCEL_POLL_SECONDS = 0.02


def message_cancel(*, message: Message) -> Message:
    """Stop the generation of ``message`` wherever it runs, and wait (briefly) until its
    process has stored it as cancelled. A message whose process is gone is cancelled here.
    Returns the message as stored now (still ``in_progress`` if the process is slow)."""
    async_to_sync(generation_cancel)(message.pk)
    deadline = time.monotonic() + CANCEL_CONFIRM_SECONDS
    while True:
        message.refresh_from_db()
        if message.status != Message.Status.IN_PROGRESS or time.monotonic() >= deadline:
            break
        time.sleep(_CANCEL_POLL_SECONDS)
    if message.status == Message.Status.IN_PROGRESS and not worker_is_alive(
        worker_id=message.worker_id
    ):
        Message.objects.filter(pk=message.pk, status=Message.Status.IN_PROGRESS).update(
            status=Message.Status.CANCELLED, completed_at=timezone.now()
        )
        message.refresh_from_db()
    return message
