"""What DB_RLS_PER_REQUEST costs: requests/s and latency of the API's hot reads with the
setting off and on, against real server processes, in one run.

    DATABASE_URL=postgres://... .venv/bin/python -m bench.rls_cost [--seconds 4] [--rounds 2]

The API runs as ``make bench`` runs it (bench/run.py: daphne, one process per core, the
production configuration) on a database of its own (chatapi_bench_rls), seeded with the
benchmark user's data (bench/seed.py) among many other users' rows, so the policies filter a
shared table. Off and on alternate for ``--rounds`` rounds (the machine's noise falls on both);
each measurement is ``--clients`` concurrent clients for ``--seconds`` per endpoint. Before
measuring "on", the run proves the setting is in force: with the `authenticated` role's
SELECT on conversations revoked, the list must fail.

Prints a table (requests/s, p50, p99 per endpoint and mode, and the on/off ratios) and writes
the JSON to bench/results/<stamp>-rls-cost.json.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.client import request
from bench.run import (
    REPO,
    RESULTS,
    Api,
    bench_token,
    database_url,
    machine,
    ms,
    percentile,
    progress,
    run_django,
    server_env,
)

DB_NAME = "chatapi_bench_rls"
OTHER_USERS = 300
OTHER_CONVERSATIONS = 30  # each
OTHER_MESSAGES = 100  # in each other user's first conversation


def seed_other_users(db_url: str) -> None:
    """Other users' conversations and messages, in the same tables as the measured user's."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """
            INSERT INTO accounts_user (id, password, is_superuser, email, is_staff, is_active,
                date_joined)
            SELECT md5('other' || n)::uuid, '!', false, 'other' || n || '@example.com', false,
                true, now()
            FROM generate_series(1, %(users)s) AS n
            """,
            {"users": OTHER_USERS},
        )
        conn.execute(
            """
            INSERT INTO conversations_conversation (id, owner_id, title, model, system_prompt,
                metadata, archived, created_at, updated_at, activity_at, reasoning_effort)
            SELECT md5('conv' || u || '-' || c)::uuid, md5('other' || u)::uuid,
                'other ' || c, 'openai/gpt-oss-20b', '', '{}', false,
                now() - c * interval '1 minute', now(), now() - c * interval '1 minute', ''
            FROM generate_series(1, %(users)s) AS u, generate_series(1, %(convs)s) AS c
            """,
            {"users": OTHER_USERS, "convs": OTHER_CONVERSATIONS},
        )
        conn.execute(
            """
            INSERT INTO messaging_message (id, conversation_id, role, content, reasoning,
                status, stop_reason, model, usage_estimated, created_at, worker_id)
            SELECT gen_random_uuid(), md5('conv' || u || '-1')::uuid, 'user',
                'message ' || m || ' ' || repeat('x', 200), '', 'complete', '', '', false,
                now() - m * interval '1 second', ''
            FROM generate_series(1, %(users)s) AS u, generate_series(1, %(messages)s) AS m
            """,
            {"users": OTHER_USERS, "messages": OTHER_MESSAGES},
        )
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE accounts_user, conversations_conversation, messaging_message")


async def measure(
    port: int, path: str, auth: dict[str, str], seconds: float, clients: int
) -> list[float]:
    latencies: list[float] = []
    failed: list[int] = []

    async def client(deadline: float) -> None:
        while time.perf_counter() < deadline:
            result = await request("127.0.0.1", port, "GET", path, headers=auth)
            if result.error or result.status != 200:
                failed.append(result.status)
            else:
                latencies.append(result.total)

    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(client(deadline) for _ in range(clients)))
    if failed:
        raise RuntimeError(f"{len(failed)} failed requests on {path}: {sorted(set(failed))}")
    return latencies


async def proves_setting_in_force(db_url: str, port: int, auth: dict[str, str]) -> bool:
    """With `authenticated` unable to read conversations, the list fails only if it runs as
    `authenticated`."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON conversations_conversation FROM authenticated")
        try:
            result = await request("127.0.0.1", port, "GET", "/api/v1/conversations", headers=auth)
        finally:
            conn.execute("GRANT SELECT ON conversations_conversation TO authenticated")
    return result.status == 500


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    db_url = database_url(DB_NAME)
    env = server_env(db_url, upstream_port=9)  # no upstream calls: reads only
    progress("migrate and seed")
    run_django(env, "manage.py", "migrate", "--no-input", "-v", "0")
    data = json.loads(run_django(env, "-m", "bench.seed", "41", "1000"))
    seed_other_users(db_url)
    auth = {"Authorization": f"Bearer {bench_token(data['user_id'])}"}
    conversation = data["history_conversation"]
    paths = {
        "list_conversations": "/api/v1/conversations?limit=20",
        "list_messages": f"/api/v1/conversations/{conversation}/messages?limit=20",
        "get_conversation": f"/api/v1/conversations/{conversation}",
    }
    samples: dict[str, dict[str, list[float]]] = {
        mode: {name: [] for name in paths} for mode in ("off", "on")
    }
    elapsed: dict[str, dict[str, float]] = {
        mode: dict.fromkeys(paths, 0.0) for mode in ("off", "on")
    }
    proofs: list[bool] = []
    for round_number in range(args.rounds):
        for mode in ("off", "on"):
            progress(f"round {round_number + 1}/{args.rounds}: DB_RLS_PER_REQUEST {mode}")
            api = Api(env | {"DB_RLS_PER_REQUEST": str(mode == "on").lower()}, args.workers)
            try:
                if mode == "on":
                    proofs.append(await proves_setting_in_force(db_url, api.port, auth))
                for name, path in paths.items():
                    await measure(api.port, path, auth, 0.5, args.clients)  # warm up
                    started = time.perf_counter()
                    samples[mode][name] += await measure(
                        api.port, path, auth, args.seconds, args.clients
                    )
                    elapsed[mode][name] += time.perf_counter() - started
            finally:
                api.stop()
    if not all(proofs):
        raise RuntimeError("DB_RLS_PER_REQUEST=true did not run the queries as authenticated")
    results: dict[str, Any] = {
        "label": "rls_cost",
        "workers": args.workers,
        "clients": args.clients,
        "seconds_per_measurement": args.seconds,
        "rounds": args.rounds,
        "other_users": OTHER_USERS,
        "started_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "setting_proved_in_force": True,
        "endpoints": {},
    }
    for name in paths:
        row: dict[str, Any] = {}
        for mode in ("off", "on"):
            values = samples[mode][name]
            row[mode] = {
                "requests": len(values),
                "requests_per_second": round(len(values) / elapsed[mode][name], 1),
                "p50_ms": ms(percentile(values, 50)),
                "p99_ms": ms(percentile(values, 99)),
            }
        row["ratio_on_off"] = {
            key: round(row["on"][key] / row["off"][key], 3)
            for key in ("requests_per_second", "p50_ms", "p99_ms")
        }
        results["endpoints"][name] = row
    return results


def print_table(results: dict[str, Any]) -> None:
    header = (
        f"{'endpoint':<20} {'mode':<4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f"   on/off: req/s  p50   p99"
    )
    lines = [header]
    for name, row in results["endpoints"].items():
        for mode in ("off", "on"):
            m = row[mode]
            line = (
                f"{name:<20} {mode:<4} {m['requests_per_second']:>8} {m['p50_ms']:>8} "
                f"{m['p99_ms']:>8}"
            )
            if mode == "on":
                r = row["ratio_on_off"]
                line += f"   {r['requests_per_second']:>12} {r['p50_ms']:>5} {r['p99_ms']:>5}"
            lines.append(line)
    sys.stdout.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    started = time.perf_counter()
    results = asyncio.run(main_async(args))
    results["duration_seconds"] = round(time.perf_counter() - started, 1)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-rls-cost.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    sys.stdout.write(f"\n{path.relative_to(REPO)}  ({results['duration_seconds']} s)\n")


if __name__ == "__main__":
    main()
