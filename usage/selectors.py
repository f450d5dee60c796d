"""Reads of the usage ledger: a user's statistics, the daily series, and what counts against
a budget. Every aggregate runs in SQL over the (user, created_at) index."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Count, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

from accounts.models import User
from usage.models import BudgetReservation, ModelPrice, UsageBudget, UsageRecord

_ZERO_USD = Decimal(0)


def model_prices_in_force(*, at: datetime) -> QuerySet[ModelPrice]:
    """For a subquery on LanguageModel rows: the row's prices that apply at ``at``, the one in
    force first (take ``[:1]``)."""
    return ModelPrice.objects.filter(
        language_model=OuterRef("pk"), effective_from__lte=at
    ).order_by("-effective_from")


# --- statistics ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelUsage:
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost_usd: Decimal
    unpriced_requests: int


@dataclass(frozen=True, slots=True)
class UsageStats:
    total_conversations: int
    total_messages: int
    requests: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost_usd: Decimal
    unpriced_requests: int
    by_model: list[ModelUsage]

    @property
    def models_used(self) -> list[str]:
        return [usage.model for usage in self.by_model]


@dataclass(frozen=True, slots=True)
class DailyUsage:
    date: date
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal


def _ledger(*, user: User, start: datetime | None, end: datetime | None) -> QuerySet[UsageRecord]:
    rows = UsageRecord.objects.filter(user=user)
    if start is not None:
        rows = rows.filter(created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    return rows.order_by()


def _sums() -> dict[str, Any]:
    return {
        "requests": Count("pk"),
        "input_tokens": Coalesce(Sum("input_tokens"), 0),
        "output_tokens": Coalesce(Sum("output_tokens"), 0),
        "cost_usd": Coalesce(Sum("cost_usd"), _ZERO_USD),
    }


def _by_model(rows: QuerySet[UsageRecord]) -> list[dict[str, Any]]:
    grouped = (
        rows.values("model")
        .annotate(
            **_sums(),
            reasoning_tokens=Coalesce(Sum("reasoning_tokens"), 0),
            unpriced_requests=Count("pk", filter=Q(price_unknown=True)),
            messages=Count("pk", filter=Q(kind=UsageRecord.Kind.CHAT)),
        )
        .order_by("model")
    )
    # The annotations are partly spread from a dict, which the type checker cannot follow.
    return list(cast("Iterable[dict[str, Any]]", grouped))


def usage_stats(*, user: User, start: datetime | None, end: datetime | None) -> UsageStats:
    """``user``'s usage from ``start`` (inclusive) to ``end`` (exclusive), either open.
    ``cost_usd`` sums the priced calls; ``unpriced_requests`` counts the others.

    Two queries: the sums per model (the totals add them up), and the distinct
    conversations, which do not add up across models."""
    rows = _ledger(user=user, start=start, end=end)
    grouped = _by_model(rows)
    conversations = rows.filter(conversation_id__isnull=False).values("conversation_id")
    by_model = [
        ModelUsage(
            model=row["model"],
            requests=row["requests"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
            total_tokens=row["input_tokens"] + row["output_tokens"],
            cost_usd=row["cost_usd"],
            unpriced_requests=row["unpriced_requests"],
        )
        for row in grouped
    ]

    def total(field: str) -> Any:
        return sum((getattr(usage, field) for usage in by_model), start=0)

    return UsageStats(
        # COUNT over a DISTINCT subquery: a hash aggregate, where COUNT(DISTINCT) sorts.
        total_conversations=conversations.distinct().count(),
        total_messages=sum(row["messages"] for row in grouped),
        requests=total("requests"),
        input_tokens=total("input_tokens"),
        output_tokens=total("output_tokens"),
        reasoning_tokens=total("reasoning_tokens"),
        total_tokens=total("total_tokens"),
        cost_usd=sum((usage.cost_usd for usage in by_model), start=_ZERO_USD),
        unpriced_requests=total("unpriced_requests"),
        by_model=by_model,
    )


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def usage_daily(*, user: User, first_day: date, last_day: date, zone: ZoneInfo) -> list[DailyUsage]:
    """One entry per calendar day in ``zone`` from ``first_day`` to ``last_day`` (both
    included), days without usage as zeros: a series a chart can draw as is."""
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    sums = _sums()
    rows = (
        _ledger(user=user, start=start, end=end)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(
            requests=sums["requests"],
            input_tokens=sums["input_tokens"],
            output_tokens=sums["output_tokens"],
            cost_usd=sums["cost_usd"],
        )
    )
    found = {row["day"]: row for row in rows}
    series = []
    for day in _days(first_day, last_day):
        row = found.get(day)
        if row is None:
            series.append(DailyUsage(day, 0, 0, 0, 0, _ZERO_USD))
            continue
        series.append(
            DailyUsage(
                date=day,
                requests=row["requests"],
                input_tokens=row["input_tokens"],
                output_tokens=row["output_tokens"],
                total_tokens=row["input_tokens"] + row["output_tokens"],
                cost_usd=row["cost_usd"],
            )
        )
    return series


# --- budgets -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """The limits that apply to one user; None: no limit."""

    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    daily_usd: Decimal | None = None
    monthly_usd: Decimal | None = None

    @property
    def any(self) -> bool:
        return any(
            limit is not None
            for limit in (self.daily_tokens, self.monthly_tokens, self.daily_usd, self.monthly_usd)
        )


def budget_limits_get(*, user_id: uuid.UUID) -> BudgetLimits:
    """The user's overrides (admin) over the defaults (settings), in one query."""
    override = UsageBudget.objects.filter(user_id=user_id).first()
    if override is None:
        override = UsageBudget()  # every field empty: the defaults
    if override.unlimited:
        return BudgetLimits()

    def pick[T](value: T | None, default: T | None) -> T | None:
        return value if value is not None else default

    return BudgetLimits(
        daily_tokens=pick(override.daily_token_limit, settings.USAGE_DAILY_TOKEN_LIMIT),
        monthly_tokens=pick(override.monthly_token_limit, settings.USAGE_MONTHLY_TOKEN_LIMIT),
        daily_usd=pick(override.daily_usd_limit, settings.USAGE_DAILY_USD_LIMIT),
        monthly_usd=pick(override.monthly_usd_limit, settings.USAGE_MONTHLY_USD_LIMIT),
    )


@dataclass(frozen=True, slots=True)
class BudgetSpend:
    """Spent (ledger) and held (live reservations) in the current day and month."""

    day_tokens: int
    day_usd: Decimal
    month_tokens: int
    month_usd: Decimal
    reserved_tokens: int
    reserved_usd: Decimal
    expired_reservations: int


def budget_spend_get(
    *, user_id: uuid.UUID, day_start: datetime, month_start: datetime, now: datetime
) -> BudgetSpend:
    """What counts against ``user_id``'s budgets, in one statement.

    One statement is one snapshot: a turn that settles meanwhile (its ledger row in, its
    reservation out, in one transaction) is counted exactly once, never zero times.
    """
    ledger = UsageRecord._meta.db_table
    reservations = BudgetReservation._meta.db_table
    sql = f"""
        SELECT
            COALESCE(SUM(input_tokens + output_tokens) FILTER (WHERE created_at >= %(day)s), 0),
            COALESCE(SUM(cost_usd) FILTER (WHERE created_at >= %(day)s), 0),
            COALESCE(SUM(input_tokens + output_tokens), 0),
            COALESCE(SUM(cost_usd), 0),
            (SELECT COALESCE(SUM(tokens), 0) FROM {reservations}
              WHERE user_id = %(user)s AND expires_at > %(now)s),
            (SELECT COALESCE(SUM(cost_usd), 0) FROM {reservations}
              WHERE user_id = %(user)s AND expires_at > %(now)s),
            (SELECT COUNT(*) FROM {reservations}
              WHERE user_id = %(user)s AND expires_at <= %(now)s)
        FROM {ledger}
        WHERE user_id = %(user)s AND created_at >= %(month)s
    """  # noqa: S608 - table names from the models; values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, {"user": user_id, "day": day_start, "month": month_start, "now": now})
        row = cursor.fetchone()
    assert row is not None  # noqa: S101 - an aggregate always returns a row
    return BudgetSpend(
        day_tokens=int(row[0]),
        day_usd=Decimal(row[1]),
        month_tokens=int(row[2]),
        month_usd=Decimal(row[3]),
        reserved_tokens=int(row[4]),
        reserved_usd=Decimal(row[5]),
        expired_reservations=int(row[6]),
    )
