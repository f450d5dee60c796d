"""Writes of the usage app: the ledger, budget reservations, and the model catalog."""

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.rls import service_role
from chatapi.errors import BillingError
from chatapi.rows import insert_rows_sql, json_rows
from usage.catalog import ChatModel, catalog_cache_clear
from usage.models import BudgetReservation, LanguageModel, ModelPrice, UsageKind, UsageRecord
from usage.selectors import BudgetLimits, BudgetSpend, budget_limits_get, budget_spend_get

# --- the ledger ----------------------------------------------------------------------------


def usage_record(record: UsageRecord | None) -> UsageRecord | None:
    """Add one upstream call's row (``ledger_row``) to the ledger, as the service (the
    policies keep the ledger from users); None, for a call that consumed no tokens, adds
    nothing."""
    if record is None:
        return None
    with service_role():  # the ledger and its rollups are the service's to write
        return ledger_append(record)


# The ledger rows `added` (a CTE before these: the rows matching a condition, or the rows an
# INSERT adds), added to the rollups (UsageDaily, UsageHourly, UsageConversationDay) in the
# same statement. Upserts: concurrent writers of the same key add up, the second waiting for
# the first's commit. Each statement inserts its keys in one order, so two of them cannot
# deadlock each other. The same SQL backfills in migration 0004.
_ROLLUP_CTES = """
daily AS (
    INSERT INTO usage_usagedaily AS d (user_id, day, kind, model, requests, input_tokens,
        output_tokens, reasoning_tokens, cached_input_tokens, cost_usd, unpriced_requests,
        estimated_requests)
    SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, kind, model, COUNT(*),
        SUM(input_tokens), SUM(output_tokens), COALESCE(SUM(reasoning_tokens), 0),
        COALESCE(SUM(cached_input_tokens), 0), SUM(cost_usd),
        COUNT(*) FILTER (WHERE price_unknown), COUNT(*) FILTER (WHERE usage_estimated)
    FROM added
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, day, model, kind) DO UPDATE SET
        requests = d.requests + EXCLUDED.requests,
        input_tokens = d.input_tokens + EXCLUDED.input_tokens,
        output_tokens = d.output_tokens + EXCLUDED.output_tokens,
        reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens,
        cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens,
        cost_usd = COALESCE(d.cost_usd + EXCLUDED.cost_usd, d.cost_usd, EXCLUDED.cost_usd),
        unpriced_requests = d.unpriced_requests + EXCLUDED.unpriced_requests,
        estimated_requests = d.estimated_requests + EXCLUDED.estimated_requests
),
hourly AS (
    INSERT INTO usage_usagehourly AS h (user_id, hour, requests, input_tokens, output_tokens,
        cost_usd)
    SELECT user_id, date_trunc('hour', created_at, 'UTC'), COUNT(*), SUM(input_tokens),
        SUM(output_tokens), SUM(cost_usd)
    FROM added
    WHERE user_id IS NOT NULL
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (user_id, hour) DO UPDATE SET
        requests = h.requests + EXCLUDED.requests,
        input_tokens = h.input_tokens + EXCLUDED.input_tokens,
        output_tokens = h.output_tokens + EXCLUDED.output_tokens,
        cost_usd = COALESCE(h.cost_usd + EXCLUDED.cost_usd, h.cost_usd, EXCLUDED.cost_usd)
),
conversation_days AS (
    INSERT INTO usage_usageconversationday (user_id, day, conversation_id)
    SELECT DISTINCT user_id, (created_at AT TIME ZONE 'UTC')::date, conversation_id
    FROM added
    WHERE user_id IS NOT NULL AND conversation_id IS NOT NULL
    ORDER BY 1, 2, 3
    ON CONFLICT (user_id, day, conversation_id) DO NOTHING
)"""
_LEDGER = UsageRecord._meta.db_table


def _rollup_add(where: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH added AS (SELECT * FROM {_LEDGER} WHERE {where}), {_ROLLUP_CTES} SELECT 1",  # noqa: S608 - constant conditions
            params,
        )


@functools.cache
def ledger_append_ctes(*, param: str, condition: str = "TRUE") -> str:
    """The CTEs (``added`` and the rollups') of a statement that appends the ledger rows in
    the JSON parameter ``param`` (``chatapi.rows.json_rows``; ``[]`` for none) when
    ``condition`` holds: for a statement that stores more than the ledger in one round trip
    (``messaging.turns.turn_record``). ``ledger_append`` is the same statement alone."""
    return (
        f"added AS ({insert_rows_sql(UsageRecord, param)} WHERE {condition} RETURNING *), "
        f"{_ROLLUP_CTES}"
    )


@functools.cache
def _ledger_append_sql() -> str:
    return f"WITH {ledger_append_ctes(param='rows')} SELECT id FROM added"  # noqa: S608 - constant


def ledger_row(
    *,
    user_id: uuid.UUID | None,
    conversation_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    kind: UsageKind,
    model: ChatModel,
    input_tokens: int,
    output_tokens: int,
    reasoning_tokens: int | None = None,
    cached_input_tokens: int | None = None,
    usage_estimated: bool,
    cost_usd: Decimal | None,
    created_at: datetime | None = None,
    api_key_id: uuid.UUID | None = None,
) -> UsageRecord | None:
    """The ledger row of one upstream call, not yet stored (``usage_record`` stores it), or
    None when the call consumed no tokens (refused before any output): not billable."""
    if input_tokens == 0 and output_tokens == 0:
        return None
    return UsageRecord(
        user_id=user_id,
        conversation_id=conversation_id,
        message_id=message_id,
        kind=kind,
        provider=model.provider,
        model=model.id,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning_tokens,
        cached_input_tokens=cached_input_tokens,
        usage_estimated=usage_estimated,
        price_id=model.price_id if cost_usd is not None else None,
        cost_usd=cost_usd,
        price_unknown=cost_usd is None,
        created_at=created_at or timezone.now(),
        api_key_id=api_key_id,
    )


def ledger_append(record: UsageRecord) -> UsageRecord:
    """Insert ``record`` (a new ledger row) and add it to the rollups, in one statement.
    The one way rows enter the ledger: the statistics read the rollups, so a row written
    otherwise would be missing from them until ``usage_rollup_rebuild``."""
    with connection.cursor() as cursor:
        cursor.execute(_ledger_append_sql(), {"rows": json_rows(record)})
        (record.pk,) = cursor.fetchone()
    record._state.adding, record._state.db = False, connection.alias
    return record


# The reverse of _ROLLUP_ADD for rows leaving the ledger; returns the removed rows' users and
# times, whose emptied rollup rows go next. The conversation-day markers stay: the
# conversation was active that day whatever the row said.
_ROLLUP_SUBTRACT = """
WITH removed AS (
    DELETE FROM usage_usagerecord WHERE ({where}) AND user_id IS NOT NULL RETURNING *
),
daily AS (
    UPDATE usage_usagedaily AS d SET
        requests = d.requests - r.requests,
        input_tokens = d.input_tokens - r.input_tokens,
        output_tokens = d.output_tokens - r.output_tokens,
        reasoning_tokens = d.reasoning_tokens - r.reasoning_tokens,
        cached_input_tokens = d.cached_input_tokens - r.cached_input_tokens,
        -- NULL when no priced row is left, as the sum of the rest would be.
        cost_usd = CASE WHEN d.requests - r.requests > d.unpriced_requests - r.unpriced_requests
            THEN COALESCE(d.cost_usd - r.cost_usd, d.cost_usd) END,
        unpriced_requests = d.unpriced_requests - r.unpriced_requests,
        estimated_requests = d.estimated_requests - r.estimated_requests
    FROM (
        SELECT user_id, (created_at AT TIME ZONE 'UTC')::date AS day, kind, model,
            COUNT(*) AS requests, SUM(input_tokens) AS input_tokens,
            SUM(output_tokens) AS output_tokens,
            COALESCE(SUM(reasoning_tokens), 0) AS reasoning_tokens,
            COALESCE(SUM(cached_input_tokens), 0) AS cached_input_tokens,
            SUM(cost_usd) AS cost_usd,
            COUNT(*) FILTER (WHERE price_unknown) AS unpriced_requests,
            COUNT(*) FILTER (WHERE usage_estimated) AS estimated_requests
        FROM removed GROUP BY 1, 2, 3, 4
    ) AS r
    WHERE d.user_id = r.user_id AND d.day = r.day AND d.kind = r.kind AND d.model = r.model
),
hourly AS (
UPDATE usage_usagehourly AS h SET
    requests = h.requests - r.requests,
    input_tokens = h.input_tokens - r.input_tokens,
    output_tokens = h.output_tokens - r.output_tokens,
    cost_usd = COALESCE(h.cost_usd - r.cost_usd, h.cost_usd)  -- see ledger_remove
FROM (
    SELECT user_id, date_trunc('hour', created_at, 'UTC') AS hour, COUNT(*) AS requests,
        SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
        SUM(cost_usd) AS cost_usd
    FROM removed GROUP BY 1, 2
) AS r
WHERE h.user_id = r.user_id AND h.hour = r.hour
)
SELECT DISTINCT user_id, created_at FROM removed
"""


def ledger_remove(*, message_id: uuid.UUID, kind: UsageKind) -> None:
    """Take a message's rows of ``kind`` out of the ledger and out of the rollups: for an
    estimate that a turn's real outcome replaces (``turn_record``). The one way rows leave
    the ledger, as ``ledger_append`` is the one way in. Rows without a user (it was deleted)
    are history and stay: the rollups keep one row per such row, not one per key."""
    with transaction.atomic(), service_role(), connection.cursor() as cursor:
        cursor.execute(
            _ROLLUP_SUBTRACT.format(where="message_id = %s AND kind = %s"), [message_id, kind]
        )
        for user_id, at in cursor.fetchall():
            # Rollup rows that now count nothing go, as a rebuild would leave them out.
            cursor.execute(
                "DELETE FROM usage_usagedaily WHERE requests = 0 "
                "AND user_id = %s AND day = (%s AT TIME ZONE 'UTC')::date",
                [user_id, at],
            )
            cursor.execute(
                "DELETE FROM usage_usagehourly WHERE requests = 0 "
                "AND user_id = %s AND hour = date_trunc('hour', %s, 'UTC')",
                [user_id, at],
            )
            # The hourly rollup counts no unpriced rows, so whether any priced row is left
            # in the hour (else its cost is NULL, not 0) is read from the ledger.
            cursor.execute(
                "UPDATE usage_usagehourly AS h SET cost_usd = (SELECT SUM(cost_usd) "
                "FROM usage_usagerecord WHERE user_id = h.user_id AND created_at >= h.hour "
                "AND created_at < h.hour + interval '1 hour') "
                "WHERE cost_usd = 0 AND user_id = %s AND hour = date_trunc('hour', %s, 'UTC')",
                [user_id, at],
            )


def usage_rollup_rebuild(*, user_ids: Sequence[uuid.UUID] | None = None) -> None:
    """Recompute the rollups of ``user_ids`` (default: everyone, and the rows without a
    user) from the ledger: after rows were written around ``ledger_append`` (a bulk load, or
    a process of an older release during a deploy). The ledger takes no new rows meanwhile
    (SHARE lock until the commit): turns being recorded wait, reads go on."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {UsageRecord._meta.db_table} IN SHARE MODE")
        if user_ids is None:
            for table in ("usage_usagedaily", "usage_usagehourly", "usage_usageconversationday"):
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - a constant
            _rollup_add("TRUE", [])
            return
        users = list(user_ids)
        for table in ("usage_usagedaily", "usage_usagehourly", "usage_usageconversationday"):
            cursor.execute(f"DELETE FROM {table} WHERE user_id = ANY(%s)", [users])  # noqa: S608
        _rollup_add("user_id = ANY(%s)", [users])


# --- budgets -------------------------------------------------------------------------------

# The first key of the PostgreSQL advisory locks that serialize one user's reservations
# ("usag"); the second is taken from the user id. A collision only serializes two users.
_BUDGET_LOCK_CLASS = 0x75736167


@dataclass(frozen=True, slots=True)
class _Check:
    name: str  # daily_tokens, monthly_usd, ...
    limit: int | Decimal
    spent: int | Decimal
    held: int | Decimal
    resets_at: datetime


def _next_month(month_start: datetime) -> datetime:
    return (month_start + timedelta(days=32)).replace(day=1)


def _checks(limits: BudgetLimits, spend: BudgetSpend, now: datetime) -> list[_Check]:
    """The limits that apply, the monthly ones first: when a monthly budget is spent, the
    daily reset does not help, so it is the one to report."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    next_month = _next_month(day_start.replace(day=1))
    next_day = day_start + timedelta(days=1)
    candidates: list[tuple[str, int | Decimal | None, int | Decimal, int | Decimal]] = [
        ("monthly_tokens", limits.monthly_tokens, spend.month_tokens, spend.reserved_tokens),
        ("monthly_usd", limits.monthly_usd, spend.month_usd, spend.reserved_usd),
        ("daily_tokens", limits.daily_tokens, spend.day_tokens, spend.reserved_tokens),
        ("daily_usd", limits.daily_usd, spend.day_usd, spend.reserved_usd),
    ]
    return [
        _Check(
            name=name,
            limit=limit,
            spent=spent,
            held=held,
            resets_at=next_month if name.startswith("monthly") else next_day,
        )
        for name, limit, spent, held in candidates
        if limit is not None
    ]


def _amount(value: int | Decimal, *, usd: bool) -> str:
    return f"${value:.4f}" if usd else f"{value} tokens"


def _over_budget(check: _Check) -> BillingError:
    period, unit = check.name.split("_")
    usd = unit == "usd"
    resets_at = check.resets_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    held = (
        f", and {_amount(check.held, usd=usd)} held by requests in progress" if check.held else ""
    )
    message = (
        f"Your {period} {'USD' if usd else 'token'} budget is spent: "
        f"{_amount(check.spent, usd=usd)} of {_amount(check.limit, usd=usd)} used{held}. "
        f"It resets at {resets_at}."
    )
    return BillingError(
        message,
        details={
            "limit": check.name,
            "limit_value": str(check.limit),
            "used": str(check.spent),
            "in_flight": str(check.held),
            "resets_at": resets_at,
        },
    )


def budget_reserve(
    *,
    user_id: uuid.UUID,
    message_id: uuid.UUID,
    tokens: int,
    cost_usd: Decimal | None,
    now: datetime | None = None,
) -> BudgetReservation | None:
    """Hold ``tokens`` and ``cost_usd`` (a turn's worst case) against the user's budgets
    before the upstream call, or raise ``BillingError`` naming the spent limit.

    A turn is admitted while spending plus what turns in flight hold is under every limit,
    so concurrent turns overspend by at most one turn's estimate. Returns None (and holds
    nothing) when no limit applies. Must run in a transaction: the user's reservations are
    serialized by an advisory lock held until it commits. ``budget_release`` (when the turn
    is recorded) or ``USAGE_RESERVATION_TTL_SECONDS`` ends the hold.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("budget_reserve must run inside transaction.atomic().")
    limits = budget_limits_get(user_id=user_id)
    if not limits.any:
        return None
    now = (now or timezone.now()).astimezone(UTC)
    with connection.cursor() as cursor:
        key = int.from_bytes(user_id.bytes[:4], "big", signed=True)
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_BUDGET_LOCK_CLASS, key])
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    spend = budget_spend_get(
        user_id=user_id, day_start=day_start, month_start=day_start.replace(day=1), now=now
    )
    for check in _checks(limits, spend, now):
        if check.spent + check.held >= check.limit:
            raise _over_budget(check)
    with service_role():  # reservations are the service's to write
        if spend.expired_reservations:
            BudgetReservation.objects.filter(user_id=user_id, expires_at__lte=now).delete()
        return BudgetReservation.objects.create(
            message_id=message_id,
            user_id=user_id,
            tokens=tokens,
            cost_usd=cost_usd,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.USAGE_RESERVATION_TTL_SECONDS),
        )


def budget_release_sql(*, message_param: str) -> str:
    """``budget_release`` as a DELETE of the reservation of the message in the named
    parameter ``message_param``, for a statement that stores more (a condition may follow)."""
    table = BudgetReservation._meta.db_table
    return f"DELETE FROM {table} WHERE message_id = %({message_param})s"  # noqa: S608 - names


def budget_release(*, message_id: uuid.UUID) -> None:
    """End the hold of the turn that answers with ``message_id`` (if it had one). Call it in
    the transaction that writes the turn's ledger row, so the two change together."""
    with service_role():
        BudgetReservation.objects.filter(message_id=message_id).delete()


# --- the model catalog ---------------------------------------------------------------------


def language_model_create(
    *,
    provider: str,
    model_id: str,
    display_name: str = "",
    context_window: int,
    max_output_tokens: int,
    reasoning: bool = False,
    active: bool = False,
) -> LanguageModel:
    model = LanguageModel.objects.create(
        provider=provider,
        model_id=model_id,
        display_name=display_name or model_id,
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        reasoning=reasoning,
        active=active,
    )
    catalog_cache_clear()
    return model


def model_price_add(
    *,
    language_model: LanguageModel,
    input_usd_per_mtok: Decimal,
    output_usd_per_mtok: Decimal,
    cached_input_usd_per_mtok: Decimal | None = None,
    effective_from: datetime | None = None,
) -> ModelPrice:
    """A new price for ``language_model`` from ``effective_from`` (default now) on. Earlier
    calls keep the cost they were recorded with."""
    price = ModelPrice.objects.create(
        language_model=language_model,
        effective_from=effective_from or timezone.now(),
        input_usd_per_mtok=input_usd_per_mtok,
        cached_input_usd_per_mtok=cached_input_usd_per_mtok,
        output_usd_per_mtok=output_usd_per_mtok,
    )
    catalog_cache_clear()
    return price


@dataclass
class CatalogSyncReport:
    added: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    relisted: list[str] = field(default_factory=list)
    limits_changed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.deactivated or self.relisted or self.limits_changed)


class ProviderModel(Protocol):
    """A model as its provider lists it (``messaging.llm.model_list.ListedModel``)."""

    @property
    def id(self) -> str: ...

    @property
    def context_window(self) -> int: ...

    @property
    def max_output_tokens(self) -> int: ...

    @property
    def active(self) -> bool: ...


def catalog_sync(
    *, provider: str, listed: Sequence[ProviderModel], now: datetime | None = None
) -> CatalogSyncReport:
    """Bring ``provider``'s catalog rows in line with what it lists: new ids are added
    inactive (an operator activates them once priced), ids it no longer lists are
    deactivated as decommissioned, context and output limits follow the listing.

    An empty listing changes nothing (raises ValueError): it is more likely an outage than
    every model retired at once.
    """
    listing = {model.id: model for model in listed if model.active}
    if not listing:
        raise ValueError(f"The provider '{provider}' listed no active models; nothing changed.")
    now = now or timezone.now()
    report = CatalogSyncReport()
    with transaction.atomic():
        known = {
            row.model_id: row
            for row in LanguageModel.objects.select_for_update().filter(provider=provider)
        }
        for model_id, entry in sorted(listing.items()):
            row = known.get(model_id)
            if row is None:
                LanguageModel.objects.create(
                    provider=provider,
                    model_id=model_id,
                    display_name=model_id,
                    context_window=entry.context_window,
                    max_output_tokens=entry.max_output_tokens,
                    active=False,
                    created_at=now,
                )
                report.added.append(model_id)
                continue
            changes: list[str] = []
            if row.decommissioned:
                row.decommissioned, row.decommissioned_at = False, None
                changes += ["decommissioned", "decommissioned_at"]
                report.relisted.append(model_id)
            if (row.context_window, row.max_output_tokens) != (
                entry.context_window,
                entry.max_output_tokens,
            ):
                report.limits_changed.append(
                    f"{model_id} (context {row.context_window} -> {entry.context_window}, "
                    f"output {row.max_output_tokens} -> {entry.max_output_tokens})"
                )
                row.context_window = entry.context_window
                row.max_output_tokens = entry.max_output_tokens
                changes += ["context_window", "max_output_tokens"]
            if changes:
                row.save(update_fields=[*changes, "updated_at"])
        for model_id, row in sorted(known.items()):
            if model_id in listing or row.decommissioned:
                continue
            row.active, row.decommissioned, row.decommissioned_at = False, True, now
            row.save(update_fields=["active", "decommissioned", "decommissioned_at", "updated_at"])
            report.deactivated.append(model_id)
    catalog_cache_clear()
    return report
