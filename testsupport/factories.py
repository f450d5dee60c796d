"""Test data builders shared by every app's tests: conversations and their messages, catalog
models and ledger rows."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, User
from conversations.blocks import text_blocks
from conversations.models import Conversation, Message
from conversations.selectors import Parent, conversation_leaf_id
from conversations.services import conversation_touch
from usage.models import LanguageModel, UsageKind, UsageRecord
from usage.services import language_model_create, ledger_append, model_price_add

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
    created_at: datetime | None = None,
    parent: Message | Literal[Parent.CURRENT_LEAF] | None = Parent.CURRENT_LEAF,
    **fields: Any,
) -> Message:
    """A stored message after ``parent`` (default: the conversation's current leaf, as a send
    without parent_id; None: a new root), made the current leaf, with the conversation's
    last_message_at and activity_at bumped as a sent turn bumps them (never moved back, so
    messages made out of order leave the latest in place), in one transaction. ``blocks``
    defaults to the reasoning and the text as blocks, as a migrated row has them."""
    created_at = created_at or timezone.now()
    parent_id = (
        conversation_leaf_id(conversation=conversation)
        if parent is Parent.CURRENT_LEAF
        else None
        if parent is None
        else parent.pk
    )
    fields.setdefault("blocks", text_blocks(content, fields.get("reasoning", "")))
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            parent_id=parent_id,
            role=role,
            content=content,
            created_at=created_at,
            **fields,
        )
        conversation_touch(
            conversation_id=conversation.pk, at=created_at, current_leaf_id=message.pk
        )
    # The instance follows the row, as far as it knows.
    conversation.current_leaf_id = message.pk
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


# Before any test's calls: the price of a model made here is in force from the start.
PRICED_FROM = datetime(2026, 1, 1, tzinfo=UTC)


def make_chat_model(
    model_id: str,
    *,
    provider: str = "groq",
    context_window: int = 8192,
    max_output_tokens: int = 1024,
    input_usd_per_mtok: str | None = "1",
    output_usd_per_mtok: str | None = "1",
    reasoning: bool = False,
    active: bool = True,
) -> LanguageModel:
    """A catalog model, usable at once (active, priced unless the prices are None)."""
    model = language_model_create(
        provider=provider,
        model_id=model_id,
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        reasoning=reasoning,
        active=active,
    )
    if input_usd_per_mtok is not None and output_usd_per_mtok is not None:
        model_price_add(
            language_model=model,
            input_usd_per_mtok=Decimal(input_usd_per_mtok),
            output_usd_per_mtok=Decimal(output_usd_per_mtok),
            effective_from=PRICED_FROM,
        )
    return model


def make_usage(
    *,
    user: User | None,
    at: datetime,
    model: str = "openai/gpt-oss-20b",
    input_tokens: int,
    output_tokens: int,
    cost_usd: str | None,
    conversation_id: uuid.UUID | None = None,
    kind: UsageKind = UsageKind.CHAT,
    reasoning_tokens: int | None = None,
    api_key: ApiKey | None = None,
) -> UsageRecord:
    """A ledger row as written at ``at`` (with its rollups, as every ledger row)."""
    return ledger_append(
        UsageRecord(
            user=user,
            conversation_id=conversation_id,
            message_id=uuid.uuid4(),
            kind=kind,
            provider="groq",
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            cost_usd=None if cost_usd is None else Decimal(cost_usd),
            price_unknown=cost_usd is None,
            created_at=at,
            api_key=api_key,
        )
    )
