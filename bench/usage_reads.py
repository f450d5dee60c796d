"""Benchmark of the usage reads for a heavy user: GET /usage/stats, GET /usage/daily, and the
budget check every send runs, over ROWS ledger rows spread over the last year.

    DATABASE_URL=postgres://... .venv/bin/python -m bench.usage_reads [--rows 100000] [--runs 30]
        [--clients 32]

Against a migrated database (it creates one user and its rows with one INSERT ... SELECT
generate_series, and deletes them at the end). Prints p50/p95/max per operation, in ms, for
the selector alone and for the whole request (in-process, DRF test client); with --clients N,
also each selector's latencies with N threads (one connection each) calling it at once.
"""

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")
os.environ.setdefault("CHATAPI_ENV", "test")
os.environ.setdefault("LOG_LEVEL", "WARNING")  # no access log line per request
# One connection per concurrent client: the latency measured is the database's, not a wait
# for the pool.
os.environ.setdefault("DATABASE_POOL_MAX_SIZE", "64")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from accounts.models import User  # noqa: E402
from bench.seed import ledger_seed  # noqa: E402
from usage.models import UsageDaily, UsageRecord  # noqa: E402
from usage.selectors import budget_spend_get, usage_daily, usage_stats  # noqa: E402


def _say(line: str) -> None:
    sys.stdout.write(f"{line}\n")


def _summary(timings: list[float]) -> str:
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(len(timings) * 0.95) - 1)]
    return f"p50 {statistics.median(timings):7.1f}  p95 {p95:7.1f}  max {timings[-1]:7.1f}"


def _timed(runs: int, operation: Callable[[], object], into: list[float]) -> None:
    operation()  # warm: connection, plans, caches
    for _ in range(runs):
        started = time.perf_counter()
        operation()
        into.append((time.perf_counter() - started) * 1000)


def _measure(runs: int, operation: Callable[[], object]) -> str:
    timings: list[float] = []
    _timed(runs, operation, timings)
    return _summary(timings)


def _measure_concurrent(clients: int, runs: int, operation: Callable[[], object]) -> str:
    """``clients`` threads, each on its own connection, each timing ``runs`` calls."""
    timings: list[float] = []
    ready = threading.Barrier(clients)

    def client() -> None:
        mine: list[float] = []
        try:
            operation()  # connect and warm before the start line
            ready.wait()
            _timed(runs, operation, mine)
        finally:
            connection.close()
        timings.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _summary(timings)


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
    parser.add_argument(
        "--clients",
        type=int,
        default=0,
        help="Also measure each selector with this many concurrent clients (e.g. 32).",
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
                "usage_stats (last 30 x 24 h, edges)",
                lambda: usage_stats(user=user, start=now - timedelta(days=30), end=now),
            ),
            (
                "usage_daily (30 days, UTC)",
                lambda: usage_daily(
                    user=user, first_day=first_day, last_day=last_day, zone=ZoneInfo("UTC")
                ),
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
        if args.clients:
            _say(f"{args.clients} concurrent clients, {args.runs // 3 or 1} runs each, ms")
            for name, operation in cases:
                if name.startswith("GET"):
                    continue  # the test client is not thread-safe
                timings = _measure_concurrent(args.clients, args.runs // 3 or 1, operation)
                _say(f"{name:40s} {timings}")
    finally:
        UsageRecord.objects.filter(user__in=users).delete()
        UsageDaily.objects.filter(user__in=users).delete()  # kept for deleted users otherwise
        for someone in users:
            someone.delete()


if __name__ == "__main__":
    main()
