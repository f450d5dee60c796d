"""The usage rollups against the ledger they sum: statistics, the daily series, the budget
check and the admin dashboard read the rollups for whole days, and must answer exactly what
an aggregation over the ledger rows answers, for random ledgers and ranges."""

import importlib
import random
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

from accounts.models import User
from usage.dashboard import usage_dashboard
from usage.models import (
    UsageConversationDay,
    UsageDaily,
    UsageHourly,
    UsageKind,
    UsageRecord,
)
from usage.selectors import (
    DailyUsage,
    ModelUsage,
    UsageStats,
    budget_spend_get,
    usage_daily,
    usage_stats,
)
from usage.services import ledger_append, ledger_remove, usage_rollup_rebuild

pytestmark = pytest.mark.django_db

MODELS = ["openai/gpt-oss-20b", "openai/gpt-oss-120b", "qwen/qwen3-32b"]
FIRST = datetime(2026, 10, 23, tzinfo=UTC)  # Lisbon leaves summer time on 2026-10-25
DAYS = 15
ZERO = Decimal(0)


def _row(rng: random.Random, user: User | None, conversations: list[uuid.UUID]) -> UsageRecord:
    at = FIRST + timedelta(seconds=rng.randrange(DAYS * 86400))
    if rng.random() < 0.15:  # on a midnight, or a microsecond either side of one
        at = at.replace(hour=0, minute=0, second=0) + rng.choice(
            [timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1)]
        )
    priced = rng.random() > 0.2
    return UsageRecord(
        user=user,
        conversation_id=rng.choice([*conversations, None]),
        message_id=uuid.uuid4(),
        kind=rng.choice([UsageKind.CHAT, UsageKind.CHAT, UsageKind.TITLE]),
        provider="groq",
        model=rng.choice(MODELS),
        input_tokens=rng.randrange(1, 5000),
        output_tokens=rng.randrange(0, 3000),
        reasoning_tokens=rng.choice([None, rng.randrange(0, 500)]),
        cached_input_tokens=rng.choice([None, rng.randrange(0, 500)]),
        usage_estimated=rng.random() < 0.2,
        cost_usd=Decimal(rng.randrange(0, 10**8)).scaleb(-10) if priced else None,
        price_unknown=not priced,
        created_at=at,
    )


def random_ledger(seed: int, users: list[User | None], rows: int) -> random.Random:
    rng = random.Random(seed)  # noqa: S311 - test data
    conversations = [uuid.uuid4() for _ in range(8)]
    for _ in range(rows):
        ledger_append(_row(rng, rng.choice(users), conversations))
    return rng


def _instant(rng: random.Random) -> datetime:
    """A bound: a UTC midnight, a local midnight elsewhere, or any microsecond."""
    day = FIRST + timedelta(days=rng.randrange(-1, DAYS + 1))
    return rng.choice(
        [
            day,
            day.replace(tzinfo=ZoneInfo("Europe/Lisbon")),
            day.replace(tzinfo=ZoneInfo("Asia/Kolkata")),
            day + timedelta(microseconds=rng.randrange(86400 * 10**6)),
            day + timedelta(hours=rng.randrange(24)),
        ]
    )


def random_ranges(rng: random.Random, count: int) -> list[tuple[datetime | None, datetime | None]]:
    ranges: list[tuple[datetime | None, datetime | None]] = [(None, None)]
    while len(ranges) < count:
        start, end = _instant(rng), _instant(rng)
        if rng.random() < 0.3:  # shorter than a day, across a midnight or not
            end = start + timedelta(seconds=rng.randrange(1, 86400))
        if start >= end:
            start, end = end, start
        if start == end:
            continue
        ranges.append(rng.choice([(start, end), (start, None), (None, end)]))
    return ranges


# --- the ledger's answers, aggregated directly ----------------------------------------------


def _ledger(user: User, start: datetime | None, end: datetime | None) -> QuerySet[UsageRecord]:
    rows = UsageRecord.objects.filter(user=user).order_by()
    if start is not None:
        rows = rows.filter(created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    return rows


def ledger_stats(user: User, start: datetime | None, end: datetime | None) -> UsageStats:
    rows = _ledger(user, start, end)
    grouped = list(
        rows.values("model")
        .annotate(
            requests=Count("pk"),
            input=Coalesce(Sum("input_tokens"), 0),
            output=Coalesce(Sum("output_tokens"), 0),
            reasoning=Coalesce(Sum("reasoning_tokens"), 0),
            cost=Coalesce(Sum("cost_usd"), ZERO),
            unpriced=Count("pk", filter=Q(price_unknown=True)),
            messages=Count("pk", filter=Q(kind=UsageKind.CHAT)),
        )
        .order_by("model")
    )
    by_model = [
        ModelUsage(
            model=row["model"],
            requests=row["requests"],
            input_tokens=row["input"],
            output_tokens=row["output"],
            reasoning_tokens=row["reasoning"],
            total_tokens=row["input"] + row["output"],
            cost_usd=row["cost"],
            unpriced_requests=row["unpriced"],
        )
        for row in grouped
    ]
    return UsageStats(
        total_conversations=rows.exclude(conversation_id=None)
        .values("conversation_id")
        .distinct()
        .count(),
        total_messages=sum(row["messages"] for row in grouped),
        requests=sum(m.requests for m in by_model),
        input_tokens=sum(m.input_tokens for m in by_model),
        output_tokens=sum(m.output_tokens for m in by_model),
        reasoning_tokens=sum(m.reasoning_tokens for m in by_model),
        total_tokens=sum(m.total_tokens for m in by_model),
        cost_usd=sum((m.cost_usd for m in by_model), start=ZERO),
        unpriced_requests=sum(m.unpriced_requests for m in by_model),
        by_model=by_model,
    )


def ledger_daily(user: User, first_day: date, last_day: date, zone: ZoneInfo) -> list[DailyUsage]:
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    found = {
        row["day"]: row
        for row in _ledger(user, start, end)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(
            requests=Count("pk"),
            input=Coalesce(Sum("input_tokens"), 0),
            output=Coalesce(Sum("output_tokens"), 0),
            cost=Coalesce(Sum("cost_usd"), ZERO),
        )
    }
    series = []
    day = first_day
    while day <= last_day:
        empty: dict[str, Any] = {"requests": 0, "input": 0, "output": 0, "cost": ZERO}
        row = found.get(day, empty)
        series.append(
            DailyUsage(
                day,
                row["requests"],
                row["input"],
                row["output"],
                row["input"] + row["output"],
                row["cost"],
            )
        )
        day += timedelta(days=1)
    return series


def _exactly(value: Any) -> Any:
    """A result with its Decimals as strings: equal digits, not only equal values."""
    if isinstance(value, list):
        return [_exactly(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _exactly(getattr(value, name)) for name in value.__dataclass_fields__}
    return str(value) if isinstance(value, Decimal) else value


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_stats_from_the_rollups_equal_the_ledgers_for_random_ranges(
    seed: int, user: User, other_user: User
) -> None:
    # given: a random ledger of two users and rows without a user, over fifteen days
    rng = random_ledger(seed, [user, user, other_user, None], rows=300)

    for start, end in random_ranges(rng, 60):
        # when
        stats = usage_stats(user=user, start=start, end=end)

        # then
        assert _exactly(stats) == _exactly(ledger_stats(user, start, end)), (start, end)
    assert usage_stats(user=user, start=None, end=None).requests == (
        UsageRecord.objects.filter(user=user).count()
    )


def test_daily_series_from_the_rollups_equals_the_ledgers(user: User, other_user: User) -> None:
    # given
    rng = random_ledger(3, [user, other_user], rows=250)

    # UTC days (the daily rollup), whole-hour zones (the hourly one), others (the ledger)
    for zone in ["UTC", "Europe/Lisbon", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]:
        for _ in range(4):
            first_day = (FIRST + timedelta(days=rng.randrange(-2, DAYS))).date()
            last_day = first_day + timedelta(days=rng.randrange(0, DAYS))

            # when
            series = usage_daily(
                user=user, first_day=first_day, last_day=last_day, zone=ZoneInfo(zone)
            )

            # then
            expected = ledger_daily(user, first_day, last_day, ZoneInfo(zone))
            assert _exactly(series) == _exactly(expected), (zone, first_day, last_day)
        whole = usage_daily(
            user=user,
            first_day=FIRST.date(),
            last_day=FIRST.date() + timedelta(days=DAYS),
            zone=ZoneInfo(zone),
        )
        assert _exactly(whole) == _exactly(
            ledger_daily(user, FIRST.date(), FIRST.date() + timedelta(days=DAYS), ZoneInfo(zone))
        )
        assert sum(day.requests for day in whole) > 0


def test_budget_spend_from_the_rollup_equals_the_ledgers(user: User, other_user: User) -> None:
    # given
    random_ledger(4, [user, other_user], rows=200)
    now = FIRST + timedelta(days=10, hours=13)

    for day_start, month_start in [
        (FIRST + timedelta(days=10), FIRST.replace(day=1)),  # UTC midnights: the rollup
        (FIRST + timedelta(days=10), FIRST + timedelta(days=9)),
        (FIRST + timedelta(days=10, hours=5), FIRST + timedelta(days=3, minutes=1)),  # ledger
    ]:
        # when
        spend = budget_spend_get(
            user_id=user.pk, day_start=day_start, month_start=month_start, now=now
        )

        # then
        day = _ledger(user, day_start, None).aggregate(
            tokens=Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0),
            cost=Coalesce(Sum("cost_usd"), ZERO),
        )
        month = _ledger(user, month_start, None).aggregate(
            tokens=Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0),
            cost=Coalesce(Sum("cost_usd"), ZERO),
        )
        assert (spend.day_tokens, spend.day_usd, spend.month_tokens, spend.month_usd) == (
            day["tokens"],
            day["cost"],
            month["tokens"],
            month["cost"],
        )
        assert spend.month_tokens > spend.day_tokens > 0


def test_dashboard_from_the_rollup_equals_the_ledgers_after_a_user_is_deleted(
    user: User, other_user: User
) -> None:
    # given: a random ledger, then one of its users deleted (their rows stay, without user)
    random_ledger(5, [user, other_user, None], rows=200)
    other_user.delete()
    first_day, last_day = (FIRST + timedelta(days=2)).date(), (FIRST + timedelta(days=9)).date()

    # when
    dashboard = usage_dashboard(first_day=first_day, last_day=last_day)

    # then
    rows = UsageRecord.objects.filter(
        created_at__gte=datetime.combine(first_day, datetime.min.time(), tzinfo=UTC),
        created_at__lt=datetime.combine(last_day, datetime.min.time(), tzinfo=UTC)
        + timedelta(days=1),
    )
    tokens = Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0)
    cost = Coalesce(Sum("cost_usd"), ZERO)
    totals = rows.aggregate(tokens=tokens, cost=cost, calls=Count("id"))
    assert (dashboard.total_tokens, str(dashboard.total_cost_usd), dashboard.calls) == (
        totals["tokens"],
        str(totals["cost"]),
        totals["calls"],
    )
    by_user = {
        row["user_id"]: (row["tokens"], str(row["cost"]), row["calls"])
        for row in rows.values("user_id").annotate(tokens=tokens, cost=cost, calls=Count("id"))
    }
    assert {
        row["user_id"]: (row["tokens"], str(row["cost"]), row["calls"])
        for row in dashboard.top_users
    } == by_user
    assert set(by_user) == {user.pk, None}
    by_day = {
        row["day"]: (row["tokens"], row["cost"])
        for row in rows.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(tokens=tokens, cost=cost)
    }
    assert {d.day: (d.tokens, d.cost_usd) for d in dashboard.days if d.day in by_day} == by_day


def _sum_rows(rows: list[tuple[Any, ...]], key: int) -> list[tuple[Any, ...]]:
    """Rows with the same first ``key`` columns added up: the rows without a user are not
    merged by the upsert (null is no conflict), which changes no sum."""
    summed: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        values = summed.setdefault(row[:key], [None] * (len(row) - key))
        for index, value in enumerate(row[key:]):
            if value is not None:
                values[index] = value if values[index] is None else values[index] + value
    return sorted(((*k, *v) for k, v in summed.items()), key=str)


def _rollups() -> list[list[tuple[Any, ...]]]:
    daily = UsageDaily.objects.values_list(
        "user_id",
        "day",
        "model",
        "kind",
        "requests",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cached_input_tokens",
        "cost_usd",
        "unpriced_requests",
        "estimated_requests",
    )
    hourly = UsageHourly.objects.values_list(
        "user_id", "hour", "requests", "input_tokens", "output_tokens", "cost_usd"
    )
    conversations = UsageConversationDay.objects.values_list("user_id", "day", "conversation_id")
    return [
        _sum_rows(list(daily), 4),
        _sum_rows(list(hourly), 2),
        _sum_rows(list(conversations), 3),
    ]


def test_rebuild_and_the_backfill_migration_recompute_what_the_writes_kept(
    user: User, other_user: User
) -> None:
    # given: rollups kept row by row, then a row written around them (raw SQL)
    random_ledger(6, [user, other_user, None], rows=120)
    kept = _rollups()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO usage_usagerecord (user_id, kind, provider, model, input_tokens, "
            "output_tokens, usage_estimated, cost_usd, price_unknown, created_at) "
            "VALUES (%s, 'chat', 'groq', 'x/y', 7, 3, false, NULL, true, %s)",
            [user.pk, FIRST],
        )

    # when: a rebuild of one user
    usage_rollup_rebuild(user_ids=[user.pk])

    # then: that user's rollups count the row, and everything else is as kept
    rebuilt = _rollups()
    assert [row for row in rebuilt[0] if row[2] == "x/y"] == [
        (user.pk, FIRST.date(), "x/y", "chat", 1, 7, 3, 0, 0, None, 1, 0)
    ]
    assert [row for row in rebuilt[0] if row[2] != "x/y"] == kept[0]

    # when: the rollups emptied and the migration's backfill run
    with connection.cursor() as cursor:
        for table in ("usage_usagedaily", "usage_usagehourly", "usage_usageconversationday"):
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - a constant
        backfill = importlib.import_module("usage.migrations.0004_usage_rollup_backfill")
        cursor.execute(backfill.BACKFILL)

    # then
    assert _rollups() == rebuilt


def test_rows_taken_out_of_the_ledger_leave_the_rollups_as_a_rebuild_computes_them(
    user: User, other_user: User
) -> None:
    # given: a random ledger of two users, its rollups kept row by row
    random_ledger(7, [user, other_user], rows=150)
    chat = [
        message_id
        for message_id in UsageRecord.objects.filter(kind=UsageKind.CHAT).values_list(
            "message_id", flat=True
        )
        if message_id is not None
    ]

    # when: a third of the chat rows are taken out, one message at a time
    for message_id in chat[::3]:
        ledger_remove(message_id=message_id, kind=UsageKind.CHAT)

    # then: the rows are gone, and the rollups are what a rebuild makes of the rest
    assert UsageRecord.objects.count() == 150 - len(chat[::3])
    kept = _rollups()
    usage_rollup_rebuild()
    assert _rollups()[:2] == kept[:2]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_of_one_key_add_up_exactly(user: User) -> None:
    # given: eight writers, each five rows of the same user, day, model, kind, conversation
    conversation = uuid.uuid4()
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            connection.ensure_connection()
            start.wait()
            for i in range(5):
                with transaction.atomic():
                    ledger_append(
                        UsageRecord(
                            user=user,
                            conversation_id=conversation,
                            kind=UsageKind.CHAT,
                            provider="groq",
                            model=MODELS[0],
                            input_tokens=100 + n,
                            output_tokens=10 + i,
                            cost_usd=Decimal("0.0000000001") * (n + 1),
                            created_at=at + timedelta(seconds=n * 5 + i),
                        )
                    )
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # then: 40 rows; inputs 5 x (100..107), outputs 8 x (10..14), costs 5 x (1..8) e-10
    assert failures == []
    daily = UsageDaily.objects.get(user=user)
    assert (daily.requests, daily.input_tokens, daily.output_tokens, daily.cost_usd) == (
        40,
        5 * sum(range(100, 108)),
        8 * sum(range(10, 15)),
        Decimal("0.0000000180"),
    )
    hourly = UsageHourly.objects.get(user=user)
    assert (hourly.hour, hourly.requests, hourly.cost_usd) == (at, 40, Decimal("0.0000000180"))
    assert list(UsageConversationDay.objects.values_list("day", "conversation_id")) == [
        (at.date(), conversation)
    ]


def test_the_rebuild_command_adds_rows_written_around_the_rollups(user: User) -> None:
    # given: a row the previous release wrote (no rollup)
    UsageRecord.objects.create(
        user=user, kind=UsageKind.CHAT, provider="groq", model=MODELS[0], input_tokens=5,
        output_tokens=6, cost_usd=Decimal("0.25"), created_at=FIRST,
    )  # fmt: skip
    assert usage_stats(user=user, start=None, end=None).requests == 0

    # when
    out = StringIO()
    call_command("usage_rollup_rebuild", stdout=out)

    # then
    stats = usage_stats(user=user, start=None, end=None)
    assert (stats.requests, stats.total_tokens, stats.cost_usd) == (1, 11, Decimal("0.25"))
    assert out.getvalue() == "Usage rollups rebuilt from the ledger.\n"
