"""Reads of the usage ledger: a user's statistics, the daily series, and what counts against
a budget. Every aggregate runs in SQL.

Whole UTC days (and hours) are read from the rollups that ``ledger_append`` keeps with the
ledger (UsageDaily, UsageHourly, UsageConversationDay); only the parts of a range that are not
whole (a start or end inside a day) are read from the ledger, over its (user, created_at)
index. The results are the ledger's, to the last digit: usage/tests/test_rollup.py compares
the two on random ledgers and ranges.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from time import monotonic as time_monotonic
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connection
from django.db.models import Count, OuterRef, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.db.models.signals import post_delete, post_save

from accounts.models import User
from usage.models import (
    BudgetReservation,
    ModelPrice,
    UsageBudget,
    UsageConversationDay,
    UsageDaily,
    UsageHourly,
    UsageRecord,
)

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


def _ledger(
    *, user: User, start: datetime | None, end: datetime | None, api_key_id: uuid.UUID | None
) -> QuerySet[UsageRecord]:
    rows = UsageRecord.objects.filter(user=user)
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
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


# The open ends of a range, for a condition on the ledger.
_BEGINNING = datetime(1, 1, 2, tzinfo=UTC)
_END = datetime(9999, 12, 30, tzinfo=UTC)


def _is_midnight(at: datetime) -> bool:
    return at.astimezone(UTC).time() == time.min


def _midnight_on_or_before(at: datetime) -> datetime:
    return datetime.combine(at.astimezone(UTC).date(), time.min, tzinfo=UTC)


def _midnight_on_or_after(at: datetime) -> datetime:
    midnight = _midnight_on_or_before(at)
    return midnight if midnight == at else midnight + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Split:
    """A range as the whole UTC days the rollups answer, ``days`` = [first, stop) (either
    open; None: not one whole day), and the ledger ranges [start, end) around them."""

    days: tuple[date | None, date | None] | None
    edges: list[tuple[datetime, datetime]]


def _split(start: datetime | None, end: datetime | None, *, whole_days: bool = True) -> _Split:
    """``whole_days`` False: all from the ledger (the rollups do not know API keys)."""
    if not whole_days:
        return _Split(days=None, edges=[(start or _BEGINNING, end or _END)])
    if (
        start is not None
        and end is not None
        and _midnight_on_or_after(start) >= _midnight_on_or_before(end)
    ):
        return _Split(days=None, edges=[(start, end)])
    edges = []
    first_day = stop_day = None
    if start is not None:
        first = _midnight_on_or_after(start)
        first_day = first.date()
        if start < first:
            edges.append((start, first))
    if end is not None:
        stop = _midnight_on_or_before(end)
        stop_day = stop.date()
        if stop < end:
            edges.append((stop, end))
    return _Split(days=(first_day, stop_day), edges=edges)


def _days_sql(days: tuple[date | None, date | None], params: dict[str, Any]) -> str:
    """The condition on a rollup's ``day`` for ``days``, its values put in ``params``."""
    first, stop = days
    conditions = ["user_id = %(user)s"]
    if first is not None:
        conditions.append("day >= %(first_day)s")
        params["first_day"] = first
    if stop is not None:
        conditions.append("day < %(stop_day)s")
        params["stop_day"] = stop
    return " AND ".join(conditions)


def _edges_sql(edges: list[tuple[datetime, datetime]], params: dict[str, Any]) -> str:
    """The condition on the ledger for the user's rows in ``edges``."""
    ranges = []
    for index, (start, end) in enumerate(edges):
        params[f"edge_start_{index}"], params[f"edge_end_{index}"] = start, end
        ranges.append(
            f"(created_at >= %(edge_start_{index})s AND created_at < %(edge_end_{index})s)"
        )
    key = " AND api_key_id = %(api_key)s" if "api_key" in params else ""
    return f"user_id = %(user)s{key} AND ({' OR '.join(ranges)})"


def _query(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


_LEDGER = UsageRecord._meta.db_table
_DAILY = UsageDaily._meta.db_table
_HOURLY = UsageHourly._meta.db_table
_CONVERSATION_DAYS = UsageConversationDay._meta.db_table


def usage_stats(
    *,
    user: User,
    start: datetime | None,
    end: datetime | None,
    api_key_id: uuid.UUID | None = None,
) -> UsageStats:
    """``user``'s usage from ``start`` (inclusive) to ``end`` (exclusive), either open; only
    the calls made with the API key ``api_key_id`` when given (a key of ``user``'s: the
    caller checked). ``cost_usd`` sums the priced calls; ``unpriced_requests`` counts the
    others.

    Two queries: the sums per model (the totals add them up), and the distinct
    conversations, which do not add up across models. Each reads the rollups for the whole
    UTC days of the range and the ledger for the rest; one key's calls, from the ledger
    alone (over its api_key index)."""
    split = _split(start, end, whole_days=api_key_id is None)
    params: dict[str, Any] = {"user": user.pk}
    if api_key_id is not None:
        params["api_key"] = api_key_id
    sums: list[str] = []
    conversations: list[str] = []
    if split.days is not None:
        days = _days_sql(split.days, params)
        sums.append(
            f"""SELECT model, kind, requests, input_tokens, output_tokens, reasoning_tokens,
                cost_usd, unpriced_requests FROM {_DAILY} WHERE {days}"""  # noqa: S608
        )
        conversations.append(
            f"SELECT conversation_id FROM {_CONVERSATION_DAYS} WHERE {days}"  # noqa: S608
        )
    if split.edges:
        edges = _edges_sql(split.edges, params)
        sums.append(
            f"""SELECT model, kind, 1, input_tokens, output_tokens, COALESCE(reasoning_tokens, 0),
                cost_usd, CASE WHEN price_unknown THEN 1 ELSE 0 END
            FROM {_LEDGER} WHERE {edges}"""  # noqa: S608
        )
        conversations.append(
            f"SELECT conversation_id FROM {_LEDGER} "  # noqa: S608
            f"WHERE {edges} AND conversation_id IS NOT NULL"
        )
    grouped = _query(
        f"""
        SELECT model, SUM(requests)::bigint, SUM(input_tokens)::bigint,
            SUM(output_tokens)::bigint, SUM(reasoning_tokens)::bigint, COALESCE(SUM(cost_usd), 0),
            SUM(unpriced_requests)::bigint,
            COALESCE(SUM(requests) FILTER (WHERE kind = %(chat)s), 0)::bigint
        FROM ({" UNION ALL ".join(sums)}) AS parts (model, kind, requests, input_tokens,
            output_tokens, reasoning_tokens, cost_usd, unpriced_requests)
        GROUP BY model
        ORDER BY model
        """,  # noqa: S608 - table names from the models; values are parameters
        {**params, "chat": UsageRecord.Kind.CHAT.value},
    )
    # GROUP BY: the distinct ids by a hash aggregate, where COUNT(DISTINCT) sorts.
    ((total_conversations,),) = _query(
        f"""SELECT COUNT(*) FROM (
            SELECT conversation_id FROM ({" UNION ALL ".join(conversations)}) AS named
            GROUP BY conversation_id
        ) AS conversations""",  # noqa: S608
        params,
    )
    by_model = [
        ModelUsage(
            model=model,
            requests=requests,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            total_tokens=input_tokens + output_tokens,
            cost_usd=cost_usd,
            unpriced_requests=unpriced_requests,
        )
        for (
            model,
            requests,
            input_tokens,
            output_tokens,
            reasoning_tokens,
            cost_usd,
            unpriced_requests,
            _,
        ) in grouped
    ]

    def total(field: str) -> Any:
        return sum((getattr(usage, field) for usage in by_model), start=0)

    return UsageStats(
        total_conversations=total_conversations,
        total_messages=sum(row[7] for row in grouped),
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


def _daily_sums(
    *,
    user: User,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    boundaries: list[datetime],
    api_key_id: uuid.UUID | None,
) -> list[tuple[Any, ...]]:
    """(day, requests, input_tokens, output_tokens, cost_usd) of the days in ``zone`` with
    usage: from the daily rollup when every day of ``zone`` in the range is a UTC day, from
    the hourly one when each starts on a whole UTC hour, else (and for one API key's calls)
    from the ledger."""
    params: dict[str, Any] = {"user": user.pk, "start": start, "end": end}
    rollups = api_key_id is None
    if rollups and all(_is_midnight(at) for at in boundaries):
        params["start"], params["end"] = start.astimezone(UTC).date(), end.astimezone(UTC).date()
        return _query(
            f"""
            SELECT day, SUM(requests)::bigint, SUM(input_tokens)::bigint,
                SUM(output_tokens)::bigint, COALESCE(SUM(cost_usd), 0)
            FROM {_DAILY}
            WHERE user_id = %(user)s AND day >= %(start)s AND day < %(end)s
            GROUP BY day
            """,  # noqa: S608 - table names from the models; values are parameters
            params,
        )
    if rollups and all(at.astimezone(UTC).time().replace(hour=0) == time.min for at in boundaries):
        params["zone"] = zone.key
        return _query(
            f"""
            SELECT (hour AT TIME ZONE %(zone)s)::date, SUM(requests)::bigint,
                SUM(input_tokens)::bigint, SUM(output_tokens)::bigint, COALESCE(SUM(cost_usd), 0)
            FROM {_HOURLY}
            WHERE user_id = %(user)s AND hour >= %(start)s AND hour < %(end)s
            GROUP BY 1
            """,  # noqa: S608 - table names from the models; values are parameters
            params,
        )
    sums = _sums()
    return [
        (row["day"], row["requests"], row["input_tokens"], row["output_tokens"], row["cost_usd"])
        for row in _ledger(user=user, start=start, end=end, api_key_id=api_key_id)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(
            requests=sums["requests"],
            input_tokens=sums["input_tokens"],
            output_tokens=sums["output_tokens"],
            cost_usd=sums["cost_usd"],
        )
    ]


def usage_daily(
    *,
    user: User,
    first_day: date,
    last_day: date,
    zone: ZoneInfo,
    api_key_id: uuid.UUID | None = None,
) -> list[DailyUsage]:
    """One entry per calendar day in ``zone`` from ``first_day`` to ``last_day`` (both
    included), days without usage as zeros: a series a chart can draw as is. Only the calls
    of the API key ``api_key_id`` when given (``user``'s: the caller checked)."""
    boundaries = [
        datetime.combine(day, time.min, tzinfo=zone)
        for day in _days(first_day, last_day + timedelta(days=1))
    ]
    found = {
        row[0]: row
        for row in _daily_sums(
            user=user,
            start=boundaries[0],
            end=boundaries[-1],
            zone=zone,
            boundaries=boundaries,
            api_key_id=api_key_id,
        )
    }
    series = []
    for day in _days(first_day, last_day):
        row = found.get(day)
        if row is None:
            series.append(DailyUsage(day, 0, 0, 0, 0, _ZERO_USD))
            continue
        _, requests, input_tokens, output_tokens, cost_usd = row
        series.append(
            DailyUsage(
                date=day,
                requests=requests,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=input_tokens + output_tokens,
                cost_usd=cost_usd,
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


# Per process, the limits of the users who sent lately: every send reads its owner's limits,
# which change only when an admin edits an override or the settings change. Kept for
# USAGE_BUDGET_CACHE_SECONDS; an override saved or deleted in this process, or a change of
# settings, clears the copy at once, and the other processes see it within that time. What
# was spent and what is held are never cached.
_limits: dict[uuid.UUID, tuple[float, BudgetLimits]] = {}
_LIMITS_KEPT = 10_000


def budget_limits_get(*, user_id: uuid.UUID) -> BudgetLimits:
    """The user's overrides (admin) over the defaults (settings): one query, or none while
    this process's copy is fresh."""
    now = time_monotonic()
    kept = _limits.get(user_id)
    if kept is not None and now - kept[0] < settings.USAGE_BUDGET_CACHE_SECONDS:
        return kept[1]
    limits = _budget_limits_read(user_id=user_id)
    if settings.USAGE_BUDGET_CACHE_SECONDS > 0:
        if len(_limits) >= _LIMITS_KEPT:
            _limits.clear()
        _limits[user_id] = (now, limits)
    return limits


def budget_limits_forget(*, user_id: uuid.UUID | None = None) -> None:
    """Drop this process's copy of a user's limits (every user's with None)."""
    if user_id is None:
        _limits.clear()
    else:
        _limits.pop(user_id, None)


def _forget_override(*, instance: UsageBudget, **kwargs: Any) -> None:
    budget_limits_forget(user_id=instance.user_id)


def _forget_on_setting(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("USAGE_"):
        budget_limits_forget()


post_save.connect(_forget_override, sender=UsageBudget, dispatch_uid="usage_limits_saved")
post_delete.connect(_forget_override, sender=UsageBudget, dispatch_uid="usage_limits_deleted")
setting_changed.connect(_forget_on_setting, dispatch_uid="usage_limits_settings")


def _budget_limits_read(*, user_id: uuid.UUID) -> BudgetLimits:
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
    reservation out, in one transaction) is counted exactly once, never zero times. Read
    from the daily rollup (written in that same transaction) when the day and the month
    start on UTC midnights, as they do for ``budget_reserve``; else from the ledger.
    """
    reservations = BudgetReservation._meta.db_table
    day: date | datetime = day_start
    month: date | datetime = month_start
    spent_from, at = _LEDGER, "created_at"
    if _is_midnight(day_start) and _is_midnight(month_start):
        spent_from, at = _DAILY, "day"
        day, month = day_start.astimezone(UTC).date(), month_start.astimezone(UTC).date()
    sql = f"""
        SELECT
            COALESCE(SUM(input_tokens + output_tokens) FILTER (WHERE {at} >= %(day)s), 0)::bigint,
            COALESCE(SUM(cost_usd) FILTER (WHERE {at} >= %(day)s), 0),
            COALESCE(SUM(input_tokens + output_tokens), 0)::bigint,
            COALESCE(SUM(cost_usd), 0),
            (SELECT COALESCE(SUM(tokens), 0) FROM {reservations}
              WHERE user_id = %(user)s AND expires_at > %(now)s),
            (SELECT COALESCE(SUM(cost_usd), 0) FROM {reservations}
              WHERE user_id = %(user)s AND expires_at > %(now)s),
            (SELECT COUNT(*) FROM {reservations}
              WHERE user_id = %(user)s AND expires_at <= %(now)s)
        FROM {spent_from}
        WHERE user_id = %(user)s AND {at} >= %(month)s
    """  # noqa: S608 - table names from the models; values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, {"user": user_id, "day": day, "month": month, "now": now})
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
