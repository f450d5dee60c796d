"""The chat models callers may use, with the prices in force now, read from the database
(``usage.models.LanguageModel`` and its ``ModelPrice`` history).

Callers go through these functions only. A model is usable when it is active and its
provider is configured (``settings.LLM_PROVIDERS``): the offline ``local/dev-echo`` model is
seeded everywhere but has a provider only in development and test modes.

Every send reads the catalog (the serializer and the view), so each server process keeps
what it read for ``MODEL_CATALOG_CACHE_SECONDS``: one small query per refresh, none per
send. A price scheduled to take effect at a given time ends the cached copy at that time, so
the price in force is exact; an edit in the admin clears this process's copy at once
(``catalog_cache_clear``) and reaches the other processes within the TTL.
"""

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from usage.models import LanguageModel, ModelPrice
from usage.selectors import model_prices_in_force


@dataclass(frozen=True, slots=True)
class ChatModel:
    """A catalog model as the API serves it: an active ``LanguageModel`` (the stored row)
    with the prices in force, read once and cached (not the provider's ``ProviderModel``)."""

    id: str
    display_name: str
    context_window: int
    max_output_tokens: int
    # USD per million tokens in force when the catalog was read; None: no price known.
    input_usd_per_mtok: Decimal | None
    output_usd_per_mtok: Decimal | None
    reasoning: bool
    # Which entry of settings.LLM_PROVIDERS serves it.
    provider: str = "groq"
    # None: cached input tokens cost the input price.
    cached_input_usd_per_mtok: Decimal | None = None
    # The ModelPrice row these prices come from, and since when it applies.
    price_id: int | None = None
    price_effective_from: datetime | None = None
    # When the catalog got it (the compatibility routes' model lists show it).
    created_at: datetime | None = None


_MICRO = Decimal(1_000_000)
_COST_QUANTUM = Decimal("0.0000000001")


class TokenCounts(Protocol):
    """A turn's token counts, as a provider reports them (``messaging.llm.base.Usage``)."""

    @property
    def input_tokens(self) -> int: ...

    @property
    def output_tokens(self) -> int: ...

    @property
    def cached_input_tokens(self) -> int | None: ...


def turn_cost(*, model: ChatModel, usage: TokenCounts) -> Decimal | None:
    """Exact cost in USD at the per-million-token prices ``model`` carries (those in force
    when the turn was prepared); None when it has no price. Cached input tokens cost the
    cached-input price when the model has one."""
    input_price, output_price = model.input_usd_per_mtok, model.output_usd_per_mtok
    if input_price is None or output_price is None:
        return None
    cached = min(usage.cached_input_tokens or 0, usage.input_tokens)
    cached_price = model.cached_input_usd_per_mtok
    if cached_price is None:
        cached_price = input_price
    cost = (
        (usage.input_tokens - cached) * input_price
        + cached * cached_price
        + usage.output_tokens * output_price
    ) / _MICRO
    return cost.quantize(_COST_QUANTUM)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    models: tuple[ChatModel, ...]
    read_at: float  # time.monotonic()
    next_price_change: datetime | None


_lock = threading.Lock()
_snapshot: _Snapshot | None = None


def _read() -> _Snapshot:
    """The active models with their current prices, in one query."""
    now = timezone.now()
    current = model_prices_in_force(at=now)
    upcoming = ModelPrice.objects.filter(
        language_model=OuterRef("pk"), effective_from__gt=now
    ).order_by("effective_from")
    rows = LanguageModel.objects.filter(active=True).annotate(
        price_pk=Subquery(current.values("pk")[:1]),
        price_from=Subquery(current.values("effective_from")[:1]),
        price_input=Subquery(current.values("input_usd_per_mtok")[:1]),
        price_cached=Subquery(current.values("cached_input_usd_per_mtok")[:1]),
        price_output=Subquery(current.values("output_usd_per_mtok")[:1]),
        next_change=Subquery(upcoming.values("effective_from")[:1]),
    )
    models = []
    changes = []
    for row in rows:
        models.append(
            ChatModel(
                id=row.model_id,
                display_name=row.display_name,
                context_window=row.context_window,
                max_output_tokens=row.max_output_tokens,
                input_usd_per_mtok=row.price_input,
                output_usd_per_mtok=row.price_output,
                reasoning=row.reasoning,
                provider=row.provider,
                cached_input_usd_per_mtok=row.price_cached,
                price_id=row.price_pk,
                price_effective_from=row.price_from,
                created_at=row.created_at,
            )
        )
        if row.next_change is not None:
            changes.append(row.next_change)
    return _Snapshot(
        models=tuple(models),
        read_at=time.monotonic(),
        next_price_change=min(changes, default=None),
    )


def _fresh(snapshot: _Snapshot | None) -> bool:
    if snapshot is None:
        return False
    if time.monotonic() - snapshot.read_at >= settings.MODEL_CATALOG_CACHE_SECONDS:
        return False
    return snapshot.next_price_change is None or timezone.now() < snapshot.next_price_change


def _active_models() -> tuple[ChatModel, ...]:
    global _snapshot  # noqa: PLW0603 - the process-wide cache
    snapshot = _snapshot
    if not _fresh(snapshot):
        with _lock:
            snapshot = _snapshot
            if not _fresh(snapshot):
                snapshot = _snapshot = _read()
    assert snapshot is not None  # noqa: S101 - for mypy: _fresh(None) is False
    return snapshot.models


def catalog_cache_clear() -> None:
    """Forget this process's copy: the next read goes to the database."""
    global _snapshot  # noqa: PLW0603
    with _lock:
        _snapshot = None


def chat_models() -> list[ChatModel]:
    """Every usable model (active, with its provider configured), by provider and id."""
    return [model for model in _active_models() if model.provider in settings.LLM_PROVIDERS]


def chat_model_get(model_id: str) -> ChatModel | None:
    """The usable model with this id, with the prices in force now; None if it is unknown,
    inactive, decommissioned or has no configured provider (see ``chat_model_unavailable``)."""
    return next((model for model in chat_models() if model.id == model_id), None)


def chat_model_unavailable(model_id: str) -> str:
    """Why ``model_id`` cannot be used, naming the models that can. For error messages: it
    reads the database, uncached."""
    available = ", ".join(model.id for model in chat_models()) or "none"
    row = LanguageModel.objects.filter(model_id=model_id).first()
    if row is None:
        reason = f"Unknown model '{model_id}'."
    elif row.decommissioned:
        reason = f"The model '{model_id}' has been decommissioned by its provider."
        replacement = chat_model_replacement(model_id)
        if replacement is not None:
            reason += f" Its replacement is '{replacement}'."
    elif not row.active:
        reason = f"The model '{model_id}' is not available (inactive)."
    else:
        reason = (
            f"The model '{model_id}' is not served here: its provider '{row.provider}' is not "
            "configured."
        )
    return f"{reason} Available models: {available}."


def chat_model_replacement(model_id: str) -> str | None:
    """The usable model that replaces a retired one (following replacements that were
    retired in turn), or None. Reads the database, uncached."""
    seen = {model_id}
    current = model_id
    while True:
        replacement = (
            LanguageModel.objects.filter(model_id=current)
            .values_list("replaced_by__model_id", flat=True)
            .first()
        )
        if replacement is None or replacement in seen:
            return None
        if chat_model_get(replacement) is not None:
            return replacement
        seen.add(replacement)
        current = replacement


def default_chat_model() -> ChatModel:
    model = chat_model_get(settings.DEFAULT_CHAT_MODEL)
    if model is None:
        raise ImproperlyConfigured(
            f"DEFAULT_CHAT_MODEL={settings.DEFAULT_CHAT_MODEL!r} is not a usable model of the "
            "catalog (active, with its provider configured)."
        )
    return model
