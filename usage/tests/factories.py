"""Test data builders for the model catalog and the ledger, shared by every app's tests."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from accounts.models import ApiKey, User
from usage.models import LanguageModel, UsageKind, UsageRecord
from usage.services import language_model_create, ledger_append, model_price_add

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
