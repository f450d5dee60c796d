"""Benchmark of the usage reads for a heavy user: GET /usage/stats, GET /usage/daily, and the
budget check every send runs, over ROWS ledger rows spread over the last year.

    DATABASE_URL=postgres://... .venv/bin/python -m bench.usage_reads [--rows 100000] [--runs 30]

Against a migrated database (it creates one user and its rows with one INSERT ... SELECT
generate_series, and deletes them at the end). Prints p50/p95/max per operation, in ms, for
the selector alone and for the whole request (in-process, DRF test client).
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")
os.environ.setdefault("CHATAPI_ENV", "test")
os.environ.setdefault("LOG_LEVEL", "WARNING")  # no access log line per request

import django

django.setup()

from django.conf import settings  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from accounts.models import User  # noqa: E402
from bench.seed import ledger_seed  # noqa: E402
from usage.models import UsageRecord  # noqa: E402
from usage.selectors import budget_spend_get, usage_daily, usage_stats  # noqa: E402


def _say(line: str) -> None:
    sys.stdout.write(f"{line}\n")


def _measure(runs: int, operation: Callable[[], object]) -> str:
    operation()  # warm: connection, plans, caches
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        operation()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(len(timings) * 0.95) - 1)]
    return f"p50 {statistics.median(timings):7.1f}  p95 {p95:7.1f}  max {timings[-1]:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--other-users",
        type=int,
        default=0,
        help="Other users with as many rows each, interleaved with the measured user's.",
    )
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["testserver"]
    users = [
        User.objects.create(id=uuid.uuid4(), email=f"bench-usage-{n}@example.com")
        for n in range(1 + args.other_users)
    ]
    user = users[0]
    try:
        started = time.perf_counter()
        ledger_seed([user.pk for user in users], args.rows)
        _say(
            f"seeded {args.rows} ledger rows for each of {len(users)} users in "
            f"{time.perf_counter() - started:.2f} s"
        )
        client = APIClient()
        client.force_authenticate(user)
        now = datetime.now(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        month_start = now.date().replace(day=1)
        first_day, last_day = (now - timedelta(days=29)).date(), now.date()
        cases: list[tuple[str, Callable[[], object]]] = [
            ("usage_stats (all time)", lambda: usage_stats(user=user, start=None, end=None)),
            (
                "usage_stats (this month)",
                lambda: usage_stats(user=user, start=day.replace(day=1), end=None),
            ),
            (
                "usage_daily (30 days, Europe/Lisbon)",
                lambda: usage_daily(
                    user=user,
                    first_day=first_day,
                    last_day=last_day,
                    zone=ZoneInfo("Europe/Lisbon"),
                ),
            ),
            (
                "usage_daily (366 days)",
                lambda: usage_daily(
                    user=user,
                    first_day=last_day - timedelta(days=365),
                    last_day=last_day,
                    zone=ZoneInfo("UTC"),
                ),
            ),
            (
                "budget check (day + month, per send)",
                lambda: budget_spend_get(
                    user_id=user.pk, day_start=day, month_start=day.replace(day=1), now=now
                ),
            ),
            ("GET /usage/stats", lambda: client.get("/api/v1/usage/stats")),
            (
                "GET /usage/stats?from=<month>",
                lambda: client.get("/api/v1/usage/stats", {"from": str(month_start)}),
            ),
            ("GET /usage/daily", lambda: client.get("/api/v1/usage/daily")),
        ]
        _say(f"{args.runs} runs each, ms")
        for name, operation in cases:
            _say(f"{name:40s} {_measure(args.runs, operation)}")
    finally:
        UsageRecord.objects.filter(user__in=users).delete()
        for someone in users:
            someone.delete()


if __name__ == "__main__":
    main()
