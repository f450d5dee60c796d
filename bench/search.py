"""Benchmark of GET /api/v1/search for a heavy user: 100,000 messages in 1,000 conversations
of one user, among 1,000,000 messages in all (9,000 conversations of 90 other users).

    DATABASE_URL=postgres://... .venv/bin/python -m bench.search [--runs 50]

On a database of its own (chatapi_bench_search, created afresh on DATABASE_URL's server and
migrated; ``--reuse`` measures the one a previous run seeded), seeded in SQL with
generate_series: each message is 20 to 60 words drawn from a vocabulary of 8,000 made-up
words with a Zipf-like (log-uniform) frequency, so a few words are in most messages and most
words in few, as in real text. The
measured user's data comes first in the tables, the other users' after it.

Unloaded (one request at a time), in process: the selector alone and the whole request (DRF
test client: authentication, validation, query, serialization), for two-word searches of
words of different frequencies. Prints p50/p95/max in ms and how many results each query has
for the user, and writes JSON to bench/results/<stamp>-search.json.
"""

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.run import REPO, RESULTS, database_url, machine, run_django

DB_NAME = "chatapi_bench_search"
USERS = 91  # the measured one first
CONVERSATIONS_PER_USER = 1_000 // 10  # ... except the measured user's: 1,000
MESSAGES_PER_CONVERSATION = 100
VOCABULARY = 8_000
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "de", "po",
             "la", "gi", "fu", "ze", "bo", "ti", "ma", "ke", "nu", "ra"]  # fmt: skip
BENCH_USER = "00000000-0000-4000-8000-000000000001"

# A word by its frequency rank: rank r (1 = the commonest) is drawn with probability about
# 1 / (r ln 8000) per word, so rank 1 is in ~99% of 40-word messages, rank 30 in ~15%, rank
# 300 in ~1.6%.
QUERIES = {
    "two rare words (ranks 300, 1000)": (300, 1000),
    "two mid-frequency words (ranks 30, 100)": (30, 100),
    "two common words (ranks 5, 10)": (5, 10),
}


def word(rank: int) -> str:
    i = rank - 1
    return SYLLABLES[i % 20] + SYLLABLES[(i // 20) % 20] + SYLLABLES[(i // 400) % 20]


# 50,000 texts drawn once, then dealt out to the messages (each text about 20 times): drawing
# 40 words for each of 1,000,000 messages took PostgreSQL over 15 minutes here.
SEED_SQL = """
CREATE TEMP TABLE vocabulary AS
    SELECT r AS rank,
           (%(s)s::text[])[1 + (r - 1) %% 20] || (%(s)s::text[])[1 + ((r - 1) / 20) %% 20]
           || (%(s)s::text[])[1 + ((r - 1) / 400) %% 20] AS word
    FROM generate_series(1, %(vocabulary)s) AS r;
CREATE TEMP TABLE texts AS
    SELECT draws.t AS id, string_agg(v.word, ' ' ORDER BY draws.k) AS text
    FROM (
        SELECT t, k, floor(exp(random() * ln(%(vocabulary)s)))::int AS rank
        FROM generate_series(0, %(texts)s - 1) AS t, generate_series(1, 20 + t %% 41) AS k
    ) AS draws
    JOIN vocabulary v ON v.rank = draws.rank
    GROUP BY draws.t;
INSERT INTO accounts_user (id, password, is_superuser, email, is_staff, is_active, date_joined)
    SELECT CASE WHEN u = 0 THEN %(bench_user)s::uuid ELSE md5('search-user' || u)::uuid END,
           '!', false, 'search' || u || '@example.com', false, true, now()
    FROM generate_series(0, %(others)s) AS u;
INSERT INTO conversations_conversation (id, owner_id, title, model, system_prompt, metadata,
        archived, created_at, updated_at, activity_at, reasoning_effort)
    SELECT md5('search-conv' || c)::uuid,
           CASE WHEN c < 1000 THEN %(bench_user)s::uuid
                ELSE md5('search-user' || (1 + (c - 1000) / %(per_user)s))::uuid END,
           array_to_string((string_to_array(x.text, ' '))[1:3 + c %% 4], ' '),
           'openai/gpt-oss-20b', '', '{}', false,
           now() - c * interval '1 minute', now(), now() - c * interval '1 minute', ''
    FROM generate_series(0, %(conversations)s - 1) AS c
    JOIN texts x ON x.id = (c * 7919) %% %(texts)s;
-- The index is built once at the end: faster than maintaining it row by row.
DROP INDEX message_search;
INSERT INTO messaging_message (id, conversation_id, role, content, reasoning, status,
        stop_reason, model, usage_estimated, created_at, worker_id)
    SELECT gen_random_uuid(), md5('search-conv' || c)::uuid,
           CASE WHEN m %% 2 = 0 THEN 'user' ELSE 'assistant' END, x.text,
           '', 'complete', '', '', false,
           now() - c * interval '1 minute' + m * interval '1 second', ''
    FROM generate_series(0, %(conversations)s - 1) AS c,
         generate_series(0, %(messages)s - 1) AS m,
         texts x
    WHERE x.id = ((c * %(messages)s + m)::bigint * 7919) %% %(texts)s;
-- Django's foreign keys are deferred; their checks run now, before the index may be built.
SET CONSTRAINTS ALL IMMEDIATE;
SET maintenance_work_mem = '256MB';
CREATE INDEX message_search ON messaging_message USING gin (search_owner, search_vector);
ANALYZE;
"""

SEED_PARAMS: dict[str, Any] = {
    "s": SYLLABLES,
    "vocabulary": VOCABULARY,
    "bench_user": BENCH_USER,
    "others": USERS - 1,
    "per_user": CONVERSATIONS_PER_USER,
    "conversations": 1_000 + (USERS - 1) * CONVERSATIONS_PER_USER,
    "messages": MESSAGES_PER_CONVERSATION,
    "texts": 50_000,
}


def _say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def _timed(runs: int, operation: Callable[[], object]) -> list[float]:
    operation()  # warm: connection, plans, caches
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        operation()
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


def _summary(timings: list[float]) -> dict[str, float]:
    p95 = timings[min(len(timings) - 1, round(len(timings) * 0.95) - 1)]
    return {
        "p50": round(statistics.median(timings), 2),
        "p95": round(p95, 2),
        "max": round(timings[-1], 2),
    }


def _database_ready(*, reuse: bool) -> None:
    """Point this process's settings at the benchmark's database, made and migrated afresh
    unless ``reuse``."""
    if reuse:
        parts = urlsplit(os.environ["DATABASE_URL"])
        db_url = urlunsplit(parts._replace(path=f"/{DB_NAME}"))
    else:
        db_url = database_url(DB_NAME)
    env = {**os.environ, "DATABASE_URL": db_url, "CHATAPI_ENV": "test", "LOG_LEVEL": "WARNING"}
    if not reuse:
        _say(f"migrating {DB_NAME}")
        run_django(env, "manage.py", "migrate", "--verbosity", "0")
    os.environ.update(env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--reuse", action="store_true", help="measure the database a previous run seeded"
    )
    args = parser.parse_args()

    _database_ready(reuse=args.reuse)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")

    import django

    django.setup()

    from django.db import connection
    from rest_framework.test import APIClient

    from accounts.models import User
    from chatapi.pagination import PageParams
    from conversations.selectors import SearchFilters, search

    started = time.perf_counter()
    with connection.cursor() as cursor:
        if not args.reuse:
            _say("seeding 1,000,000 messages")
            cursor.execute(SEED_SQL, SEED_PARAMS)
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE c.owner_id = %s) FROM messaging_message m "
            "JOIN conversations_conversation c ON c.id = m.conversation_id",
            [BENCH_USER],
        )
        total, own = cursor.fetchone()
    seed_seconds = None if args.reuse else round(time.perf_counter() - started)
    _say(f"{total:,} messages, {own:,} of the user's (seeded in {seed_seconds} s)")

    user = User.objects.get(pk=BENCH_USER)
    client = APIClient()
    client.force_authenticate(user)
    page = PageParams()
    results: dict[str, Any] = {}
    for label, ranks in QUERIES.items():
        q = " ".join(word(rank) for rank in ranks)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM messaging_message m JOIN conversations_conversation c "
                "ON c.id = m.conversation_id WHERE c.owner_id = %s "
                "AND m.search_vector @@ websearch_to_tsquery('simple', %s)",
                [BENCH_USER, q],
            )
            (matches,) = cursor.fetchone()

        def selector_call(q: str = q) -> object:
            return search(user=user, q=q, filters=SearchFilters(), page=page)

        def request_call(q: str = q) -> object:
            return client.get("/api/v1/search", {"q": q})

        selector = _timed(args.runs, selector_call)
        whole = _timed(args.runs, request_call)
        results[label] = {
            "q": q,
            "user_matches": matches,
            "selector_ms": _summary(selector),
            "request_ms": _summary(whole),
        }
        _say(
            f"{label:42} q={q!r:24} {matches:6,} of the user's messages match; "
            f"selector p50 {results[label]['selector_ms']['p50']:7.1f} ms, "
            f"request p50 {results[label]['request_ms']['p50']:7.1f} ms "
            f"(p95 {results[label]['request_ms']['p95']:.1f})"
        )

    load = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-search.json"
    out.write_text(
        json.dumps(
            {
                "messages": total,
                "user_messages": own,
                "runs": args.runs,
                "seed_seconds": seed_seconds,
                "load_average": load,
                "machine": machine(),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    _say(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
